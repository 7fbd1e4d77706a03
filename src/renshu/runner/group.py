"""Several seeds of one run on this machine, without a cluster (``renshu train --seeds 0,1,2``).

A group directory holds one ordinary run directory per seed (``seed-0/``, ``seed-1/``, ...,
each made by :func:`renshu.runner.start_run`, so ``eval``, ``record``, ``plot`` and ``--resume``
work on each), and, once they are done:

* ``group.json``: the algorithm, env, seeds and member directories, each seed's summary, and the
  aggregates (mean and std over seeds);
* ``summary.md``: the same as a table: per seed the status, env steps, wall-clock, the final
  evaluation's mean return (and the env's summarised extras, e.g. 2048's mean score) and when
  ``--target-return`` was reached, then mean ± std over the seeds (std over seeds, as
  ``renshu sweep`` reports it; time to target over the seeds that reached it);
* ``learning_curve.png``: the mean ± std band of the seeds' moving-average return
  (:func:`renshu.viz.plots.plot_groups`).

Seeds run one after another (each with the usual progress bar), or ``jobs`` at a time in
separate processes, each with ``cpu_count // jobs`` torch threads unless the run sets its own.
Ctrl-C stops the runs in progress as a single run does (they save a checkpoint) and starts no
further seed. Ray sweeps (``renshu sweep``) remain the tool for clusters and searches.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from renshu.errors import NonFiniteLossError
from renshu.runner.run import (
    CONFIG_FILE,
    SUMMARY_FILE,
    RunSpec,
    algo_config,
    write_json,
)

GROUP_FILE = "group.json"
TABLE_FILE = "summary.md"
CURVE_FILE = "learning_curve.png"


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` (or a list of ints) as distinct seeds >= 0, in order; a
    ValueError naming ``--seeds`` otherwise."""
    if isinstance(text, str):
        seeds: list[int] = []
        for part in (p.strip() for p in text.split(",")):
            match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not match:
                raise ValueError(
                    f"--seeds takes seeds >= 0 separated by commas, or a range: 0,1,2 or 0-4; "
                    f"got {text!r}"
                )
            lo, hi = int(match[1]), int(match[2] if match[2] is not None else match[1])
            if hi < lo:
                raise ValueError(f"--seeds range {part!r} runs backwards; write {hi}-{lo}")
            seeds.extend(range(lo, hi + 1))
    else:
        seeds = list(text)
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f"seeds must be integers >= 0, got {seeds!r}")
    if not seeds:
        raise ValueError("--seeds needs at least one seed")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"--seeds lists seed {repeated[0]} twice; each seed runs once")
    return seeds


def default_group_dir(spec: RunSpec, seeds: Sequence[int]) -> Path:
    env = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.env)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{spec.algo}-{env}-seeds{len(seeds)}-{stamp}"


def seed_dir(group_dir: str | Path, seed: int) -> Path:
    return Path(group_dir) / f"seed-{seed}"


def _check_group_dir(group_dir: Path, overwrite: bool) -> bool:
    """Whether ``group_dir`` holds a group that ``overwrite`` will replace (refusing anything
    else that is not empty)."""
    if group_dir.exists() and not group_dir.is_dir():
        raise FileExistsError(f"group directory {group_dir} exists and is not a directory")
    if not (group_dir.exists() and any(group_dir.iterdir())):
        return False
    if not overwrite:
        raise FileExistsError(
            f"group directory {group_dir} already exists and is not empty; choose another "
            "--run-dir or pass --overwrite to replace it"
        )
    if not (group_dir / GROUP_FILE).is_file():
        raise FileExistsError(
            f"{group_dir} is not empty and not a renshu group directory (no {GROUP_FILE}); "
            "--overwrite replaces only group directories, so choose another --run-dir"
        )
    return True


def run_group(
    spec: RunSpec,
    algo_values: dict[str, Any],
    seeds: str | Sequence[int],
    group_dir: str | Path | None = None,
    overwrite: bool = False,
    jobs: int = 1,
    progress: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Run ``spec`` once per seed into ``group_dir`` and write its summary (see the module
    docstring); returns ``(group_dir, summary)`` where ``summary`` is what group.json holds.

    The spec and the algorithm's config are checked before anything is written: a bad value is
    one ValueError, and no directory is made.
    """
    seeds = parse_seeds(seeds)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs must be an integer >= 1, got {jobs!r}")
    spec = spec.resolved()
    algo_config(spec, algo_values)  # a bad config value fails here, before any directory
    group_dir = Path(group_dir) if group_dir is not None else default_group_dir(spec, seeds)
    replace = _check_group_dir(group_dir, overwrite)
    if replace:
        shutil.rmtree(group_dir)
    group_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "algo": spec.algo, "env": spec.env, "seeds": seeds, "jobs": jobs,
        "runs": {str(s): seed_dir(group_dir, s).name for s in seeds}, "status": "running",
        "run": dataclasses.asdict(spec), "algo_values": algo_values,
    }  # fmt: skip
    write_json(group_dir / GROUP_FILE, record)

    specs = [(seed, dataclasses.replace(spec, seed=seed)) for seed in seeds]
    errors: list[Exception] = []
    if jobs == 1 or len(seeds) == 1:
        interrupted = _run_in_turn(specs, algo_values, group_dir, progress)
    else:
        interrupted, errors = _run_in_processes(specs, algo_values, group_dir, jobs)
    record["status"] = "interrupted" if interrupted else ("failed" if errors else "finished")
    summary = summarize_group(group_dir, record)
    if errors:
        raise errors[0]
    return group_dir, summary


def _run_in_turn(specs, values, group_dir: Path, progress: bool) -> bool:
    from renshu.runner.loop import start_run

    for i, (seed, spec) in enumerate(specs):
        if progress:
            print(f"seed {seed} ({i + 1} of {len(specs)})", file=sys.stderr)
        try:
            _, summary = start_run(spec, values, run_dir=seed_dir(group_dir, seed),
                                   progress=progress)  # fmt: skip
        except NonFiniteLossError as e:  # its summary.json says so; the other seeds go on
            print(f"seed {seed}: {e}", file=sys.stderr)
            continue
        except KeyboardInterrupt:  # between two runs' loops
            return True
        if summary["status"] == "interrupted":
            return True
    return False


def _ignore_sigint() -> None:
    """Worker processes ignore Ctrl-C while idle; a training run installs its own handler
    (stop after the update and save) and restores this one after."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_seed(spec: RunSpec, values: dict[str, Any], run_dir: str, threads: int) -> str:
    """One seed in a worker process; returns its status."""
    import torch

    from renshu.runner.loop import start_run

    if spec.cpu_threads() is None:
        torch.set_num_threads(threads)
    try:
        _, summary = start_run(spec, values, run_dir=run_dir, progress=False)
    except NonFiniteLossError:
        return "nonfinite_loss"
    return summary["status"]


def _run_in_processes(specs, values, group_dir: Path, jobs: int) -> tuple[bool, list]:
    """Run the seeds ``jobs`` at a time; (interrupted, the errors the seeds' runs raised)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // jobs)
    interrupted, errors = False, []
    context = multiprocessing.get_context("spawn")  # no forked torch or CUDA state
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_ignore_sigint) as pool:
        futures = {
            pool.submit(_run_seed, spec, values, str(seed_dir(group_dir, seed)), threads): seed
            for seed, spec in specs
        }
        pending = set(futures)
        while pending:
            try:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:  # the runs in progress got it too: they stop and save
                interrupted = True
                for future in pending:
                    future.cancel()
                continue
            for future in done:
                if future.cancelled():
                    continue
                try:
                    status = future.result()
                except Exception as e:  # the other seeds go on; raised once all are done
                    errors.append(e)
                    status = f"failed: {e}"
                print(f"seed {futures[future]}: {status}", file=sys.stderr)
                interrupted |= status == "interrupted"
    return interrupted, errors


# ---------------------------------------------------------------------------------------------
# The summary


def _mean_std(values: Sequence[float | None]) -> dict[str, float] | None:
    """``{"mean", "std", "n"}`` of the finite values (std over them, not of the mean)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {"mean": mean, "std": std, "n": len(values)}


def _columns(env_spec) -> list[tuple[str, str, str]]:
    """(header, key in an evaluation summary, format) of the final evaluation's columns."""
    columns = [("final eval return", "mean_return", "{:.1f}")]
    for name, how in env_spec.extras.items():
        if how == "mean":
            columns.append((f"final eval {name.replace('_', ' ')}", f"mean_{name}", "{:.1f}"))
        elif how == "rate":
            columns.append((f"final eval {name.replace('_', ' ')} rate", f"{name}_rate", "{:.3f}"))
    return columns


def summarize_group(group_dir: str | Path, record: dict[str, Any] | None = None) -> dict:
    """Read the seeds' summary.json files, write group.json, summary.md and learning_curve.png
    of ``group_dir``, and return what group.json holds."""
    from renshu.envs.specs import resolve

    group_dir = Path(group_dir)
    if record is None:
        record = _read_group(group_dir)
    env_spec = resolve(record["env"])
    columns = _columns(env_spec)
    seeds: list[dict[str, Any]] = []
    for seed, name in record["runs"].items():
        path = group_dir / name / SUMMARY_FILE
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {"status": "not run"}
        seeds.append({"seed": int(seed), "dir": name, **summary})
    aggregates: dict[str, Any] = {}
    for _, key, _ in columns:
        aggregates[key] = _mean_std([(s.get("last_eval") or {}).get(key) for s in seeds])
    reached = [s for s in seeds if s.get("target_reached_steps") is not None]
    aggregates["target_reached"] = len(reached)
    aggregates["target_reached_steps"] = _mean_std([s["target_reached_steps"] for s in reached])
    aggregates["target_reached_seconds"] = _mean_std([s["target_reached_seconds"] for s in reached])
    out = {**record, "seed_summaries": seeds, "aggregates": aggregates}
    write_json(group_dir / GROUP_FILE, out)
    table = group_table(out, columns)
    (group_dir / TABLE_FILE).write_text(table, encoding="utf-8")
    runs = [group_dir / s["dir"] for s in seeds if (group_dir / s["dir"] / CONFIG_FILE).is_file()]
    if runs:
        from renshu.viz.plots import plot_groups

        n = len(runs)
        plot_groups([runs], group_dir / CURVE_FILE, labels=[group_dir.name],
                    title=f"{record['algo']} on {record['env']}, {n} seed{'s' if n != 1 else ''}: "
                    "mean \u00b1 std")  # fmt: skip
    return out


def _fmt(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _fmt_pair(pair: dict[str, float] | None, fmt: str) -> str:
    return "-" if pair is None else f"{fmt.format(pair['mean'])} \u00b1 {fmt.format(pair['std'])}"


def group_table(summary: dict[str, Any], columns: list[tuple[str, str, str]] | None = None) -> str:
    """The markdown table of a group's summary (what summary.md holds)."""
    from renshu.envs.specs import resolve

    if columns is None:
        columns = _columns(resolve(summary["env"]))
    target = summary["run"].get("target_return")
    head = ["seed", "status", "env steps", "wall s", *(c[0] for c in columns)]
    head += [f"steps to {target:g}", f"seconds to {target:g}"] if target is not None else []
    rows = []
    for s in summary["seed_summaries"]:
        ev = s.get("last_eval") or {}
        row = [str(s["seed"]), s.get("status", "-"), _fmt(s.get("env_steps"), "{:,}"),
               _fmt(s.get("wall_seconds"), "{:.1f}"),
               *(_fmt(ev.get(key), fmt) for _, key, fmt in columns)]  # fmt: skip
        if target is not None:
            row += [_fmt(s.get("target_reached_steps"), "{:,}"),
                    _fmt(s.get("target_reached_seconds"), "{:.1f}")]  # fmt: skip
        rows.append(row)
    agg = summary["aggregates"]
    n = len(summary["seed_summaries"])
    mean_row = ["mean ± std", f"{n} seeds", "", "",
                *(_fmt_pair(agg[key], fmt) for _, key, fmt in columns)]  # fmt: skip
    if target is not None:
        reached = f" ({agg['target_reached']} of {n} reached)"
        mean_row += [_fmt_pair(agg["target_reached_steps"], "{:,.0f}") + reached,
                     _fmt_pair(agg["target_reached_seconds"], "{:.1f}")]  # fmt: skip
    lines = [
        f"# {summary['algo']} on {summary['env']}, seeds {', '.join(map(str, summary['seeds']))}",
        "",
        "Final evaluation of each seed; mean ± std over seeds (std over seeds, not of the "
        "mean)."
        + (" Time to target: over the seeds that reached it." if target is not None else ""),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "| " + " | ".join(mean_row) + " |",
    ]
    return "\n".join(lines) + "\n"


def _read_group(group_dir: Path) -> dict[str, Any]:
    path = group_dir / GROUP_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["runs"], record["env"], record["algo"]  # noqa: B018 (the keys it needs)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a renshu group file: {e}") from None
    return record


def group_members(path: str | Path) -> list[Path]:
    """The run directories of a group, for ``renshu plot --group``: a group directory (its
    group.json's runs, else its subdirectories that are run directories), or a glob pattern
    (quoted, so the shell leaves it alone) whose matches that are run directories form one
    group. A ValueError when there are none."""
    text = str(path)
    if glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(text))
        runs = [p for p in found if (p / CONFIG_FILE).is_file()]
        if not runs:
            raise ValueError(f"no run directories match {text!r}")
        return runs
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"group directory {folder} does not exist")
    if (folder / GROUP_FILE).is_file():
        record = _read_group(folder)
        runs = [folder / name for name in record["runs"].values()]
        runs = [p for p in runs if (p / CONFIG_FILE).is_file()]
    elif (folder / CONFIG_FILE).is_file():
        runs = [folder]  # one run: a group of one
    else:
        runs = sorted(p for p in folder.iterdir() if (p / CONFIG_FILE).is_file())
    if not runs:
        raise ValueError(f"{folder} holds no run directories (no */{CONFIG_FILE})")
    return runs
