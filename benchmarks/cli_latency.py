"""The seconds a user waits for the CLI itself: `renshu --help`, `renshu envs`, `renshu train
--help`, and a training run's start (process spawn to the first update done), next to the same
moments of Stable-Baselines3 and RL Zoo.

Each row is a fresh process, timed from spawn to exit (median of ``--repeats``); the training
row reads ``startup_seconds`` from the run's summary.json (the runner's own measure: process
start to the end of the first update) and also gives the whole process of a 2,048-step run.
The alternatives: `python -m rl_zoo3.train --help` (RL Zoo's CLI help, where installed) and
`python -c "import stable_baselines3"` (what any SB3 script pays before its first line); whole
runs against RL Zoo's are `time_to_result.py`'s.

    python benchmarks/cli_latency.py                 # 5 repeats per row
    python benchmarks/cli_latency.py --repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import version  # benchmarks/_common.py (this folder)
from time_to_result import machine_line, renshu_cli


def timed(argv: list[str], cwd: str | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, check=True)  # fmt: skip
    return time.perf_counter() - t0


def renshu_start(repeats: int) -> tuple[list[float], list[float]]:
    """(startup_seconds, whole-process seconds) of `renshu train ppo cartpole --steps 2048`."""
    starts, wholes = [], []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            argv = [*renshu_cli(), "train", "ppo", "cartpole", "--steps", "2048", "--no-progress",
                    "--threads", "1", "--seed", str(i), "--run-dir", str(run)]  # fmt: skip
            wholes.append(timed(argv))
            starts.append(
                json.loads((run / "summary.json").read_text()).get("startup_seconds")
                or float("nan")
            )
    return starts, wholes


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="processes per row (5)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    cli, py = renshu_cli(), sys.executable
    rows: list[dict] = []

    def row(name: str, seconds: list[float], target: str = "") -> None:
        rows.append({"what": name, "median_s": statistics.median(seconds), "runs": seconds,
                     "target": target})  # fmt: skip
        print(f"{name}: {statistics.median(seconds):.2f} s", file=sys.stderr)

    row("`renshu --help`", [timed([*cli, "--help"]) for _ in range(args.repeats)], "<= 0.5 s")
    row("`renshu envs`", [timed([*cli, "envs"]) for _ in range(args.repeats)], "<= 0.5 s")
    row("`renshu train ppo --help`", [timed([*cli, "train", "ppo", "--help"])
                                      for _ in range(args.repeats)])  # fmt: skip
    starts, wholes = renshu_start(args.repeats)
    row("`renshu train ppo cartpole`: spawn to first update done", starts, "<= 2 s")
    row("`renshu train ppo cartpole --steps 2048`: whole process", wholes)
    if version("rl_zoo3"):
        zoo = [py, "-m", "rl_zoo3.train", "--help"]
        row("`python -m rl_zoo3.train --help`", [timed(zoo) for _ in range(args.repeats)])
    if version("stable-baselines3"):
        sb3 = [py, "-c", "import stable_baselines3"]
        row("`import stable_baselines3`", [timed(sb3) for _ in range(args.repeats)])

    print(f"# CLI latency ({time.strftime('%Y-%m-%d')})\n")
    print(f"- {machine_line('1 torch thread for the training rows')}")
    print(f"- a fresh process per measurement, median of {args.repeats}\n")
    print("| what | median seconds | target |")
    print("|---|---:|---|")
    for r in rows:
        print(f"| {r['what']} | {r['median_s']:.2f} | {r['target']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
