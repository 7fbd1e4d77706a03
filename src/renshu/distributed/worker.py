"""A rollout worker: one Ray actor holding a slice of the envs and a collecting copy of the
algorithm.

The worker builds the very same algorithm class the learner runs, on its own slice of the envs,
with the learner's config and ``learner=False`` (no replay memory, nothing that only learning
needs). It never learns: each round it loads the learner's acting state (weights, and the
counters exploration depends on) and calls the algorithm's own ``collect``, so its batch is
exactly what a local run would have collected on those envs. No code here knows which
algorithm it runs.

This module imports without Ray; :mod:`renshu.distributed.pool` turns the class into an actor.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


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
    Ray returns: copy them before writing to them."""
    if isinstance(value, np.ndarray):
        with warnings.catch_warnings():  # read-only arrays from the object store
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(value)
    if isinstance(value, dict):
        return {k: from_numpy(v) for k, v in value.items()}
    return value


def batch_to_numpy(batch: Any) -> tuple[type, dict[str, Any]]:
    """A batch dataclass as ``(its class, its fields as numpy arrays)`` for the object store."""
    return type(batch), {k: to_numpy(v) for k, v in vars(batch).items()}


def batch_from_numpy(cls: type, fields: dict[str, Any]) -> Any:
    return cls(**from_numpy(fields))


class RolloutWorker:
    """``num_envs`` envs from ``env_factory(num_envs=, seed=)`` and a collecting copy of the
    algorithm ``algo``.

    Args:
        algo: algorithm name (any of :data:`renshu.algos.ALGORITHMS`).
        config: the learner's config.
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
        self.env = env_factory(num_envs=num_envs, seed=seed)
        self.algo = get_algorithm(algo)(self.env, config, seed=seed, learner=False)
        self.collects = 0

    def describe(self) -> dict[str, Any]:
        """What the learner needs to know of the worker's envs and process."""
        env = self.env
        return {
            "pid": os.getpid(),
            "node": _node_ip(),
            "threads": torch.get_num_threads(),
            "num_envs": env.num_envs,
            "num_actions": env.num_actions,
            "observation_space": env.observation_space,
            "action_space": env.action_space,
            "max_episode_steps": env.max_episode_steps,
            "supports_groups": env.supports_groups,
            "frame_stack": env.frame_stack,
            "frame_padding": env.frame_padding,
        }

    def collect(self, acting_state: dict[str, Any], progress: float) -> tuple[type, dict]:
        """One ``collect`` of the algorithm after loading the learner's ``acting_state`` (numpy
        arrays, see :func:`to_numpy`); the batch as :func:`batch_to_numpy` gives it."""
        self.algo.load_acting_state(from_numpy(acting_state))
        self.collects += 1
        return batch_to_numpy(self.algo.collect(progress))

    def reset_groups(self, group_size: int, seed: int | None) -> tuple[Any, dict]:
        """The env's same-start groups (GRPO checks that the env can form them)."""
        obs, info = self.env.reset_groups(group_size, seed=seed)
        return to_numpy(obs), {"action_mask": to_numpy(info["action_mask"])}

    def close(self) -> None:
        self.env.close()


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray (unit use)
        return "local"
