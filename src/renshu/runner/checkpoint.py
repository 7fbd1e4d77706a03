"""Checkpoints: tensors and plain data in one file, written atomically, read with
``torch.load(weights_only=True)`` so a file from elsewhere can never run code."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from renshu import fileio
from renshu.errors import CheckpointError
from renshu.fileio import atomic_open, check_free_space, write_error

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

FORMAT = "renshu-checkpoint"
VERSION = 2  # 2: algorithms with collect/learn (renshu 0.2); 1 is refused with a message
LATEST = "checkpoints/latest.pt"


_PLAIN = (type(None), bool, int, float, str, torch.Tensor)


def _check_plain(value: Any, where: str) -> None:
    """Refuse anything ``torch.load(weights_only=True)`` would refuse (so every file loads)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint key {where}[{key!r}] must be a str or int")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(
            f"checkpoint value {where} is a {type(value).__name__}; checkpoints hold only "
            "tensors, numbers, strings, None, lists and dicts"
        )


def estimated_size(payload: Any) -> int:
    """A lower bound of the bytes ``torch.save`` writes for ``payload``: its tensors' storages
    (each counted once), a few hundred bytes per record and 64 kB for the rest."""
    seen: set[int] = set()
    total = 65536

    def walk(value: Any) -> None:
        nonlocal total
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            if storage.data_ptr() not in seen or storage.nbytes() == 0:
                seen.add(storage.data_ptr())
                total += storage.nbytes() + 512
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(payload)
    return total


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically.

    A checkpoint that cannot fit in the free space is refused before anything is written; a
    write that fails leaves the previous file as it was. Both raise
    :class:`~renshu.errors.WriteError` with one line naming ``path``."""
    path = Path(path)
    _check_plain(payload, "payload")
    data = {"format": FORMAT, "version": VERSION, **payload}
    needed = estimated_size(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(path, e) from None
    check_free_space(path, needed)
    with atomic_open(path, "wb", needed=needed) as f:
        try:
            torch.save(data, f)
        except RuntimeError as e:  # torch's zip writer may report a short write its own way
            code = errno.ENOSPC if fileio.free_bytes(path.parent) < needed else errno.EIO
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else "failed"
            raise OSError(code, f"{os.strerror(code)}: torch: {first}") from None
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a renshu checkpoint safely; raise :class:`CheckpointError` with the reason otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # e.g. torch's note on a foreign pickle protocol
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    except Exception as e:  # corrupt bytes raise almost anything from inside the unpickler
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
        if "Weights only load failed" in text:
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            what = f" ({found.group(1)})" if found else ""
            reason = (
                f"it holds objects other than tensors and plain data{what}, which renshu "
                "refuses to load because loading them could run code"
            )
        else:
            first = text.splitlines()[0].split(". ")[0] if text else type(e).__name__
            reason = f"it cannot be read as plain tensors and data: {first[:200]}"
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a renshu checkpoint ({reason})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a renshu checkpoint (no '{FORMAT}' marker)")
    if data.get("version") != VERSION:
        older = isinstance(data.get("version"), int) and data["version"] < VERSION
        raise CheckpointError(
            f"checkpoint {path} has format version {data.get('version')}; this renshu reads "
            f"version {VERSION}"
            + (" (it was written by an older renshu: train the run again)" if older else "")
        )
    return data


# ---------------------------------------------------------------------------------------------
# A run's checkpoint: the algorithm, its env's games, and the loop's counters.


def save_run_checkpoint(path: Path, spec, algo, state) -> Path:
    """Write what resuming run ``spec`` needs (``state``: the loop's RunnerState)."""
    return save_checkpoint(
        path,
        {
            "algo": spec.algo,
            "env": spec.env,
            "algo_state": algo.state_dict(),
            "env_state": algo.env.state_dict(),
            "runner": {
                "wall_seconds": state.wall_seconds,
                "updates": state.updates,
                "evals": state.evals,
                "recent": list(state.recent),
                "target_reached": state.target_reached,
                "last_eval": json.dumps(state.last_eval),
            },
        },
    )


def _check_matches(data: dict, spec) -> None:
    if data.get("algo") != spec.algo or data.get("env") != spec.env:
        raise CheckpointError(
            f"checkpoint is for {data.get('algo')} on {data.get('env')}, "
            f"but this run is {spec.algo} on {spec.env}"
        )


def _load_algo(algo, data: dict, with_env: bool) -> None:
    try:
        algo.load_state_dict(data["algo_state"])
        if with_env and data.get("env_state"):
            algo.env.load_state_dict(data["env_state"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint does not match this run's configuration: {e}") from None


def restore_runner(data: dict, spec, algo, state) -> None:
    """Load a checkpoint into a freshly built run: algorithm, env games, loop counters."""
    _check_matches(data, spec)
    _load_algo(algo, data, with_env=True)
    r = data["runner"]
    state.wall_seconds = float(r["wall_seconds"])
    state.updates = int(r["updates"])
    state.evals = int(r["evals"])
    state.recent.extend(r["recent"])
    state.target_reached = r["target_reached"]
    state.last_eval = json.loads(r["last_eval"])


def resume_run(
    run_dir: str | Path,
    steps: int | None = None,
    progress: bool = True,
    stop_after_updates: int | None = None,
    ray_address: str | None = None,
) -> dict:
    """Continue a run from its latest checkpoint towards its budget (or a raised ``steps``);
    a Ray run may continue on another cluster (``ray_address``).

    The run directory is locked for the whole run (a run still training elsewhere is refused
    with its PID); temporaries of killed saves are removed first. A run directory with a
    config but no checkpoint yet (stopped before its first update ended) starts the same run
    afresh."""
    from renshu.fileio import RunLock, remove_stale_temporaries
    from renshu.runner.loop import Trainer
    from renshu.runner.run import CONFIG_FILE, clear_run_dir, load_run, record_budget

    run_dir = Path(run_dir)
    spec, values = load_run(run_dir)  # (a directory that is no run is refused before the lock)
    if ray_address is not None:
        spec.ray_address = ray_address
    with RunLock(run_dir):
        remove_stale_temporaries(run_dir)
        fresh = not (run_dir / LATEST).exists()
        data = None if fresh else load_checkpoint(run_dir / LATEST)
        if steps is not None:
            budget = spec.total_steps()
            if budget is not None and steps < budget:
                raise ValueError(
                    f"--steps {steps} is below the run's budget of {budget} steps; "
                    "--resume can only keep or raise it"
                )
            spec.steps = steps
        trainer = Trainer(run_dir, spec, values, progress, stop_after_updates)
        if fresh:  # nothing learned was kept: the same run from its start
            clear_run_dir(run_dir, keep=(CONFIG_FILE,))
            print(f"{run_dir} has no checkpoint yet: starting the run afresh", file=sys.stderr)
        else:
            trainer.restore(data)
        if steps is not None:  # record the raised budget only once the checkpoint proved usable
            record_budget(run_dir, steps)
        return trainer.train()


def load_trained(run_dir: str | Path, device: str | None = None):
    """(algo with the run's latest weights, spec) for evaluation and recording."""
    import dataclasses

    from renshu.fileio import remove_stale_temporaries
    from renshu.runner.run import build, load_run

    spec, values = load_run(run_dir)
    if device is not None:
        spec.device = device
    remove_stale_temporaries(run_dir)  # of killed saves (dead processes' only)
    data = load_checkpoint(Path(run_dir) / LATEST)
    if data.get("algo") != spec.algo:
        raise CheckpointError(f"checkpoint in {run_dir} is for {data.get('algo')}, not {spec.algo}")
    algo, _, _ = build(dataclasses.replace(spec, backend="local"), values)
    _load_algo(algo, data, with_env=False)
    return algo, spec
