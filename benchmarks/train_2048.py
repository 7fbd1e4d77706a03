"""PPO on 2048 end to end: training throughput, and the strength of the trained agent.

Part 1, throughput. renshu's PPO with its 2048 preset (``resolve("game2048").preset("ppo")``
of ``renshu.envs.specs``: 256 envs x 64 steps per update, 8 minibatches, 3 epochs, shared
256x256 ReLU torso over embedded tile exponents) trains for ``--throughput-seconds`` through the
real runner: ``start_run(RunSpec(algo="ppo", env="game2048", minutes=S/60, eval_every=10**12,
animation=False, threads=T), {}, run_dir=tmp, progress=False)`` (``renshu.runner``). The
end-to-end figure is ``summary.json``'s ``steps_per_second`` (env steps / runner wall time:
collection, learning, logging; no periodic evaluation, the runner's clock starts after the
agent and envs are built).
A second agent built with ``renshu.runner.run.build`` then runs ``--split-updates`` more
updates (after one untimed warm-up update), each ``collect(progress)`` then
``algo.learn(batch, progress)`` with both and ``env.step`` timed, to split each update into
rollout collection (of which the env's own ``step``) and learning (GAE + the PPO epochs).

The "original program" -- the per-step PyTorch PPO people write for 2048 (one game, one network
call and one Python env step per move) -- ran at 240 env steps/s in the issue; that figure is
quoted here as a reference constant, **not measured by this script**. The issue's target is
25,000 env steps/s end to end.

Part 2, strength. A ``--minutes`` training run with the same preset
(``RunSpec(..., minutes=M, eval_every=10**12, eval_episodes=G)``; the learning rate anneals to 0
over the M minutes), then the final greedy policy (``load_trained(run_dir)``, argmax over legal
actions) plays ``--eval-games`` games (``make_eval_env`` + ``evaluate(..., seed=EVAL_SEED)`` +
``summarize``), and a uniformly random legal policy (``random_policy``) plays the same number of
games from the same evaluation seed (the same starting boards; the games diverge as the moves
differ). The issue's target: mean score >= 8,000 and the 1024 tile in >= 50% of games.

Threads: ``torch.set_num_threads(T)`` (the runner sets the same T), and when T is below the
number of cores the process is pinned to T cores.

    python benchmarks/train_2048.py                          # 60 s throughput + 15 min training
    python benchmarks/train_2048.py --quick                  # 20 s + 1 min, 200 eval games
    python benchmarks/train_2048.py --skip-strength --json out.json
    python benchmarks/train_2048.py --minutes 30 --run-dir runs/ppo-2048-bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import (  # benchmarks/_common.py (this folder)
    cpu_model,
    fmt_rate,
    fmt_ratio,
    set_threads,
    version,
)

ORIGINAL_STEPS_PER_S = 240.0  # the "original program" (per-step PyTorch PPO); not measured
TARGET_STEPS_PER_S = 25_000.0  # the throughput target
TARGET_MEAN_SCORE = 8_000.0  # the strength target: mean score ...
TARGET_TILE, TARGET_TILE_SHARE = 1024, 0.5  # ... and the 1024 tile in >= 50% of games
EVAL_SEED = 20_480  # evaluation games (distinct from the training seed's envs)
REACH_TILES = (256, 512, 1024, 2048)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Part 1: throughput.


def run_throughput(seconds: float, threads: int, seed: int) -> dict:
    """Train for ``seconds`` through the runner; the run's summary.json figures."""
    from renshu.runner import RunSpec, start_run

    spec = RunSpec(
        algo="ppo", env="game2048", seed=seed, minutes=seconds / 60.0, eval_every=10**12,
        animation=False, threads=threads,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="renshu-2048-tp-") as tmp:
        run_dir = Path(tmp) / "run"
        t0 = time.perf_counter()
        start_run(spec, {}, run_dir=run_dir, progress=False)
        call = time.perf_counter() - t0
        summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "seconds_budget": seconds,
        "env_steps": summary["env_steps"],
        "wall_seconds": summary["wall_seconds"],
        "steps_per_second": summary["steps_per_second"],
        "updates": summary["updates"],
        "start_run_call_seconds": call,
    }


def run_split(updates: int, threads: int, seed: int) -> dict:
    """Seconds per update in rollout collection (and env.step within it) vs learning."""
    import torch

    from renshu.runner import RunSpec
    from renshu.runner.run import build

    torch.set_num_threads(threads)
    spec = RunSpec(algo="ppo", env="game2048", seed=seed, threads=threads).resolved()
    algo, collect, config = build(spec, {})
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
    steps = updates * algo.steps_per_update
    learn = total - clock["collect"]
    return {
        "updates": updates,
        "steps_per_update": algo.steps_per_update,
        "minibatches_per_update": config.num_minibatches * config.update_epochs,
        "minibatch_size": algo.steps_per_update // config.num_minibatches,
        "seconds": total,
        "collect_seconds": clock["collect"],
        "env_step_seconds": clock["env_step"],
        "learn_seconds": learn,
        "steps_per_second": steps / total,
        "collect_steps_per_second": steps / clock["collect"],
        "learn_steps_per_second": steps / learn,
    }


# ---------------------------------------------------------------------------------------------
# Part 2: strength.


def run_strength(minutes: float, games: int, threads: int, seed: int, run_dir: Path) -> dict:
    from renshu.runner import RunSpec, load_trained, start_run
    from renshu.runner.evaluate import evaluate, make_eval_env, summarize
    from renshu.runner.record import random_policy

    spec = RunSpec(
        algo="ppo", env="game2048", seed=seed, minutes=minutes, eval_every=10**12,
        eval_episodes=games, animation=False, threads=threads,
    )  # fmt: skip
    log(f"training {minutes:g} min into {run_dir} ...")
    _, train = start_run(spec, {}, run_dir=run_dir, progress=False)

    algo, spec = load_trained(run_dir)
    log(f"greedy policy: {games} games ...")
    t0 = time.perf_counter()
    env = make_eval_env(spec, games, algo.device)
    stats = evaluate(
        lambda o, m: algo.act(o, m, deterministic=True), env, games, seed=EVAL_SEED
    )  # fmt: skip
    trained = _describe(stats, summarize(stats, spec.env_spec), time.perf_counter() - t0)

    log(f"random policy: {games} games ...")
    t0 = time.perf_counter()
    act, _ = random_policy(EVAL_SEED)
    env = make_eval_env(spec, games, algo.device)
    stats = evaluate(lambda o, m: act(o, m).to(o.device), env, games, seed=EVAL_SEED)
    rand = _describe(stats, summarize(stats, spec.env_spec), time.perf_counter() - t0)

    return {
        "run_dir": str(run_dir),
        "train": {
            "minutes": minutes,
            "env_steps": train["env_steps"],
            "wall_seconds": train["wall_seconds"],
            "steps_per_second": train["steps_per_second"],
            "updates": train["updates"],
            "status": train["status"],
        },
        "eval_seed": EVAL_SEED,
        "games": games,
        "trained": trained,
        "random": rand,
        "targets": _targets(trained),
    }


def _describe(stats: dict, summary: dict, seconds: float) -> dict:
    """summarize()'s numbers plus the median score and the max-tile shares."""
    scores = stats["score"].double()
    tiles = stats["max_tile"]
    n = int(tiles.numel())
    out = dict(summary)
    out["median_score"] = float(statistics.median(scores.tolist()))
    out["max_score"] = float(scores.max())
    out["reach"] = {str(t): float((tiles >= t).double().mean()) for t in REACH_TILES}
    out["max_tile_counts"] = {k: int(v) for k, v in summary["max_tile_counts"].items()}
    out["games"] = n
    out["eval_seconds"] = seconds
    return out


def _targets(trained: dict) -> dict:
    share = trained["reach"][str(TARGET_TILE)]
    return {
        "mean_score": {
            "target": TARGET_MEAN_SCORE,
            "value": trained["mean_score"],
            "met": trained["mean_score"] >= TARGET_MEAN_SCORE,
        },
        f"reach_{TARGET_TILE}": {
            "target": TARGET_TILE_SHARE,
            "value": share,
            "met": share >= TARGET_TILE_SHARE,
        },
    }


# ---------------------------------------------------------------------------------------------
# Reporting.


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def throughput_table(tp: dict | None, split: dict | None) -> str:
    lines = [
        "| program | env steps/s (collection + learning) | x original | share of target |",
        "|---|---:|---:|---:|",
        "| original program (per-step PyTorch PPO; the issue's figure, not measured here) "
        f"| {fmt_rate(ORIGINAL_STEPS_PER_S)} | 1x "
        f"| {_pct(ORIGINAL_STEPS_PER_S / TARGET_STEPS_PER_S)} |",
    ]
    if tp is not None:
        r = tp["steps_per_second"]
        lines.append(
            f"| renshu PPO, runner end to end ({tp['wall_seconds']:.0f} s, "
            f"{tp['env_steps']:,} steps, {tp['updates']} updates) | {fmt_rate(r)} "
            f"| {fmt_ratio(r / ORIGINAL_STEPS_PER_S)} | {_pct(r / TARGET_STEPS_PER_S)} |"
        )
    if split is not None:
        r = split["steps_per_second"]
        lines.append(
            f"| renshu PPO, `collect` + `learn` alone ({split['updates']} updates after a "
            f"warm-up) | {fmt_rate(r)} | {fmt_ratio(r / ORIGINAL_STEPS_PER_S)} "
            f"| {_pct(r / TARGET_STEPS_PER_S)} |"
        )
    lines.append(
        f"| target (the issue) | {fmt_rate(TARGET_STEPS_PER_S)} "
        f"| {fmt_ratio(TARGET_STEPS_PER_S / ORIGINAL_STEPS_PER_S)} | 100% |"
    )
    return "\n".join(lines)


def split_table(split: dict) -> str:
    n = split["updates"]
    total = split["seconds"]
    per = split["steps_per_update"]
    policy = split["collect_seconds"] - split["env_step_seconds"]
    rows = [
        ("rollout collection (`algo.collect`)", split["collect_seconds"]),
        ("  of which `env.step` (the game)", split["env_step_seconds"]),
        ("  of which the policy forward pass + buffers", policy),
        (
            f"learning (GAE + {split['minibatches_per_update']} minibatches of "
            f"{split['minibatch_size']:,}: `algo.learn`)",
            split["learn_seconds"],
        ),
        ("whole update", total),
    ]  # fmt: skip
    lines = [
        f"| part of one update ({per:,} env steps) | ms per update | share "
        "| env steps/s if alone |",
        "|---|---:|---:|---:|",
    ]
    for name, sec in rows:
        rate = per * n / sec if sec > 0 else float("inf")
        lines.append(f"| {name} | {1000 * sec / n:,.0f} | {_pct(sec / total)} | {fmt_rate(rate)} |")
    return "\n".join(lines)


def strength_table(st: dict) -> str:
    t, r = st["trained"], st["random"]
    rows = [
        ("mean score", f"{t['mean_score']:,.0f}", f"{r['mean_score']:,.0f}"),
        ("median score", f"{t['median_score']:,.0f}", f"{r['median_score']:,.0f}"),
        ("max score", f"{t['max_score']:,.0f}", f"{r['max_score']:,.0f}"),
        (
            "mean return (± std)",
            f"{t['mean_return']:,.0f} ± {t['std_return']:,.0f}",
            f"{r['mean_return']:,.0f} ± {r['std_return']:,.0f}",
        ),
        ("max return", f"{t['max_return']:,.0f}", f"{r['max_return']:,.0f}"),
        ("mean game length (moves)", f"{t['mean_length']:,.0f}", f"{r['mean_length']:,.0f}"),
    ]
    rows += [
        (f"games reaching >= {tile}", _pct(t["reach"][str(tile)]), _pct(r["reach"][str(tile)]))
        for tile in REACH_TILES
    ]
    lines = [
        f"| {st['games']:,} games | trained PPO (greedy) | random legal moves |",
        "|---|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def tile_table(st: dict) -> str:
    t, r = st["trained"]["max_tile_counts"], st["random"]["max_tile_counts"]
    nt, nr = st["trained"]["games"], st["random"]["games"]
    tiles = sorted({int(k) for k in t} | {int(k) for k in r}, reverse=True)
    lines = [
        "| max tile | trained: games | trained: share | random: games | random: share |",
        "|---:|---:|---:|---:|---:|",
    ]
    for tile in tiles:
        a, b = t.get(str(tile), 0), r.get(str(tile), 0)
        lines.append(f"| {tile:,} | {a:,} | {_pct(a / nt)} | {b:,} | {_pct(b / nr)} |")
    return "\n".join(lines)


def targets_table(st: dict) -> str:
    tg = st["targets"]
    ms, tile = tg["mean_score"], tg[f"reach_{TARGET_TILE}"]
    return "\n".join(
        [
            "| the issue's target | trained PPO | met? |",
            "|---|---:|:---:|",
            f"| mean score >= {TARGET_MEAN_SCORE:,.0f} | {ms['value']:,.0f} "
            f"| {'yes' if ms['met'] else 'no'} |",
            f"| {TARGET_TILE} tile in >= {TARGET_TILE_SHARE:.0%} of games | {_pct(tile['value'])} "
            f"| {'yes' if tile['met'] else 'no'} |",
        ]
    )


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--throughput-seconds", type=float, default=None, help="training seconds (60; quick: 20)"
    )
    p.add_argument("--split-updates", type=int, default=3, help="timed updates for the split (3)")
    p.add_argument(
        "--minutes", type=float, default=None, help="strength run's minutes (15; quick: 1)"
    )
    p.add_argument(
        "--eval-games", type=int, default=None, help="games per policy (1000; quick: 200)"
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    p.add_argument("--seed", type=int, default=0, help="training seed (0)")
    p.add_argument("--skip-throughput", action="store_true", help="only the strength part")
    p.add_argument("--skip-strength", action="store_true", help="only the throughput part")
    p.add_argument(
        "--run-dir",
        default=None,
        help="directory for the strength run (new or empty; default: a new temp dir, kept)",
    )
    p.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")
    p.add_argument("--quick", action="store_true", help="smoke run: 20 s, 1 min, 200 games")
    args = p.parse_args(argv)
    if args.throughput_seconds is None:
        args.throughput_seconds = 20.0 if args.quick else 60.0
    if args.minutes is None:
        args.minutes = 1.0 if args.quick else 15.0
    if args.eval_games is None:
        args.eval_games = 200 if args.quick else 1000
    if not args.throughput_seconds > 0:
        p.error("--throughput-seconds must be > 0")
    if not args.minutes > 0:
        p.error("--minutes must be > 0")
    for name in ("eval_games", "threads", "split_updates"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.skip_throughput and args.skip_strength:
        p.error("--skip-throughput and --skip-strength together leave nothing to run")
    if args.run_dir is not None:
        d = Path(args.run_dir)
        if d.exists() and (not d.is_dir() or any(d.iterdir())):
            p.error(f"--run-dir {d} exists and is not an empty directory; choose a new one")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cores = set_threads(args.threads)
    import torch

    # One-time imports before any clock runs.
    import renshu.runner.logging  # noqa: F401
    import renshu.runner.loop  # noqa: F401
    import renshu.viz.plots  # noqa: F401
    from renshu.envs.specs import resolve

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimizer imports dynamo
    load = os.getloadavg() if hasattr(os, "getloadavg") else None

    tp = split = st = None
    if not args.skip_throughput:
        log(f"throughput: training {args.throughput_seconds:g} s ...")
        tp = run_throughput(args.throughput_seconds, args.threads, args.seed)
        log(f"  {tp['steps_per_second']:,.0f} env steps/s")
        log(f"split: {args.split_updates} updates (+1 warm-up) ...")
        split = run_split(args.split_updates, args.threads, args.seed)
    if not args.skip_strength:
        if args.run_dir is not None:
            run_dir = Path(args.run_dir)
        else:
            run_dir = Path(tempfile.mkdtemp(prefix="renshu-2048-")) / "run"
        try:
            st = run_strength(args.minutes, args.eval_games, args.threads, args.seed, run_dir)
        except BaseException:
            if args.run_dir is None:
                shutil.rmtree(run_dir.parent, ignore_errors=True)
            raise

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": version("numpy"),
        "renshu": version("renshu"),
    }
    preset = resolve("game2048").preset("ppo")
    meta = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_used": cores,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load,
        "seed": args.seed,
        "preset": preset,
        "original_steps_per_second": ORIGINAL_STEPS_PER_S,
        "target_steps_per_second": TARGET_STEPS_PER_S,
        "versions": versions,
    }
    installed = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    print(f"# PPO on 2048, end to end ({time.strftime('%Y-%m-%d')})")
    print()
    print(f"- CPU: {meta['cpu']}, {meta['cores']} cores ({len(cores)} used: {cores})")
    print(f"- threads: {args.threads} (torch.set_num_threads({torch.get_num_threads()}))")
    if load is not None:
        print(f"- load average at start (1/5/15 min): {' / '.join(f'{x:.2f}' for x in load)}")
    print(f"- versions: {installed}")
    print(
        "- agent: renshu PPO, preset `resolve('game2048').preset('ppo')`: "
        + ", ".join(f"{k}={v}" for k, v in preset.items())
    )
    if tp is not None:
        print()
        print("## Training throughput")
        print()
        print(
            f"End-to-end env steps/s = `summary.json`'s `steps_per_second` of a "
            f"{args.throughput_seconds:g} s `start_run` (collection + learning + logging, no "
            f"periodic evaluation). The original program's {ORIGINAL_STEPS_PER_S:g} steps/s is "
            "the issue's figure, quoted, not measured here."
        )
        print()
        print(throughput_table(tp, split))
        print()
        print(
            f"Where an update's time goes ({split['updates']} updates after one warm-up, "
            "timed separately from the run above):"
        )
        print()
        print(split_table(split))
    if st is not None:
        tr = st["train"]
        print()
        print("## Strength after training")
        print()
        print(
            f"Trained {tr['minutes']:g} min ({tr['env_steps']:,} env steps, {tr['updates']} "
            f"updates, {tr['steps_per_second']:,.0f} steps/s; learning rate annealed to 0 over "
            f"the budget), then {st['games']:,} games per policy from evaluation seed "
            f"{st['eval_seed']} (same starting boards for both). Trained = greedy (argmax over "
            "legal moves) final policy; score = sum of merged tiles (= the return)."
        )
        print()
        print(strength_table(st))
        print()
        print("Max-tile distribution:")
        print()
        print(tile_table(st))
        print()
        print(targets_table(st))
        print()
        kept = "" if args.run_dir is not None else " (a temp dir, kept; delete it when done)"
        print(f"Run directory: `{st['run_dir']}`{kept}")
    if args.json:
        out = {"meta": meta, "throughput": tp, "split": split, "strength": st}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return {"throughput": tp, "split": split, "strength": st}


if __name__ == "__main__":
    main()
