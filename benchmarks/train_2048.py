"""Training on 2048 as a user runs it: env steps/s of ``renshu train``, and the agent's strength.

Every run is ``renshu train ALGO game2048 --minutes M --seed S --run-dir DIR [FLAGS]``, the
installed CLI in a process of its own, as a user types it: the periodic evaluations (at every
tenth of the time), the logging, the checkpoints, the final learning curve and ``episode.gif``
all happen as they do for a user. Each run reports

* env steps/s of the training: ``summary.json``'s ``steps_per_second`` (env steps over the
  runner's wall clock, which starts once the agent and envs are built and includes the
  periodic evaluations), and of the whole process (env steps over the wall clock from spawn to
  exit: imports, building and the final artefacts too);
* strength: the final policy (``load_trained(run_dir)``, greedy: argmax over legal moves) plays
  ``--eval-games`` games from evaluation seed ``EVAL_SEED`` after the process has exited (mean
  score, the share of games whose largest tile reaches 512/1024/2048/4096), next to uniformly
  random legal play from the same seed (the same starting boards; the games diverge as the
  moves differ).

``--configs NAME=FLAGS,...`` runs PPO configurations one after another in the same invocation
(FLAGS: ``renshu train`` flags, ``--num-minibatches 4``, or ``key=value`` words separated by
spaces, ``num_minibatches=4``; a comma followed by ``NAME=`` starts the next configuration).
``today`` is the PPO preset as it was committed when issue 21's work began, kept here as the
named row the speed-ups are measured against (``TODAY``: the fields it set; every other field is
``PPOConfig``'s default); any other name starts from the preset as it is now
(``resolve("game2048").preset("ppo")``), so ``preset=`` is the current preset itself. Each
configuration's "x today" is its env steps/s over the ``today`` row's, from the same
invocation. The default is ``today=,preset=``.

``--algos ppo,a2c,dqn,grpo,ntuple`` runs each algorithm with its 2048 preset (an algorithm
without one runs on its defaults, and the table says so) for the same minutes and prints one
strength table. ``ppo`` reuses the ``preset=`` configuration's run when both are asked for.

``--split-updates N`` (default 3; 0 skips it) also times N updates of each PPO configuration
in this process (after one warm-up update; ``renshu.runner.run.build``, then ``collect`` and
``learn`` with both and ``env.step`` timed) to show where an update's time goes.

Threads: ``--threads T`` passes ``--threads T`` to every run and pins this process, and so the
runs it starts, to T cores when T is below the core count; without it the runs use renshu's
default for 2048 (torch's thread count). The tables say what config.json recorded.

    python benchmarks/train_2048.py                         # today= and preset=, 15 min each
    python benchmarks/train_2048.py --quick                 # 0.5 min each, 200 games
    python benchmarks/train_2048.py --configs "today=,preset=,mb4=--num-minibatches 4"
    python benchmarks/train_2048.py --algos ppo,a2c,dqn,grpo,ntuple   # the strength table
    python benchmarks/train_2048.py --minutes 5 --skip-strength --json out.json
    python benchmarks/train_2048.py --threads 1 --concurrent   # today= and preset= side by side
    python benchmarks/train_2048.py --threads 1 --concurrent --configs preset= \
        --algos ppo,a2c,dqn,grpo,ntuple                         # two at a time
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _common import (  # benchmarks/_common.py (this folder)
    cpu_model,
    fmt_rate,
    fmt_ratio,
    set_threads,
    version,
)
from time_to_result import (  # benchmarks/time_to_result.py: renshu train as a user runs it
    flags,
    machine_line,
    read_run,
    renshu_cli,
    run_timed,
)

# The PPO 2048 preset as committed when issue 21's work began (the "today" row).
TODAY = (
    "num_envs=256 num_steps=64 learning_rate=3e-4 gamma=0.99 gae_lambda=0.9 num_minibatches=8 "
    "update_epochs=3 ent_coef=0.005 hidden=256,256 activation=relu shared_torso=true "
    "reward_scale=0.01"
)
ALGOS = ("ppo", "a2c", "dqn", "grpo", "ntuple")
EVAL_SEED = 20_480  # evaluation games (distinct from the training seed's envs)
REACH_TILES = (512, 1024, 2048, 4096)
# Flags the script sets itself on every run.
OWN_FLAGS = {"run_minutes": "--minutes", "run_seed": "--seed", "run_dir": "--run-dir",
             "resume": "--resume", "seeds": "--seeds", "run_threads": "--threads"}  # fmt: skip


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Configurations.


@dataclass
class Config:
    name: str
    algo: str
    flags: list[str]  # renshu train flags on top of the preset
    note: str = ""  # e.g. "no 2048 preset: the algorithm's defaults"


def expand(text: str) -> list[str]:
    """FLAGS -> ``renshu train`` arguments: ``num_minibatches=4`` becomes ``--num-minibatches
    4``; ``--flag value`` stays as it is."""
    out = []
    for token in shlex.split(text):
        m = re.fullmatch(r"([A-Za-z_]\w*)=(.*)", token)
        out += [f"--{m.group(1).replace('_', '-')}", m.group(2)] if m else [token]
    return out


def today_flags() -> list[str]:
    """The ``today`` row's flags: TODAY's fields, and every other field the current preset sets
    put back to ``PPOConfig``'s default (e.g. ``--bf16 off``), so that the row stays the preset
    of that day whatever the preset becomes."""
    from renshu.algos import get_algorithm
    from renshu.envs.specs import resolve

    given = {word.split("=", 1)[0] for word in shlex.split(TODAY)}
    default = get_algorithm("ppo").config_class()
    preset = resolve("game2048").preset("ppo")
    return expand(TODAY) + flags({k: getattr(default, k) for k in preset if k not in given})


def parse_configs(texts: list[str]) -> list[Config]:
    """``["today=,preset=,mb4=--num-minibatches 4"]`` -> configurations (checked by the CLI's
    own parser, so that a typo fails now rather than after an hour of runs)."""
    from renshu.algos import get_algorithm
    from renshu.runner.run import RunSpec

    fields = {f.name for f in dataclasses.fields(get_algorithm("ppo").config_class)}
    fields |= {f.name for f in dataclasses.fields(RunSpec)}
    configs: list[Config] = []
    for text in texts:
        for part in re.split(r",(?=\s*[A-Za-z_][\w.-]*=)", text):
            part = part.strip()
            if not part:
                continue
            name, sep, rest = part.partition("=")
            name = name.strip()
            if not sep or not re.fullmatch(r"[A-Za-z_][\w.-]*", name):
                raise ValueError(f"--configs takes NAME=FLAGS,...; got {part!r}")
            if name in fields:
                raise ValueError(
                    f"--configs: {name!r} is a config field, not a configuration name; separate "
                    "a configuration's flags with spaces (e.g. mb4=num_minibatches=4 "
                    "update_epochs=2)"
                )
            if any(c.name == name for c in configs):
                raise ValueError(f"--configs: {name!r} is given twice")
            base = today_flags() if name == "today" else []
            configs.append(Config(name, "ppo", base + expand(rest)))
    for config in configs:
        check_flags(config)
    return configs


def check_flags(config: Config) -> argparse.Namespace:
    """The parsed ``renshu train`` arguments of a configuration; one clear error if bad."""
    from renshu.cli import build_parser

    argv = ["train", config.algo, "game2048", *config.flags]
    try:
        args = build_parser(config.algo).parse_args(argv)
    except SystemExit:
        raise ValueError(
            f"--configs {config.name}: renshu train does not take {' '.join(config.flags)!r} "
            f"(see `renshu train {config.algo} --help`)"
        ) from None
    given = [flag for dest, flag in OWN_FLAGS.items() if getattr(args, dest, None) is not None]
    if given:
        raise ValueError(
            f"--configs {config.name}: this script sets {', '.join(given)} on every run"
        )
    return args


# ---------------------------------------------------------------------------------------------
# Runs.


@dataclass
class Result:
    name: str
    algo: str
    command: str
    flags: list[str]
    note: str
    env_steps: int
    train_seconds: float  # summary.json's wall_seconds (the runner's clock)
    steps_per_second: float  # summary.json's (training)
    process_seconds: float  # the whole process, spawn to exit
    process_steps_per_second: float
    updates: int
    status: str
    device: str | None
    algo_config: dict
    strength: dict | None = None
    split: dict | None = None
    extra: dict = field(default_factory=dict)


def run_config(
    config: Config, minutes: float, seed: int, threads: int | None, run_dir: Path,
    core: int | None = None,
):  # fmt: skip
    """``renshu train ALGO game2048 --minutes M ...`` in a process of its own (on CPU core
    ``core`` alone when given: ``taskset -c``)."""
    argv = [*renshu_cli(), "train", config.algo, "game2048", "--minutes", f"{minutes:g}",
            "--seed", str(seed), "--run-dir", str(run_dir)]  # fmt: skip
    argv += (["--threads", str(threads)] if threads else []) + config.flags
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    pin = ["taskset", "-c", str(core)] if core is not None else []
    timed = run_timed(pin + argv, run_dir.parent, run_dir.parent / f"{run_dir.name}.log")
    run = read_run(run_dir)
    s = run["summary"]
    return Result(
        name=config.name, algo=config.algo, command=" ".join(["renshu", *argv[1:]]),
        flags=config.flags, note=config.note, env_steps=s["env_steps"],
        train_seconds=s["wall_seconds"],
        steps_per_second=s["steps_per_second"], process_seconds=timed.seconds,
        process_steps_per_second=s["env_steps"] / timed.seconds, updates=s["updates"],
        status=s["status"], device=s.get("device"), algo_config=run["config"]["algo_config"],
        extra={"answer_seconds": timed.answer_seconds, "evals": run["evals"]},
    )  # fmt: skip


def evaluate_run(run_dir: Path, games: int) -> dict:
    """The final greedy policy of a finished run over ``games`` games from ``EVAL_SEED``."""
    from renshu.runner import load_trained
    from renshu.runner.evaluate import evaluate, make_eval_env, summarize

    algo, spec = load_trained(run_dir)
    t0 = time.perf_counter()
    env = make_eval_env(spec, games, algo.device)
    stats = evaluate(lambda o, m: algo.act(o, m, deterministic=True), env, games, seed=EVAL_SEED)
    env.close()
    return _describe(stats, summarize(stats, spec.env_spec), time.perf_counter() - t0)


def evaluate_random(games: int) -> dict:
    import torch

    from renshu.runner import RunSpec
    from renshu.runner.evaluate import evaluate, make_eval_env, summarize
    from renshu.runner.record import random_policy

    spec = RunSpec(algo="ppo", env="game2048").resolved()
    act, _ = random_policy(EVAL_SEED)
    t0 = time.perf_counter()
    env = make_eval_env(spec, games, torch.device("cpu"))
    stats = evaluate(act, env, games, seed=EVAL_SEED)
    env.close()
    return _describe(stats, summarize(stats, spec.env_spec), time.perf_counter() - t0)


def _describe(stats: dict, summary: dict, seconds: float) -> dict:
    """summarize()'s numbers plus the median score and the max-tile shares."""
    scores = stats["score"].double()
    tiles = stats["max_tile"]
    out = dict(summary)
    out["median_score"] = float(statistics.median(scores.tolist()))
    out["max_score"] = float(scores.max())
    out["reach"] = {str(t): float((tiles >= t).double().mean()) for t in REACH_TILES}
    out["games"] = int(tiles.numel())
    out["eval_seconds"] = seconds
    return out


def run_split(config: Config, updates: int, seed: int) -> dict:
    """Seconds per update in rollout collection (and env.step within it) vs learning, in this
    process, with the configuration's values."""
    import torch

    from renshu.algos import get_algorithm
    from renshu.config import overrides_from_args
    from renshu.runner import RunSpec
    from renshu.runner.run import build

    args = check_flags(config)
    values = overrides_from_args(args, get_algorithm(config.algo).config_class)
    run = overrides_from_args(args, RunSpec, "run_", "run setting")
    run = {k: v for k, v in run.items() if k not in ("steps", "target_return", "eval_every")}
    options = dict(kv.split("=", 1) for kv in args.env_option)
    spec = RunSpec(algo=config.algo, env="game2048", env_options=options, seed=seed, **run)
    spec = spec.resolved()
    if spec.cpu_threads():
        torch.set_num_threads(spec.cpu_threads())
    algo, collect, cfg = build(spec, values)
    clock = {"collect": 0.0, "env_step": 0.0}
    env_step = algo.env.step

    def timed_step(*a, **k):
        t = time.perf_counter()
        try:
            return env_step(*a, **k)
        finally:
            clock["env_step"] += time.perf_counter() - t

    algo.env.step = timed_step  # an instance attribute: only this agent's env is affected
    algo.learn(collect(0.0), 0.0)  # warm-up (first-call allocations, optimizer state)
    clock.update(collect=0.0, env_step=0.0)
    t0 = time.perf_counter()
    for i in range(updates):
        progress = i / max(updates, 1)  # as the runner does; only the LR depends on it
        t = time.perf_counter()
        batch = collect(progress)
        clock["collect"] += time.perf_counter() - t
        algo.learn(batch, progress)
    total = time.perf_counter() - t0
    algo.env.close()
    steps = updates * algo.steps_per_update
    return {
        "updates": updates,
        "steps_per_update": algo.steps_per_update,
        "minibatches_per_update": cfg.num_minibatches * cfg.update_epochs,
        "minibatch_size": algo.steps_per_update // cfg.num_minibatches,
        "seconds": total,
        "collect_seconds": clock["collect"],
        "env_step_seconds": clock["env_step"],
        "learn_seconds": total - clock["collect"],
        "steps_per_second": steps / total,
        "torch_threads": torch.get_num_threads(),
    }


# ---------------------------------------------------------------------------------------------
# Reporting.


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _score_cells(st: dict | None, tiles=REACH_TILES) -> list[str]:
    if st is None:
        return ["—"] * (1 + len(tiles))
    return [f"{st['mean_score']:,.0f}"] + [_pct(st["reach"][str(t)]) for t in tiles]


def _differences(config: dict, base: dict | None) -> str:
    if base is None:
        return "—"
    diff = [f"{k} {base.get(k)!r} -> {v!r}" for k, v in config.items() if base.get(k) != v]
    return "; ".join(diff).replace("'", "") or "none"


def configs_table(results: list[Result], rand: dict | None) -> str:
    today = next((r for r in results if r.name == "today"), None)
    base = today.algo_config if today else None
    tiles = "".join(f" | >= {t}" for t in REACH_TILES[1:])
    lines = [
        "| config | differs from today in | env steps | training s | whole process s "
        "| env steps/s, training | env steps/s, whole process | x today, training "
        f"| x today, whole process | mean score{tiles} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:" + "|---:" * len(REACH_TILES[1:]) + "|",
    ]
    for r in results:
        x = today and r.steps_per_second / today.steps_per_second
        xp = today and r.process_steps_per_second / today.process_steps_per_second
        cells = [
            r.name, _differences(r.algo_config, base), f"{r.env_steps:,}",
            f"{r.train_seconds:.0f}", f"{r.process_seconds:.0f}", fmt_rate(r.steps_per_second),
            fmt_rate(r.process_steps_per_second), fmt_ratio(x), fmt_ratio(xp),
            *_score_cells(r.strength, REACH_TILES[1:]),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if rand is not None:
        cells = ["random legal moves", "—", *["—"] * 7, *_score_cells(rand, REACH_TILES[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def algos_table(results: list[Result], rand: dict | None) -> str:
    tiles = "".join(f" | >= {t}" for t in REACH_TILES)
    lines = [
        "| algorithm | config | env steps | env steps/s, training | whole process s "
        f"| mean score{tiles} |",
        "|---|---|---:|---:|---:|---:" + "|---:" * len(REACH_TILES) + "|",
    ]
    for r in results:
        cells = [
            r.algo, r.note or "its 2048 preset", f"{r.env_steps:,}",
            fmt_rate(r.steps_per_second), f"{r.process_seconds:.0f}", *_score_cells(r.strength),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if rand is not None:
        cells = ["random legal moves", "—", "—", "—", "—", *_score_cells(rand)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tiles_table(named: list[tuple[str, dict]]) -> str:
    """Share of games per largest tile, one column per run."""
    tiles = sorted({int(k) for _, st in named for k in st["max_tile_counts"]}, reverse=True)
    lines = [
        "| max tile | " + " | ".join(name for name, _ in named) + " |",
        "|---:" + "|---:" * len(named) + "|",
    ]
    for tile in tiles:
        cells = [_pct(st["max_tile_counts"].get(str(tile), 0) / st["games"]) for _, st in named]
        lines.append(f"| {tile:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def split_table(name: str, split: dict) -> str:
    n, total, per = split["updates"], split["seconds"], split["steps_per_update"]
    rows = [
        ("rollout collection (`algo.collect`)", split["collect_seconds"]),
        ("  of which `env.step` (the game)", split["env_step_seconds"]),
        ("  of which the policy forward pass + buffers",
         split["collect_seconds"] - split["env_step_seconds"]),
        (f"learning (GAE + {split['minibatches_per_update']} minibatches of "
         f"{split['minibatch_size']:,}: `algo.learn`)", split["learn_seconds"]),
        ("whole update", total),
    ]  # fmt: skip
    lines = [
        f"| {name}: part of one update ({per:,} env steps) | ms per update | share "
        "| env steps/s if alone |",
        "|---|---:|---:|---:|",
    ]
    for label, sec in rows:
        rate = per * n / sec if sec > 0 else float("inf")
        lines.append(
            f"| {label} | {1000 * sec / n:,.0f} | {_pct(sec / total)} | {fmt_rate(rate)} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def run_all(one, jobs: list[tuple[Config, str]], args: argparse.Namespace) -> list:
    """``one(config, label[, core])`` for each job: one after another, or with
    ``--concurrent`` as many at a time as there are cores, each run on a core of its own."""
    if not args.concurrent:
        return [one(config, label) for config, label in jobs]
    import queue
    from concurrent.futures import ThreadPoolExecutor

    free: queue.Queue[int] = queue.Queue()
    for core in args.cores:
        free.put(core)

    def on_a_core(config: Config, label: str):
        core = free.get()
        try:
            return one(config, label, core)
        finally:
            free.put(core)

    with ThreadPoolExecutor(len(args.cores)) as pool:
        return list(pool.map(lambda job: on_a_core(*job), jobs))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=None, help="minutes per run (15; quick: 0.5)")
    p.add_argument(
        "--configs",
        action="append",
        default=None,
        metavar="NAME=FLAGS,...",
        help="PPO configurations (repeatable; default today=,preset= unless --algos is given)",
    )
    p.add_argument(
        "--algos", default=None, help=f"algorithms on their 2048 presets: {','.join(ALGOS)}"
    )
    p.add_argument(
        "--eval-games", type=int, default=None, help="games per policy (1000; quick: 200)"
    )
    p.add_argument("--skip-strength", action="store_true", help="no evaluation games")
    p.add_argument(
        "--split-updates", type=int, default=3, help="timed updates per config (3; 0: none)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads of every run")
    p.add_argument("--seed", type=int, default=0, help="training seed (0)")
    p.add_argument(
        "--run-dir", default=None, help="keep the runs in DIR/NAME (a new or empty DIR; default: "
        "a temporary directory, deleted at the end)",
    )  # fmt: skip
    p.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")
    p.add_argument("--quick", action="store_true", help="smoke run: 0.5 min per run, 200 games")
    p.add_argument(
        "--concurrent", action="store_true",
        help="train as many runs at a time as there are cores, each pinned to a core of its own "
        "(needs --threads 1): rows that share the machine's load, for a fair ratio on a busy "
        "machine",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.minutes is None:
        args.minutes = 0.5 if args.quick else 15.0
    if args.eval_games is None:
        args.eval_games = 200 if args.quick else 1000
    if not args.minutes > 0:
        p.error("--minutes must be > 0")
    if args.eval_games < 1 or args.split_updates < 0 or (args.threads or 1) < 1:
        p.error("--eval-games and --threads must be >= 1, --split-updates >= 0")
    algos = [a.strip() for a in (args.algos or "").split(",") if a.strip()]
    if any(a not in ALGOS for a in algos) or (args.algos is not None and not algos):
        p.error(f"--algos takes a comma-separated subset of {','.join(ALGOS)}")
    args.algos = algos
    if args.concurrent:
        if args.threads != 1 or not shutil.which("taskset"):
            p.error("--concurrent needs --threads 1 and the taskset command")
        args.cores = sorted(os.sched_getaffinity(0))
    if args.configs is None:
        args.configs = [] if algos else ["today=,preset="]
    try:
        args.configs = parse_configs(args.configs)
    except ValueError as e:
        p.error(str(e))
    if args.run_dir is not None:
        d = Path(args.run_dir)
        if d.exists() and (not d.is_dir() or any(d.iterdir())):
            p.error(f"--run-dir {d} exists and is not an empty directory; choose a new one")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cores = set_threads(args.threads) if args.threads else []
    import torch

    from renshu.envs.specs import resolve

    presets = resolve("game2048").presets
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    root = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="renshu-2048-"))
    games = None if args.skip_strength else args.eval_games

    failed: dict[str, str] = {}  # run -> why (a failed run is reported, the others go on)

    def one(config: Config, label: str, core: int | None = None) -> Result | None:
        log(f"{label}: {args.minutes:g} min ...")
        run_dir = root / re.sub(r"[^\w.-]+", "-", label)
        try:
            r = run_config(config, args.minutes, args.seed, args.threads, run_dir, core)
        except RuntimeError as e:
            lines = str(e).strip().splitlines()
            failed[label] = f"`{lines[0]}`: {lines[-1]}"
            log(f"  FAILED: {failed[label]}")
            return None
        log(f"  {r.steps_per_second:,.0f} env steps/s training, {r.process_seconds:.0f} s process")
        if games:
            r.strength = evaluate_run(run_dir, games)
            log(f"  mean score {r.strength['mean_score']:,.0f} over {games} games")
        return r

    configs: list[Result] = []
    algos: list[Result] = []
    rand = None
    try:
        # One list of runs (configurations, then algorithms), so that --concurrent keeps every
        # core busy; PPO's --algos row is the preset= configuration's run when there is one.
        has_preset = any(c.name == "preset" and not c.flags for c in args.configs)
        jobs = [(c, f"config-{c.name}") for c in args.configs]
        for algo in args.algos:
            if algo != "ppo" or not has_preset:
                note = "" if algo in presets else "no 2048 preset: the algorithm's defaults"
                jobs.append((Config(algo, algo, [], note), f"algo-{algo}"))
        results = run_all(one, jobs, args)
        by_label = dict(zip([label for _, label in jobs], results, strict=True))
        for config in args.configs:
            r = by_label[f"config-{config.name}"]
            if r is None:
                continue
            if args.split_updates:
                log(f"  split: {args.split_updates} updates (+1 warm-up) ...")
                r.split = run_split(config, args.split_updates, args.seed)
            configs.append(r)
        same = [r for r in configs if r.name == "preset" and not r.flags]
        for algo in args.algos:
            r = same[0] if algo == "ppo" and same else by_label.get(f"algo-{algo}")
            if r is not None:
                algos.append(r)
        if games:
            log(f"random policy: {games} games ...")
            rand = evaluate_random(games)
    finally:
        if args.run_dir is None:
            shutil.rmtree(root, ignore_errors=True)

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": version("numpy"),
        "renshu": version("renshu"),
    }
    devices = sorted({str(r.device) for r in configs + algos})
    threads = f"{', '.join(devices)} (config.json's device)" + (
        f"; pinned to cores {cores}"
        if args.threads and not args.concurrent and len(cores) < (os.cpu_count() or 0)
        else ""
    )
    installed = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    where = f"{machine_line(threads)}; {installed}"
    print(f"# 2048: `renshu train` for {args.minutes:g} min per run ({time.strftime('%Y-%m-%d')})")
    print()
    print(f"- {where}")
    if load is not None:
        print(f"- load average at start (1/5/15 min): {' / '.join(f'{x:.2f}' for x in load)}")
    print(
        f"- each run: `renshu train ALGO game2048 --minutes {args.minutes:g} --seed {args.seed} "
        f"--run-dir DIR{f' --threads {args.threads}' if args.threads else ''} [FLAGS]`, its own "
        "process; env steps/s, training = summary.json's steps_per_second (the runner's clock, "
        "periodic evaluations included); whole process = env steps / (spawn to exit)"
    )
    if args.concurrent:
        print(
            f"- runs trained {len(args.cores)} at a time in the order listed, each pinned to a "
            f"core of its own (cores {args.cores}), so that runs side by side share whatever "
            "else the machine was doing"
        )
    if games:
        print(
            f"- strength: the final greedy policy over {games:,} games from evaluation seed "
            f"{EVAL_SEED} (random play: the same starting boards); score = sum of merged tiles"
        )
    for r in configs + [a for a in algos if a not in configs]:
        print(f"- {r.name}: `{r.command}`")
    if configs:
        print()
        print("## PPO configurations")
        print()
        print(where)
        print()
        print(configs_table(configs, rand))
        splits = [r for r in configs if r.split]
        for r in splits:
            print()
            print(f"{where}; {r.split['torch_threads']} torch threads in this process")
            print()
            print(split_table(r.name, r.split))
    if algos:
        print()
        print(f"## Algorithms after {args.minutes:g} minutes each")
        print()
        print(where)
        print()
        print(algos_table(algos, rand))
    named = [(r.name, r.strength) for r in configs + [a for a in algos if a not in configs]]
    named = [(n, st) for n, st in named if st] + ([("random", rand)] if rand else [])
    if named:
        print()
        print(f"Largest tile per game, share of {games:,} games ({where}):")
        print()
        print(tiles_table(named))
    if failed:
        print()
        print("Failed runs (not in the tables):")
        print()
        for label, why in failed.items():
            print(f"- {label}: {why}")
    if args.run_dir is not None:
        print()
        print(f"Run directories: `{root}/`")
    out = {
        "meta": {
            "cpu": cpu_model(), "cores": os.cpu_count(), "cores_used": cores,
            "threads": args.threads, "devices": devices, "load_average_at_start": load,
            "seed": args.seed, "minutes": args.minutes, "eval_games": games,
            "eval_seed": EVAL_SEED, "today": TODAY, "preset": presets.get("ppo"),
            "versions": versions,
        },
        "configs": [asdict(r) for r in configs],
        "algos": [asdict(r) for r in algos],
        "random": rand,
        "failed": failed,
    }  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
    return out


if __name__ == "__main__":
    main()
