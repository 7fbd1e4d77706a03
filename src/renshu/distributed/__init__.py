"""Beyond one machine: rollouts on Ray workers, and sweeps on Ray Tune.

``renshu train ALGO ENV --backend ray --num-workers N [--ray-address ADDR]`` collects on ``N``
Ray actors, each holding a slice of the envs and a copy of the policy (see
:mod:`renshu.distributed.env`); ``renshu sweep SPEC.toml`` runs a grid or random search over
config fields and seeds (see :mod:`renshu.distributed.sweep`). Ray is optional:
``pip install "renshu[distributed]"``.
"""

from renshu.distributed.cluster import RAY_EXTRA, check_reachable, connect, require_ray
from renshu.distributed.env import RayEnv, RemoteCollector, build_remote
from renshu.distributed.pool import WorkerPool, split
from renshu.distributed.worker import RolloutWorker

__all__ = [
    "RAY_EXTRA",
    "RayEnv",
    "RemoteCollector",
    "RolloutWorker",
    "WorkerPool",
    "build_remote",
    "check_reachable",
    "connect",
    "require_ray",
    "split",
]
