"""The learner's side of remote collection: a TensorEnv over Ray workers, and collectors.

:class:`RayEnv` is a TensorEnv whose ``num_envs`` envs live in the workers of a
:class:`~renshu.distributed.pool.WorkerPool` (worker ``i`` holds a consecutive slice). The
algorithm is built on it as on any env; :func:`attach` then swaps the algorithm's collection
for a remote one: the learner sends its weights to every worker, each collects on its slice
with its copy of the policy, and the learner concatenates the results along the env axis
before the unchanged algorithm math runs on them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch

from renshu.core.rollout import Rollout
from renshu.distributed.pool import WorkerPool, split, worker_seed
from renshu.distributed.worker import check_supported, from_numpy, to_numpy


def _cat(parts: Sequence[Any], dim: int = 0) -> Any:
    """Concatenate matching tensors (nested in dicts) of the workers' results."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(list(parts), dim=dim)
    if isinstance(first, dict):
        return {k: _cat([p[k] for p in parts], dim) for k in first}
    raise TypeError(f"cannot concatenate {type(first).__name__}")


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def _pad_time(x: torch.Tensor, length: int, fill: float | bool = 0) -> torch.Tensor:
    """``x`` [T, ...] padded along time to ``length`` with ``fill``."""
    if x.shape[0] == length:
        return x
    pad = torch.full((length - x.shape[0], *x.shape[1:]), fill, dtype=x.dtype, device=x.device)
    return torch.cat([x, pad])


class RayEnv:
    """``sum(pool.shares)`` envs stepped by the pool's workers, as one TensorEnv on ``device``.

    ``reset``/``step`` work as for any TensorEnv (each worker steps its slice); the remote
    collectors below are what training uses. ``pop_notes()`` returns what happened to the
    workers (starts, deaths and restarts) since the last call.
    """

    def __init__(self, pool: WorkerPool, device: torch.device | str = "cpu"):
        self.pool = pool
        self.device = torch.device(device)
        info = pool.info[0]
        self.num_envs = sum(pool.shares)
        self.num_actions = info["num_actions"]
        self.observation_space = info["observation_space"]
        self.action_space = info["action_space"]
        self.max_episode_steps = info["max_episode_steps"]
        self.frame_stack = info.get("frame_stack")
        self.frame_padding = info.get("frame_padding", "zeros")
        self._offsets = [0]
        for n in pool.shares:
            self._offsets.append(self._offsets[-1] + n)
        self._groups = bool(info["reset_groups"])

    def __repr__(self) -> str:
        return f"RayEnv(num_envs={self.num_envs}, workers={self.pool.shares}, device={self.device})"

    def _seeds(self, seed: int | None) -> list[tuple]:
        if seed is None:
            return [(None,)] * self.pool.num_workers
        return [(worker_seed(seed, i),) for i in range(self.pool.num_workers)]

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = zip(*self.pool.call("reset", self._seeds(seed)))
        return _to(_cat(obs), self.device), _to(_cat(info), self.device)

    @property
    def reset_groups(self):
        """Same-start groups (GRPO), where the workers' envs have them (else no attribute)."""
        if not self._groups:
            raise AttributeError("the workers' envs have no reset_groups")
        return self._reset_groups

    def _reset_groups(self, group_size: int, seed: int | None = None):
        args = [(group_size, s) for (s,) in self._seeds(seed)]
        obs, info = zip(*self.pool.call("reset_groups", args))
        return _to(_cat(obs), self.device), _to(_cat(info), self.device)

    def step(self, actions: torch.Tensor):
        actions = actions.cpu()
        o = self._offsets
        args = [(actions[o[i] : o[i + 1]],) for i in range(self.pool.num_workers)]
        parts = self.pool.call("step", args)
        return tuple(_to(_cat([p[k] for p in parts]), self.device) for k in range(5))

    def collect_rollout(self, policy: torch.nn.Module) -> Rollout:
        """A rollout of every worker with ``policy``'s weights, joined along the env axis."""
        parts = self._collect(policy)
        env_axis = {"next_value": 0, "episodes": 0}
        joined = {
            name: _cat([p[name] for p in parts], env_axis.get(name, 1))
            for name in Rollout.__dataclass_fields__
        }
        return Rollout(**_to(joined, self.device))

    def collect_episodes(self, policy: torch.nn.Module):
        """One episode per env (GRPO) with ``policy``'s weights; the workers' batches are padded
        to the longest along time (padding is not ``valid``) and joined along the env axis."""
        from renshu.algos.grpo import Episodes

        parts = self._collect(policy)
        length = max(p["obs"].shape[0] for p in parts)
        fills = {"masks": True, "valid": False}
        joined = {}
        for name in ("obs", "masks", "actions", "logprobs", "rewards", "valid"):
            padded = [_pad_time(p[name], length, fills.get(name, 0)) for p in parts]
            joined[name] = torch.cat(padded, dim=1)
        joined["finished"] = _cat([p["finished"] for p in parts])
        joined["stats"] = _cat([p["stats"] for p in parts])
        return Episodes(**_to(joined, self.device))

    def collect_transitions(
        self, q: torch.nn.Module, eps: float, steps: int, random_steps: int
    ) -> dict[str, Any]:
        """``steps`` vector steps of every worker acting with ``q``'s weights (DQN), joined
        along the env axis (``[steps, num_envs, ...]``)."""
        weights = self.pool.put(to_numpy(q.state_dict()))
        args = [(weights, eps, steps, random_steps)] * self.pool.num_workers
        parts = [from_numpy(p) for p in self.pool.call("collect_transitions", args)]
        last = {"last_obs": 0, "last_mask": 0}
        joined = {k: _cat([p[k] for p in parts], last.get(k, 1)) for k in parts[0]}
        return _to(joined, self.device)

    def collector_state(self) -> dict[str, torch.Tensor]:
        return _to(_cat(self.pool.call("collector_state")), self.device)

    def _collect(self, policy: torch.nn.Module) -> list[dict[str, Any]]:
        """Every worker's collection with ``policy``'s weights (put in the object store once),
        as dicts of tensors that still point into the object store (copy before writing)."""
        weights = self.pool.put(to_numpy(policy.state_dict()))
        parts = self.pool.call("collect", [(weights,)] * self.pool.num_workers)
        return [from_numpy(p) for p in parts]

    def pop_notes(self) -> list[str]:
        return self.pool.pop_notes()

    def close(self) -> None:
        self.pool.close()


class RemoteRolloutCollector:
    """Stands in for :class:`~renshu.core.rollout.RolloutCollector` (PPO, A2C): same
    ``collect(policy)``, the rollout comes from the workers."""

    def __init__(self, env: RayEnv):
        self.env = env

    def collect(self, policy: torch.nn.Module) -> Rollout:
        return self.env.collect_rollout(policy)

    def state_dict(self) -> dict:
        """The workers' current observations (same format as a local collector, so a local
        algorithm loads a Ray run's checkpoint)."""
        return self.env.collector_state()

    def load_state_dict(self, state: dict) -> None:
        """A resumed Ray run keeps the workers' own fresh episodes: their env states are not in
        the checkpoint, so observations from it would not match them."""


def collect_transitions(algo: Any, env: RayEnv, stats: dict[str, list[torch.Tensor]]) -> None:
    """DQN's collection on the workers: they act with the learner's Q-network and epsilon for
    ``algo.vector_steps`` steps (random actions before ``learning_starts``, counted from the
    learner's env steps); the learner stores every step in its buffer, in time order."""
    cfg, n = algo.config, env.num_envs
    steps = algo.vector_steps
    random_steps = min(steps, max(0, -(-(cfg.learning_starts - algo.env_steps) // n)))
    batch = env.collect_transitions(algo.q, algo.epsilon, steps, random_steps)
    for t in range(steps):
        info = {"done": batch["done"][t], "final_obs": batch["final_obs"][t],
                "episode": {k: v[t] for k, v in batch["episode"].items()}}  # fmt: skip
        for key in ("life_loss", "final_action_mask"):
            if key in batch:
                info[key] = batch[key][t]
        algo.store(batch["obs"][t], batch["mask"][t], batch["action"][t], batch["reward"][t],
                   batch["terminated"][t], info, stats)  # fmt: skip
    algo.obs, algo.mask = batch["last_obs"], batch["last_mask"]


def attach(algo: Any, algo_name: str, env: RayEnv) -> Any:
    """Make ``algo`` (built on ``env``) collect on the Ray workers; returns ``algo``."""
    kind = check_supported(algo_name)
    if kind == "rollout":
        algo.collector = RemoteRolloutCollector(env)
    elif kind == "transitions":  # the instance attribute shadows DQN._collect
        algo._collect = functools.partial(collect_transitions, algo, env)
    else:  # the instance attribute shadows the class's local collection
        algo.collect = functools.partial(env.collect_episodes, algo.policy)
    return algo


def build_remote(spec: Any, cls: type, config: Any, device: torch.device) -> Any:
    """The algorithm of run ``spec`` (a RunSpec with ``backend="ray"``), collecting on
    ``spec.num_workers`` Ray workers (one CPU thread each unless ``spec.threads``)."""
    from renshu.envs.registry import make_env

    kind = check_supported(spec.algo)
    unit = config.group_size if kind == "episodes" else 1
    shares = split(config.num_envs, spec.num_workers, unit)
    factory = functools.partial(make_env, spec.env, device="cpu", **spec.env_options)
    pool = WorkerPool(
        spec.algo, config, factory, shares, seed=spec.seed, threads=spec.threads or 1,
        address=spec.ray_address,
    )  # fmt: skip
    try:
        env = RayEnv(pool, device)
        return attach(cls(env, config, seed=spec.seed), spec.algo, env)
    except BaseException:
        pool.close()
        raise
