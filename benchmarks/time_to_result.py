"""The seconds a user waits: the README's CartPole commands against RL Zoo's, whole process.

Every row is a whole process started the way a user starts it, in a fresh temporary working
directory, timed by the wall clock from spawn to exit (imports, building, training, the
evaluations, the files written at the end). Seeds run one after another, the rows interleaved
per seed; medians are over seeds.

* ``renshu train ALGO cartpole --target-return 475 [--seed S]``: the README's command with its
  defaults (the target-seeking evaluation schedule over 100 greedy episodes, 1 torch thread on
  CartPole, the learning curve and ``episode.gif`` at the end). Seed 0 is the command exactly.
* ``... --eval-every E --eval-episodes N``: the same with RL Zoo's cadence below.
* ``python -m rl_zoo3.train --algo ALGO --env CartPole-v1 --seed S --num-threads T
  --eval-freq -1 -params callback:[...]``: RL Zoo's training script with its tuned CartPole-v1
  hyperparameters (``hyperparams/ppo.yml``: 8 envs, 1e5 steps; ``dqn.yml``: 1 env, 5e4 steps;
  printed below from the installed package). RL Zoo has no flag that stops at a mean return,
  so the stop is added through its documented ``callback`` hyperparameter:
  :class:`ZooTargetCallback`, Stable-Baselines3's ``EvalCallback`` every E env steps (RL Zoo's
  conversion: every E // n_envs calls) over N deterministic episodes on an ``--n-eval-envs``
  vec env (RL Zoo's default 1: episodes one by one), ending ``learn()`` once the mean reaches
  the target. RL Zoo's own ``--eval-freq`` is off so that evaluation runs once per cadence;
  after ``learn()`` RL Zoo saves the model, as it always does. ``--num-threads 1`` is RL Zoo's
  advice for CPU and matches renshu's CartPole default.

Reported per run: whole-process seconds; for renshu also when its answer line (``target_reached:
N env steps in ...``) reached stdout (the learning curve and GIF are drawn after it); training
seconds to the target (renshu: ``summary.json``'s ``target_reached_seconds``, the runner's
clock, which starts once the agent and envs are built; RL Zoo: the callback's clock from
``on_training_start`` to the end of the passing evaluation); env steps at that evaluation.
Nothing is pinned: each process sees every core of the machine.

RL Zoo is not a renshu dependency, and ``pip install rl_zoo3`` would replace pillow with an
older release (moviepy, for its video uploads, pins pillow < 12). What ``rl_zoo3.train``
needs, without touching torch or pillow::

    .venv/bin/pip install optuna wasabi
    .venv/bin/pip install --no-deps rl_zoo3 sb3-team-hf-integration

    python benchmarks/time_to_result.py                       # PPO and DQN, seeds 0-2
    python benchmarks/time_to_result.py --algos ppo --seeds 5 --json out.json
    python benchmarks/time_to_result.py --eval-every 10000 --eval-episodes 100

The subprocess helpers here (:func:`run_timed`, :func:`renshu_cli`, :func:`read_run`) are also
what ``solve_cartpole.py`` and ``train_2048.py`` time ``renshu train`` with.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _common import cpu_model, fmt_ratio, version  # benchmarks/_common.py (this folder)

TARGET = 475.0  # CartPole-v1's reward threshold
HERE = Path(__file__).resolve().parent
# renshu's answer line, printed when training ends and before the final artefacts.
ANSWER = re.compile(r"^\w+: [\d,]+ env steps in ")
ZOO_INSTALL = (
    ".venv/bin/pip install optuna wasabi && "
    ".venv/bin/pip install --no-deps rl_zoo3 sb3-team-hf-integration"
)


# ---------------------------------------------------------------------------------------------
# Timing a command as a user runs it.


@dataclass
class Timed:
    """One timed process."""

    argv: list[str]
    returncode: int
    seconds: float  # spawn to exit, wall clock
    answer_seconds: float | None  # when a line matching ``answer`` reached stdout
    log: str  # its stdout and stderr

    def tail(self, lines: int = 15) -> str:
        return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-lines:])


def run_timed(
    argv: list[str], cwd: str | Path, log: str | Path, env: dict[str, str] | None = None,
    answer: re.Pattern | None = ANSWER, check: bool = True,
) -> Timed:  # fmt: skip
    """Run ``argv`` in ``cwd`` and time it from spawn to exit; its output (stdout and stderr
    together) goes to ``log`` as it comes, and the first line matching ``answer`` is timed too.
    A non-zero exit raises a RuntimeError with the command and the end of its output."""
    answer_at = None
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            if answer_at is None and answer is not None and answer.search(line):
                answer_at = time.perf_counter() - t0
            out.write(line)
        returncode = proc.wait()
    seconds = time.perf_counter() - t0
    timed = Timed(list(argv), returncode, seconds, answer_at, str(log))
    if check and returncode != 0:
        raise RuntimeError(
            f"exit status {returncode}: {' '.join(argv)}\n(in {cwd}; last lines of {log}:)\n"
            + timed.tail()
        )
    return timed


def renshu_cli() -> list[str]:
    """The installed ``renshu`` command: the one beside this Python, else on PATH."""
    here = Path(sys.executable).with_name("renshu")
    found = str(here) if here.is_file() else shutil.which("renshu")
    if found is None:
        raise SystemExit("the renshu command is not installed: pip install -e . (in the repo)")
    return [found]


def flags(values: dict) -> list[str]:
    """Config values as ``renshu train`` flags: ``{"num_envs": 8}`` -> ``--num-envs 8``."""
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (tuple, list)):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        out += [f"--{key.replace('_', '-')}", text]
    return out


def read_run(run_dir: str | Path) -> dict:
    """A finished run directory's ``summary.json``, ``config.json`` and evaluation count."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    try:
        with open(run_dir / "metrics.csv", newline="") as f:
            evals = sum(1 for row in csv.DictReader(f) if row.get("eval/mean_return"))
    except (OSError, csv.Error):
        evals = -1
    return {"summary": summary, "config": config, "evals": evals}


def find_run(cwd: str | Path) -> Path:
    """The one run directory that ``renshu train`` wrote under ``cwd/runs``."""
    found = sorted(Path(cwd).glob("runs/*/summary.json"))
    if len(found) != 1:
        raise RuntimeError(f"expected one run under {cwd}/runs, found {len(found)}")
    return found[0].parent


def median(values: list[float | None]) -> float:
    """Median with ``None`` (not reached) counted as +inf."""
    return statistics.median([math.inf if v is None else v for v in values])


def ratio(baseline: float | None, value: float | None) -> float | None:
    ok = baseline is not None and value is not None
    return baseline / value if ok and math.isfinite(baseline) and math.isfinite(value) else None


def fmt_s(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "not reached" if x is not None else "—"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def fmt_steps(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "not reached"
    return f"{x:,.0f}"


def machine_line(threads: str) -> str:
    """The line printed above every table: the CPU and the threads it ran."""
    return f"CPU: {cpu_model()}, {os.cpu_count()} cores; threads: {threads}"


# ---------------------------------------------------------------------------------------------
# RL Zoo's stop at a mean return, plugged in through its `callback` hyperparameter.


def _zoo_target_callback() -> type:
    import stable_baselines3 as sb3  # noqa: F401 (the error below names what is missing)
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.env_util import make_vec_env

    class ZooTargetCallback(EvalCallback):
        """SB3's EvalCallback every ``every`` env steps over ``episodes`` deterministic episodes;
        stops ``learn()`` when the mean reaches ``target`` and writes what happened to ``out``."""

        def __init__(
            self, out: str, every: int, episodes: int, target: float = TARGET,
            n_eval_envs: int = 1, seed: int = 1_000_003, env_id: str = "CartPole-v1",
        ) -> None:  # fmt: skip
            super().__init__(
                make_vec_env(env_id, n_envs=n_eval_envs, seed=seed), n_eval_episodes=episodes,
                eval_freq=every, deterministic=True, verbose=1,
            )  # fmt: skip
            self.out, self.every, self.target = out, every, target
            self.start = time.perf_counter()
            self.evals, self.reached = 0, None

        def _init_callback(self) -> None:
            self.eval_freq = max(self.every // self.training_env.num_envs, 1)  # as RL Zoo does
            super()._init_callback()

        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            go_on = super()._on_step()
            if self.n_calls % self.eval_freq == 0:
                self.evals += 1
                if self.reached is None and self.last_mean_reward >= self.target:
                    self.reached = (int(self.num_timesteps), time.perf_counter() - self.start)
                    self._write()
                    return False
            return go_on

        def _on_training_end(self) -> None:
            self._write()

        def _write(self) -> None:
            spent = time.perf_counter() - self.start
            result = {
                "reached": self.reached is not None,
                "steps": self.reached[0] if self.reached else None,
                "seconds": self.reached[1] if self.reached else None,
                "spent_steps": int(self.num_timesteps),
                "spent_seconds": self.reached[1] if self.reached else spent,
                "evals": self.evals,
                "last_eval": float(self.last_mean_reward) if self.evals else None,
                "torch_threads": _torch_threads(),
            }
            Path(self.out).write_text(json.dumps(result))

    return ZooTargetCallback


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def __getattr__(name: str):  # PEP 562: RL Zoo imports the callback by its dotted name
    if name == "ZooTargetCallback":
        return _zoo_target_callback()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def zoo_hyperparameters(algo: str) -> dict | None:
    """RL Zoo's CartPole-v1 entry of ``hyperparams/<algo>.yml`` in the installed package."""
    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or spec.origin is None:
        return None
    import yaml

    path = Path(spec.origin).parent / "hyperparams" / f"{algo}.yml"
    with open(path) as f:
        return yaml.safe_load(f)["CartPole-v1"]  # as RL Zoo reads it


# ---------------------------------------------------------------------------------------------
# The runs.


@dataclass
class Run:
    row: str
    algo: str
    seed: int
    command: str
    reached: bool
    steps: int | None  # env steps at the passing evaluation
    seconds: float | None  # training seconds to it
    process_seconds: float  # whole process
    answer_seconds: float | None  # renshu: when the answer line was printed
    spent_steps: int
    spent_seconds: float  # training seconds of the whole run
    evals: int
    last_eval: float | None
    extra: dict = field(default_factory=dict)


def run_renshu(
    algo: str, seed: int, extra: list[str], row: str, work: Path, target: float = TARGET
) -> Run:
    """``renshu train ALGO cartpole --target-return 475`` (+ ``--seed S`` + ``extra``) in a
    fresh directory, as the README writes it."""
    argv = [*renshu_cli(), "train", algo, "cartpole", "--target-return", f"{target:g}"]
    argv += (["--seed", str(seed)] if seed else []) + extra
    cwd = Path(tempfile.mkdtemp(prefix="renshu-ttr-", dir=work))
    timed = run_timed(argv, cwd, cwd / "output.log")
    run = read_run(find_run(cwd))
    s = run["summary"]
    last = s.get("last_eval") or {}
    shutil.rmtree(cwd, ignore_errors=True)
    return Run(
        row=row, algo=algo, seed=seed, command=" ".join(["renshu", *argv[1:]]),
        reached=s["target_reached_steps"] is not None, steps=s["target_reached_steps"],
        seconds=s["target_reached_seconds"], process_seconds=timed.seconds,
        answer_seconds=timed.answer_seconds, spent_steps=s["env_steps"],
        spent_seconds=s["wall_seconds"], evals=run["evals"], last_eval=last.get("mean_return"),
        extra={"device": s.get("device"), "status": s["status"]},
    )  # fmt: skip


def run_zoo(
    algo: str, seed: int, every: int, episodes: int, eval_envs: int, threads: int, work: Path,
    target: float = TARGET, extra: list[str] = (),
) -> Run:  # fmt: skip
    """``python -m rl_zoo3.train`` with the stop-at-target callback, in a fresh directory."""
    cwd = Path(tempfile.mkdtemp(prefix="zoo-ttr-", dir=work))
    out = cwd / "target.json"
    callback = {
        "time_to_result.ZooTargetCallback": {
            "out": str(out), "every": every, "episodes": episodes, "target": target,
            "n_eval_envs": eval_envs, "seed": seed + 1_000_003,
        }
    }  # fmt: skip
    argv = [
        sys.executable, "-m", "rl_zoo3.train", "--algo", algo, "--env", "CartPole-v1",
        "--seed", str(seed), "--num-threads", str(threads), "--eval-freq", "-1",
        "-params", f"callback:[{callback!r}]", *extra,
    ]  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    timed = run_timed(argv, cwd, cwd / "output.log", env=env, answer=None)
    r = json.loads(out.read_text())
    shutil.rmtree(cwd, ignore_errors=True)
    shown = (
        f"python -m rl_zoo3.train --algo {algo} --env CartPole-v1 --seed {seed} --num-threads "
        f"{threads} --eval-freq -1 -params callback:[ZooTargetCallback(every={every}, "
        f"episodes={episodes}, n_eval_envs={eval_envs})]" + "".join(f" {a}" for a in extra)
    )
    return Run(
        row=f"RL Zoo {algo.upper()}", algo=algo, seed=seed, command=shown, reached=r["reached"],
        steps=r["steps"], seconds=r["seconds"], process_seconds=timed.seconds,
        answer_seconds=None, spent_steps=r["spent_steps"], spent_seconds=r["spent_seconds"],
        evals=r["evals"], last_eval=r["last_eval"], extra={"torch_threads": r["torch_threads"]},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Reporting.


def summarize(runs: list[Run]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r.row for r in runs):
        rs = [r for r in runs if r.row == name]
        rows.append(
            {
                "row": name,
                "algo": rs[0].algo,
                "seeds": len(rs),
                "reached": sum(r.reached for r in rs),
                "median_process_seconds": median([r.process_seconds for r in rs]),
                "median_answer_seconds": median([r.answer_seconds for r in rs])
                if all(r.answer_seconds is not None for r in rs)
                else None,
                "median_seconds": median([r.seconds for r in rs]),
                "median_steps": median([r.steps for r in rs]),
            }
        )
    zoo = {row["algo"]: row for row in rows if row["row"].startswith("RL Zoo")}
    for row in rows:
        base = zoo.get(row["algo"])
        row["x_zoo_process"] = ratio(
            base and base["median_process_seconds"], row["median_process_seconds"]
        )
        row["x_zoo_training"] = ratio(base and base["median_seconds"], row["median_seconds"])
    return rows


def summary_table(rows: list[dict], target: float = TARGET) -> str:
    lines = [
        f"| run | seeds reached {target:g} | median whole process s | median s to the answer "
        f"line | median training s to {target:g} | median env steps | x RL Zoo, whole process "
        "| x RL Zoo, training |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['row']} | {row['reached']}/{row['seeds']} "
            f"| {fmt_s(row['median_process_seconds'])} | {fmt_s(row['median_answer_seconds'])} "
            f"| {fmt_s(row['median_seconds'])} | {fmt_steps(row['median_steps'])} "
            f"| {fmt_ratio(row['x_zoo_process'])} | {fmt_ratio(row['x_zoo_training'])} |"
        )
    return "\n".join(lines)


def per_seed_table(runs: list[Run]) -> str:
    lines = [
        "| run | seed | reached? | env steps | training s | whole process s | answer line s "
        "| evals | last eval mean | whole run: steps, training s |",
        "|---|---:|:---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        last = f"{r.last_eval:.1f}" if r.last_eval is not None else "—"
        lines.append(
            f"| {r.row} | {r.seed} | {'yes' if r.reached else 'no'} | {fmt_steps(r.steps)} "
            f"| {fmt_s(r.seconds)} | {fmt_s(r.process_seconds)} | {fmt_s(r.answer_seconds)} "
            f"| {r.evals} | {last} | {r.spent_steps:,}, {r.spent_seconds:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", default="ppo,dqn", help="ppo, dqn or both (ppo,dqn)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (3)")
    p.add_argument("--eval-every", type=int, default=10_000, help="RL Zoo's cadence (10000)")
    p.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation (20)")
    p.add_argument(
        "--zoo-eval-envs", type=int, default=1, help="RL Zoo's --n-eval-envs (its default 1)"
    )
    p.add_argument("--zoo-threads", type=int, default=1, help="RL Zoo's --num-threads (1)")
    p.add_argument(
        "--zoo-args", default="", help="extra arguments for every RL Zoo command (e.g. -n 5000)"
    )
    p.add_argument("--target", type=float, default=TARGET, help="mean return to reach (475)")
    p.add_argument("--no-zoo", action="store_true", help="skip RL Zoo")
    p.add_argument("--no-defaults", action="store_true", help="skip the README command row")
    p.add_argument(
        "--renshu-args", default="", help="extra flags for every renshu command (e.g. --steps N)"
    )
    p.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")
    args = p.parse_args(argv)
    args.algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    if not args.algos or any(a not in ("ppo", "dqn") for a in args.algos):
        p.error("--algos takes ppo, dqn or ppo,dqn")
    for name in ("seeds", "eval_every", "eval_episodes", "zoo_eval_envs", "zoo_threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> list[Run]:
    import shlex

    args = parse_args(argv)
    E, N = args.eval_every, args.eval_episodes
    extra, zoo_extra = shlex.split(args.renshu_args), shlex.split(args.zoo_args)
    zoo = not args.no_zoo and importlib.util.find_spec("rl_zoo3") is not None
    if not args.no_zoo and not zoo:
        print(f"rl_zoo3 is not installed ({ZOO_INSTALL}): RL Zoo rows skipped", file=sys.stderr)
    cadence = ["--eval-every", str(E), "--eval-episodes", str(N)]
    plan = []  # (row, algo, runner)
    for algo in args.algos:
        if not args.no_defaults:
            plan.append((f"renshu {algo.upper()} (README command)", algo, extra))
        plan.append((f"renshu {algo.upper()}, every {E:,} steps x {N} episodes", algo,
                     cadence + extra))  # fmt: skip
        if zoo:
            plan.append((f"RL Zoo {algo.upper()}", algo, None))
    work = Path(tempfile.mkdtemp(prefix="renshu-time-to-result-"))
    runs: list[Run] = []
    try:
        for seed in range(args.seeds):
            for row, algo, renshu_flags in plan:
                print(f"{row}, seed {seed} ...", file=sys.stderr, flush=True)
                if renshu_flags is None:
                    r = run_zoo(algo, seed, E, N, args.zoo_eval_envs, args.zoo_threads, work,
                                args.target, zoo_extra)  # fmt: skip
                else:
                    r = run_renshu(algo, seed, renshu_flags, row, work, args.target)
                runs.append(r)
                got = f"reached at {r.steps:,} steps" if r.reached else "not reached"
                print(f"  {got}; whole process {r.process_seconds:.1f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = summarize(runs)
    target = args.target

    versions = {
        "python": platform.python_version(),
        "torch": version("torch"),
        "renshu": version("renshu"),
        "stable-baselines3": version("stable-baselines3"),
        "rl_zoo3": version("rl_zoo3"),
        "gymnasium": version("gymnasium"),
    }
    devices = sorted({str(r.extra.get("device")) for r in runs if "device" in r.extra})
    zoo_threads = sorted({r.extra["torch_threads"] for r in runs if "torch_threads" in r.extra})
    threads = f"renshu {', '.join(devices)} (config.json's device)" + (
        f"; RL Zoo --num-threads {args.zoo_threads} (torch {zoo_threads})" if zoo else ""
    )
    print(f"# Time to a CartPole return of {target:g}, whole process ({time.strftime('%Y-%m-%d')})")
    print()
    print(f"- {machine_line(threads)}; nothing pinned")
    print(f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items() if v)}")
    print(f"- seeds 0..{args.seeds - 1}, one process after another; medians over seeds")
    print(
        f"- cadence: every {E:,} env steps, {N} deterministic episodes; RL Zoo's on a "
        f"{args.zoo_eval_envs}-env eval vec env; the README command's rows use renshu's "
        "defaults (the target-seeking schedule, 100 episodes)"
    )
    from renshu.envs.specs import resolve

    budget = resolve("cartpole").default_steps
    print(
        f"- budgets: renshu's CartPole default, {budget:,} env steps (unless --renshu-args sets "
        "--steps); RL Zoo's n_timesteps (unless --zoo-args sets -n)"
        + (f"; renshu flags added: `{' '.join(extra)}`" if extra else "")
        + (f"; RL Zoo arguments added: `{' '.join(zoo_extra)}`" if zoo_extra else "")
    )
    for algo in args.algos if zoo else ():
        hp = zoo_hyperparameters(algo)
        print(f"- RL Zoo {algo.upper()}: hyperparams/{algo}.yml CartPole-v1 = {hp}")
    for algo in args.algos:
        cmds = dict.fromkeys(r.command for r in runs if r.algo == algo and r.seed == 0)
        for cmd in cmds:
            print(f"- seed 0: `{cmd}`")
    print()
    print(machine_line(threads))
    print()
    print(summary_table(rows, target))
    print()
    print(machine_line(threads))
    print()
    print(per_seed_table(runs))
    if args.json:
        finite = [
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in r.items()
            }
            for r in rows
        ]
        meta = {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads,
                "versions": versions, "eval_every": E, "eval_episodes": N,
                "zoo_eval_envs": args.zoo_eval_envs, "zoo_threads": args.zoo_threads,
                "zoo_hyperparameters": {a: zoo_hyperparameters(a) for a in args.algos}
                if zoo else None}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "runs": [asdict(r) for r in runs], "summary": finite}, f,
                      indent=2, default=str)  # fmt: skip
    return runs


if __name__ == "__main__":
    main()
