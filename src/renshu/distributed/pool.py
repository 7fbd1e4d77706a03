"""A pool of rollout-worker actors that replaces any worker that dies.

Every call goes to all workers at once (``call``). When a worker's actor has died (its process
crashed or was killed, or its node went away), the pool starts a new actor in its place, with
the same share of the envs and a fresh seed, notes what happened (``pop_notes``) and repeats
the call there. A worker whose replacement keeps dying ``max_restarts`` times stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from renshu.distributed.cluster import connect, require_ray
from renshu.distributed.worker import RolloutWorker

START_TIMEOUT_S = 180.0
SEED_STRIDE = 1_000_003  # worker i's seed: seed + SEED_STRIDE * i (+ 7919 per restart)
RESTART_SEED_STRIDE = 7919


def split(total: int, parts: int, unit: int = 1) -> list[int]:
    """``total`` envs in ``parts`` shares as equal as possible, each a multiple of ``unit``
    (the config's ``env_multiple``: GRPO's groups stay whole)."""
    blocks = total // unit
    if parts < 1:
        raise ValueError(f"--num-workers must be >= 1, got {parts}")
    if blocks < parts:
        what = "groups (num_groups)" if unit > 1 else "envs (num_envs)"
        raise ValueError(
            f"{parts} workers need at least {parts} {what}; the config has {blocks}. "
            "Raise it or use fewer workers."
        )
    base, extra = divmod(blocks, parts)
    return [(base + (i < extra)) * unit for i in range(parts)]


def worker_seed(seed: int, index: int, generation: int = 0) -> int:
    return seed + SEED_STRIDE * index + RESTART_SEED_STRIDE * generation


class WorkerPool:
    """``len(shares)`` :class:`RolloutWorker` actors, worker ``i`` stepping ``shares[i]`` envs.

    Args:
        algo: algorithm name; ``config``: the learner's config.
        env_factory: picklable ``f(num_envs=, seed=) -> TensorEnv`` run inside each worker.
        shares: envs per worker (see :func:`split`).
        seed: the run's seed (worker seeds derive from it).
        threads: torch threads per worker (each worker asks Ray for that many CPUs).
        address: Ray cluster to join; None starts a local Ray (unless one is running already).
        max_restarts: replacements allowed per worker before the run stops.
    """

    def __init__(
        self,
        algo: str,
        config: Any,
        env_factory: Callable[..., Any],
        shares: Sequence[int],
        seed: int = 0,
        threads: int = 1,
        address: str | None = None,
        max_restarts: int = 5,
    ):
        self.ray = require_ray()
        self.algo, self.config, self.env_factory = algo, config, env_factory
        self.shares = list(shares)
        self.seed, self.threads, self.max_restarts = seed, threads, max_restarts
        self.address = address
        self.owns_ray = connect(address, num_cpus=len(self.shares) * threads)
        self.restarts = [0] * len(self.shares)
        self.notes: list[str] = []
        self._actor_cls = self.ray.remote(RolloutWorker).options(num_cpus=threads, max_restarts=0)
        self.handles: list[Any] = []
        try:
            self.handles = [self._start(i) for i in range(len(self.shares))]
            self.info = self._wait_started(self.handles)
        except BaseException:
            self.close()
            raise
        where = address or "a local Ray"
        hosts = ", ".join(f"{d['node']} pid {d['pid']}" for d in self.info)
        self.notes.append(
            f"ray backend: {len(self.shares)} workers on {where}, envs per worker "
            f"{self.shares}, {threads} thread(s) each ({hosts})"
        )

    @property
    def num_workers(self) -> int:
        return len(self.handles)

    def _start(self, i: int) -> Any:
        return self._actor_cls.remote(
            self.algo, self.config, self.env_factory, self.shares[i],
            worker_seed(self.seed, i, self.restarts[i]), self.threads,
        )  # fmt: skip

    def _wait_started(self, handles: Sequence[Any]) -> list[dict]:
        refs = [h.describe.remote() for h in handles]
        try:
            return self.ray.get(refs, timeout=START_TIMEOUT_S)
        except self.ray.exceptions.GetTimeoutError:
            raise RuntimeError(
                f"{len(handles)} Ray workers ({self.threads} CPU each) did not start within "
                f"{START_TIMEOUT_S:g} s; the cluster offers {self.ray.available_resources()} "
                "- use fewer --num-workers or add nodes"
            ) from None
        except self.ray.exceptions.RayActorError as e:  # e.g. the env cannot be built there
            last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ValueError(f"a Ray worker could not start: {last}") from None

    def _replace(self, i: int, error: BaseException) -> None:
        self.restarts[i] += 1
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if self.restarts[i] > self.max_restarts:
            raise RuntimeError(
                f"ray worker {i} died {self.restarts[i]} times (last: {reason}); giving up"
            ) from error
        try:
            self.ray.kill(self.handles[i], no_restart=True)
        except Exception:  # already gone
            pass
        started = time.perf_counter()
        self.handles[i] = self._start(i)
        (info,) = self._wait_started([self.handles[i]])
        self.info[i] = info
        self.notes.append(
            f"ray worker {i} died ({type(error).__name__}: {reason[:200]}); restarted as pid "
            f"{info['pid']} on {info['node']} in {time.perf_counter() - started:.1f} s "
            f"(restart {self.restarts[i]} of at most {self.max_restarts}; its "
            f"{self.shares[i]} envs start new episodes)"
        )

    def call(self, method: str, args: Sequence[tuple] | None = None) -> list[Any]:
        """``method(*args[i])`` on every worker ``i`` at once; their results in worker order.
        A worker that died is replaced and the call repeated on the new actor."""
        args = list(args) if args is not None else [()] * self.num_workers
        refs = [getattr(h, method).remote(*a) for h, a in zip(self.handles, args)]
        results: list[Any] = []
        for i, ref in enumerate(refs):
            while True:
                try:
                    results.append(self.ray.get(ref))
                    break
                except self.ray.exceptions.RayActorError as e:
                    self._replace(i, e)
                    ref = getattr(self.handles[i], method).remote(*args[i])
        return results

    def put(self, value: Any) -> Any:
        """Store ``value`` once in the object store (to send the same weights to every worker)."""
        return self.ray.put(value)

    def pop_notes(self) -> list[str]:
        notes, self.notes = self.notes, []
        return notes

    def close(self) -> None:
        """Stop the workers, and Ray itself when this pool started it."""
        for handle in self.handles:
            try:
                self.ray.kill(handle, no_restart=True)
            except Exception:
                pass
        self.handles = []
        if self.owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self.owns_ray = False
