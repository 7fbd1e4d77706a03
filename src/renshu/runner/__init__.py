"""Running training jobs: the run spec and directories (:mod:`~renshu.runner.run`), the loop
(:mod:`~renshu.runner.loop`), checkpoints and resume (:mod:`~renshu.runner.checkpoint`),
evaluation and recording (:mod:`~renshu.runner.evaluate`, :mod:`~renshu.runner.record`)."""

from renshu.runner.checkpoint import LATEST, CheckpointError, load_trained, resume_run
from renshu.runner.loop import NonFiniteLossError, Trainer, start_run
from renshu.runner.run import RunSpec, load_run

__all__ = [
    "LATEST",
    "CheckpointError",
    "NonFiniteLossError",
    "RunSpec",
    "Trainer",
    "load_run",
    "load_trained",
    "resume_run",
    "start_run",
]
