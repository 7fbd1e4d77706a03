"""The learner's side of remote collection: the envs' description, and the collector.

With ``--backend ray`` the learner builds its algorithm on a :class:`RayEnv`: a TensorEnv that
describes the ``num_envs`` envs living in the workers of a
:class:`~renshu.distributed.pool.WorkerPool` (worker ``i`` holds a consecutive slice) but is
never stepped by the learner. :class:`RemoteCollector` stands where ``algo.collect`` stands in a
local run: it sends the algorithm's acting state to every worker, each collects on its slice
with the algorithm's own ``collect``, and the learner joins their batches along the env axis
(the batch type's ``concat``) before ``algo.learn`` runs on them unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from renshu.distributed.pool import WorkerPool, split, worker_seed
from renshu.distributed.worker import batch_from_numpy, from_numpy, to_numpy
from renshu.envs.base import TensorEnv


def _to(value: Any, device: torch.device, copy: bool) -> Any:
    """Tensors nested in dicts moved to ``device``; ``copy``: never share the source memory."""
    if isinstance(value, torch.Tensor):
        moved = value.to(device)
        return moved.clone() if copy and moved.data_ptr() == value.data_ptr() else moved
    if isinstance(value, dict):
        return {k: _to(v, device, copy) for k, v in value.items()}
    return value


class RayEnv(TensorEnv):
    """``sum(pool.shares)`` envs stepped by the pool's workers, described as one TensorEnv on
    ``device`` (the learner's). Collection happens on the workers (:class:`RemoteCollector`):
    ``reset`` and ``step`` are not available here."""

    def __init__(self, pool: WorkerPool, device: torch.device | str = "cpu"):
        self.pool = pool
        self.device = torch.device(device)
        info = pool.info[0]
        self.num_envs = sum(pool.shares)
        self.num_actions = info["num_actions"]
        self.observation_space = info["observation_space"]
        self.action_space = info["action_space"]
        self.max_episode_steps = info["max_episode_steps"]
        self.frame_stack = info["frame_stack"]
        self.frame_padding = info["frame_padding"]
        self.supports_groups = info["supports_groups"]

    def __repr__(self) -> str:
        return f"RayEnv(num_envs={self.num_envs}, workers={self.pool.shares}, device={self.device})"

    def reset(self, seed: int | None = None):
        raise RuntimeError("a RayEnv's envs are stepped by its workers (RemoteCollector)")

    step = reset

    def reset_groups(self, group_size: int, seed: int | None = None):
        """Same-start groups on every worker (each checks that its envs can form them)."""
        shares = range(len(self.pool.shares))
        seeds = [None if seed is None else worker_seed(seed, i) for i in shares]
        parts = self.pool.call("reset_groups", [(group_size, s) for s in seeds])
        obs = torch.cat([from_numpy(o) for o, _ in parts]).to(self.device)
        mask = torch.cat([from_numpy(i["action_mask"]) for _, i in parts]).to(self.device)
        return obs, {"action_mask": mask}

    def pop_notes(self) -> list[str]:
        return self.pool.pop_notes()

    def close(self) -> None:
        self.pool.close()


class RemoteCollector:
    """``collect(progress)`` of ``algo`` (built on ``env``) run on the Ray workers."""

    def __init__(self, algo: Any, env: RayEnv):
        self.algo = algo
        self.env = env

    def __call__(self, progress: float) -> Any:
        pool = self.env.pool
        state = pool.put(to_numpy(self.algo.acting_state()))  # once for all workers
        parts = pool.call("collect", [(state, progress)] * pool.num_workers)
        batches = [batch_from_numpy(cls, fields) for cls, fields in parts]
        batch = type(batches[0]).concat(batches)
        # The workers' arrays are read-only object-store memory: one worker's batch is copied.
        return type(batch)(**_to(vars(batch), self.env.device, copy=len(batches) == 1))


def build_remote(spec: Any, cls: type, config: Any, device: torch.device) -> tuple[Any, Any]:
    """The algorithm of run ``spec`` (a RunSpec with ``backend="ray"``) and its collector on
    ``spec.num_workers`` Ray workers (one CPU thread each unless ``spec.threads``)."""
    from renshu.envs.registry import make_env

    shares = split(config.num_envs, spec.num_workers, config.env_multiple)
    factory = functools.partial(make_env, spec.env, device="cpu", **spec.env_options)
    pool = WorkerPool(
        spec.algo, config, factory, shares, seed=spec.seed, threads=spec.threads or 1,
        address=spec.ray_address,
    )  # fmt: skip
    try:
        env = RayEnv(pool, device)
        algo = cls(env, config, seed=spec.seed)
        return algo, RemoteCollector(algo, env)
    except BaseException:
        pool.close()
        raise
