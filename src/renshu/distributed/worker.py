"""A rollout worker: one Ray actor holding a slice of the envs and a copy of the algorithm.

The worker builds the very same algorithm class the learner runs, on its own slice of the envs
(``num_envs`` or ``num_groups`` reduced to its share). It never learns: each iteration it loads
the learner's weights and collects with the algorithm's own collection code, so the rollouts
are exactly what a local run would have collected on those envs.

This module imports without Ray; :mod:`renshu.distributed.pool` turns the class into an actor.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# How each algorithm collects, and which config field a worker's share of the envs sets.
#   rollout:     ``algo.collector.collect(algo.policy)`` -> Rollout [T, N] (PPO, A2C)
#   episodes:    ``algo.collect()`` -> Episodes, one episode per env (GRPO)
#   transitions: ``algo.choose_actions`` + env steps -> [T, N] transitions the learner writes
#                into its replay buffer with ``algo.store`` (DQN)
COLLECTION: dict[str, str] = {
    "ppo": "rollout", "a2c": "rollout", "grpo": "episodes", "dqn": "transitions",
}  # fmt: skip
UNSUPPORTED: dict[str, str] = {}


def check_supported(algo: str) -> str:
    """The collection kind of ``algo`` or a ValueError saying which algorithms Ray runs."""
    if algo in COLLECTION:
        return COLLECTION[algo]
    reason = UNSUPPORTED.get(algo, f"{algo!r} has no remote collection")
    raise ValueError(f"--backend ray runs {', '.join(sorted(COLLECTION))}; {reason}")


def share_config(algo: str, config: Any, envs: int) -> Any:
    """``config`` for a worker stepping ``envs`` of the learner's envs. Learning-only fields
    that must divide the batch are reset (a worker never learns)."""
    if COLLECTION[algo] == "episodes":
        changes = {"num_groups": envs // config.group_size}
    else:
        changes = {"num_envs": envs}
    if COLLECTION[algo] == "transitions":
        changes["buffer_size"] = 1  # the learner keeps the replay buffer
    if hasattr(config, "num_minibatches"):
        changes["num_minibatches"] = 1
    return dataclasses.replace(config, **changes)


def to_numpy(value: Any) -> Any:
    """Tensors (nested in dicts) as numpy arrays: Ray moves those through its shared-memory
    object store without pickling them, and the reader maps them without a copy."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    return value


def from_numpy(value: Any) -> Any:
    """The inverse of :func:`to_numpy`. The tensors share memory with the (read-only) arrays
    Ray returns, so copy them (``torch.cat`` does) before writing to them."""
    if isinstance(value, np.ndarray):
        with warnings.catch_warnings():  # read-only arrays from the object store
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(value)
    if isinstance(value, dict):
        return {k: from_numpy(v) for k, v in value.items()}
    return value


class RolloutWorker:
    """``num_envs`` envs from ``env_factory(num_envs=, seed=)`` and a copy of ``algo``'s policy.

    Args:
        algo: algorithm name (``ppo``, ``a2c``, ``grpo``).
        config: the learner's config (the worker takes its share of the envs).
        env_factory: builds the worker's TensorEnv; must be picklable (e.g. a partial of
            :func:`renshu.envs.registry.make_env`).
        num_envs: envs this worker steps.
        seed: seed of the worker's envs and sampling.
        threads: torch CPU threads inside the worker.
    """

    def __init__(
        self,
        algo: str,
        config: Any,
        env_factory: Callable[..., Any],
        num_envs: int,
        seed: int,
        threads: int = 1,
    ):
        from renshu.algos import get_algorithm

        torch.set_num_threads(threads)
        self.kind = check_supported(algo)
        self.threads = threads
        self.env = env_factory(num_envs=num_envs, seed=seed)
        self.algo = get_algorithm(algo)(self.env, share_config(algo, config, num_envs), seed=seed)
        self.collects = 0

    # -- what the learner needs to know ---------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        env = self.env
        return {
            "pid": os.getpid(),
            "node": _node_ip(),
            "threads": torch.get_num_threads(),
            "num_envs": env.num_envs,
            "num_actions": env.num_actions,
            "observation_space": env.observation_space,
            "action_space": env.action_space,
            "max_episode_steps": getattr(env, "max_episode_steps", None),
            "reset_groups": hasattr(env, "reset_groups"),
            "frame_stack": getattr(env, "frame_stack", None),
            "frame_padding": getattr(env, "frame_padding", "zeros"),
        }

    # -- collection with the learner's weights --------------------------------------------------

    def collect(self, weights: dict[str, np.ndarray]) -> dict[str, Any]:
        """One rollout (PPO/A2C) or one batch of episodes (GRPO) with ``weights`` (numpy
        arrays, see :func:`to_numpy`), as a dict of the result's fields in numpy arrays."""
        self.algo.policy.load_state_dict(from_numpy(weights))
        self.collects += 1
        if self.kind == "rollout":
            result = self.algo.collector.collect(self.algo.policy)
        else:
            result = self.algo.collect()
        fields = dataclasses.fields(result)
        return {f.name: to_numpy(getattr(result, f.name)) for f in fields}

    def collect_transitions(
        self, weights: dict[str, np.ndarray], eps: float, steps: int, random_steps: int
    ) -> dict[str, Any]:
        """``steps`` vector steps of DQN acting with the learner's Q-network ``weights`` and
        epsilon ``eps`` (uniformly random actions for the first ``random_steps``), as numpy
        arrays ``[steps, envs, ...]``: what the learner's ``DQN.store`` takes."""
        algo = self.algo
        algo.q.load_state_dict(from_numpy(weights))
        self.collects += 1
        keys = ("obs", "mask", "action", "reward", "terminated", "done", "final_obs")
        optional = ("life_loss", "final_action_mask")
        out: dict[str, list] = {k: [] for k in (*keys, *optional, "episode")}
        for t in range(steps):
            obs, mask = algo.obs, algo.mask
            action = algo.choose_actions(obs, mask, None, eps, t < random_steps)
            algo.obs, reward, terminated, _, info = self.env.step(action)
            algo.mask = info["action_mask"]
            row = {"obs": obs, "mask": mask, "action": action, "reward": reward,
                   "terminated": terminated, "done": info["done"], "final_obs": info["final_obs"],
                   "episode": info["episode"]}  # fmt: skip
            row.update({k: info[k] for k in optional if k in info})
            for k, v in row.items():
                out[k].append(v)
        stacked: dict[str, Any] = {
            k: torch.stack(v) for k, v in out.items() if v and k != "episode"
        }
        stacked["episode"] = {k: torch.stack([e[k] for e in out["episode"]])
                              for k in out["episode"][0]}  # fmt: skip
        stacked["last_obs"], stacked["last_mask"] = algo.obs, algo.mask
        return to_numpy(stacked)

    def collector_state(self) -> dict[str, torch.Tensor]:
        """The current observation and action mask (what a local collector checkpoints)."""
        if self.kind != "rollout":
            return {}
        return self.algo.collector.state_dict()

    # -- plain TensorEnv calls (the learner's RayEnv) -------------------------------------------

    def reset(self, seed: int | None = None):
        obs, info = self.env.reset(seed=seed)
        self._follow(obs, info)
        return obs, info

    def reset_groups(self, group_size: int, seed: int | None = None):
        obs, info = self.env.reset_groups(group_size, seed=seed)
        self._follow(obs, info)
        return obs, info

    def step(self, actions: torch.Tensor):
        out = self.env.step(actions)
        self._follow(out[0], out[4])
        return out

    def _follow(self, obs: torch.Tensor, info: dict) -> None:
        """Keep the collector's current observation in step with env calls from outside."""
        if self.kind == "rollout":
            self.algo.collector.obs = obs
            self.algo.collector.mask = info["action_mask"]
        elif self.kind == "transitions":
            self.algo.obs, self.algo.mask = obs, info["action_mask"]

    def close(self) -> None:
        self.env.close()


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray (unit use)
        return "local"
