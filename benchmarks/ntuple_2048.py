"""N-tuple TD learning on 2048: training speed next to a per-move Python learner, and strength.

Part 1, speed. Training moves/s (play + TD(0) updates) of ``NTuple(env,
NTupleConfig(num_envs=N))`` with the default 4x6 tuple set, on each backend (``numba``: the
compiled CPU kernels; ``torch``: the plain tensor path), each for ``--speed-seconds`` of a fresh
run after an untimed warm-up (the numba compile), next to the per-move Python learner a user of
OpenSpiel's 2048 (``pyspiel.load_game("2048")``) would write: the same 4x6 network (numpy
tables, the 8 symmetric images as cell permutations, TD(0) on afterstates with alpha 0.1), one
game, one Python call per move. TDL2048+ (C++, single thread) is quoted from its README
(github.com/moporgic/TDL2048, "Performance", as of April 2021), not measured here.

Part 2, strength. One training run of the default config; at each of ``--minutes`` (cumulative
training time, evaluation excluded) the greedy agent plays ``--greedy-games`` games and the same
network with expectimax depth 2 plays ``--search-games`` games (with their moves/s), next to
uniformly random legal play. Games start from the same seeds for every row.

Threads: ``--threads`` (torch and numba; the process is pinned to that many cores).

    python benchmarks/ntuple_2048.py                                  # full: 5, 15, 30 minutes
    python benchmarks/ntuple_2048.py --minutes 1,2 --greedy-games 200 --search-games 20
    python benchmarks/ntuple_2048.py --skip-strength --speed-seconds 20
    python benchmarks/ntuple_2048.py --threads 1 --skip-speed \
        --sweep "num_envs=1024,collision_cap=1;num_envs=4096,collision_cap=8"
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from _common import cpu_model, fmt_rate, fmt_ratio, set_threads, version  # benchmarks/_common.py
from renshu.algos.ntuple import NTuple, NTupleConfig
from renshu.core import ntuple as nt
from renshu.envs.base import random_legal_actions
from renshu.envs.registry import make_env
from renshu.runner.evaluate import evaluate

TDL2048_ST_TRAINING = {
    "Core i9-7980XE": 3_789_824,
    "Ryzen 9 3900X": 2_674_171,
}
EVAL_SEED = 1_000_003
TILES = (2048, 4096, 8192, 16384)


# ---------------------------------------------------------------------------------------------
# The per-move Python learner on OpenSpiel, as a user would write it.


class OpenSpielNTuple:
    """TD(0) afterstate learner with the 4x6 network over OpenSpiel's 2048, one move at a time."""

    TUPLES = [(0, 1, 2, 3, 4, 5), (4, 5, 6, 7, 8, 9), (0, 1, 2, 4, 5, 6), (4, 5, 6, 8, 9, 10)]

    def __init__(self, alpha: float = 0.1, seed: int = 0):
        import pyspiel

        self.game = pyspiel.load_game("2048", {"max_tile": 65536})
        self.rng = random.Random(seed)
        self.alpha = alpha
        self.weights = [np.zeros(16 ** len(t), dtype=np.float32) for t in self.TUPLES]
        grid = np.arange(16).reshape(4, 4)
        images = []
        for g in (grid, grid.T):
            for m in (g, g[:, ::-1], g[::-1, :], g[::-1, ::-1]):
                images.append(m.reshape(-1))
        # for every tuple and symmetry: the board cells its digits read
        self.cells = [[[int(img[c]) for c in t] for img in images] for t in self.TUPLES]

    def features(self, exps):
        out = []
        for j, per_sym in enumerate(self.cells):
            for cells in per_sym:
                idx = 0
                for k, c in enumerate(cells):
                    idx += exps[c] << (4 * k)
                out.append((j, idx))
        return out

    def value(self, feats):
        return sum(self.weights[j][i] for j, i in feats)

    @staticmethod
    def exponents(state):
        return [0 if v == 0 else int(v).bit_length() - 1 for v in state.observation_tensor(0)]

    def spawn(self, state):
        outcomes, probs = zip(*state.chance_outcomes())
        state.apply_action(self.rng.choices(outcomes, probs)[0])

    def play_and_learn(self, seconds: float) -> tuple[int, int]:
        """Train for ``seconds``; returns (moves, finished games)."""
        moves = games = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            state = self.game.new_initial_state()
            while state.is_chance_node():
                self.spawn(state)
            prev = None
            while not state.is_terminal():
                best = None
                for action in state.legal_actions():
                    after = state.clone()
                    after.apply_action(action)
                    feats = self.features(self.exponents(after))
                    q = after.rewards()[0] + self.value(feats)
                    if best is None or q > best[0]:
                        best = (q, after, feats)
                q, after, feats = best
                if prev is not None:
                    self.update(prev, q)
                prev = feats
                state = after
                self.spawn(state)
                moves += 1
                if time.perf_counter() >= end:
                    break
            else:
                self.update(prev, 0.0)
                games += 1
        return moves, games

    def update(self, feats, target):
        step = self.alpha * (target - self.value(feats)) / len(feats)
        for j, i in feats:
            self.weights[j][i] += step


# ---------------------------------------------------------------------------------------------


def train_for(algo: NTuple, seconds: float, total: float, spent: float) -> float:
    """Collect/learn rounds for ``seconds`` (progress = time spent / total). Returns seconds."""
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        progress = min(1.0, (spent + elapsed) / total)
        algo.learn(algo.collect(progress), progress)
    return time.perf_counter() - start


def speed(args) -> list[dict]:
    rows = []
    for kind in args.backends.split(","):
        if kind == "numba" and not nt.numba_available():
            print("numba is not installed: skipping the numba backend")
            continue
        env = make_env("game2048", num_envs=args.num_envs, seed=0)
        algo = NTuple(env, NTupleConfig(num_envs=args.num_envs, kernel=kind), seed=0)
        train_for(algo, args.warmup_seconds, 1.0, 0.0)
        before = algo.env_steps
        seconds = train_for(algo, args.speed_seconds, 1.0, 0.0)
        rate = (algo.env_steps - before) / seconds
        rows.append({"learner": f"renshu ntuple ({kind})", "games": args.num_envs, "rate": rate})
        print(f"  renshu {kind}: {fmt_rate(rate)} moves/s", flush=True)
        del algo, env
    try:
        learner = OpenSpielNTuple()
    except ImportError:
        print("open_spiel is not installed (pip install open-spiel): skipping its learner")
    else:
        learner.play_and_learn(1.0)
        moves, _ = learner.play_and_learn(args.python_seconds)
        rate = moves / args.python_seconds
        rows.append({"learner": "per-move Python on OpenSpiel 2048", "games": 1, "rate": rate})
        print(f"  per-move Python on OpenSpiel: {fmt_rate(rate)} moves/s", flush=True)
    return rows


def tile_shares(stats) -> dict[int, float]:
    return {t: float((stats["max_tile"] >= t).double().mean()) for t in TILES}


def play(act, games: int, seed: int = EVAL_SEED) -> dict:
    env = make_env("game2048", num_envs=games, seed=0)
    start = time.perf_counter()
    stats = evaluate(act, env, games, seed=seed)
    seconds = time.perf_counter() - start
    return {
        "games": games,
        "mean_score": float(stats["score"].double().mean()),
        "tiles": tile_shares(stats),
        "moves_per_s": float(stats["length"].sum()) / seconds,
    }


def strength(args) -> list[dict]:
    minutes = [float(m) for m in args.minutes.split(",")]
    rows = []
    gen = torch.Generator().manual_seed(0)
    rows.append(
        {"agent": "random legal moves", **play(lambda o, m: random_legal_actions(m, gen), 1000)}
    )
    env = make_env("game2048", num_envs=args.num_envs, seed=0)
    algo = NTuple(env, NTupleConfig(num_envs=args.num_envs), seed=0)
    total = 60 * minutes[-1]
    spent = 0.0
    for m in minutes:
        spent += train_for(algo, 60 * m - spent, total, spent)
        moves = algo.env_steps
        print(f"  trained {spent / 60:.1f} min, {moves:,} moves ({moves / spent:,.0f}/s)")
        greedy = play(algo.act, args.greedy_games)
        rows.append({"agent": f"ntuple greedy, {m:g} min", "train_moves": moves, **greedy})
        print(f"    greedy: {greedy}", flush=True)
        if args.search_games:

            def search(obs, mask):
                return algo.search_actions(obs, mask, depth=2)

            deep = play(search, args.search_games)
            rows.append({"agent": f"ntuple + expectimax depth 2, {m:g} min", **deep})
            print(f"    depth 2: {deep}", flush=True)
    return rows


def sweep(args) -> list[dict]:
    """Greedy strength after the same number of training moves for each config of ``--sweep``
    (e.g. ``num_envs=4096,collision_cap=8;num_envs=1024,collision_cap=1``)."""
    rows = []
    for spec in args.sweep.split(";"):
        values = {}
        for item in spec.split(","):
            key, text = item.split("=")
            values[key.strip()] = None if text == "None" else int(text)
        values.setdefault("num_envs", args.num_envs)
        env = make_env("game2048", num_envs=values["num_envs"], seed=0)
        algo = NTuple(env, NTupleConfig(**values), seed=0)
        start = time.perf_counter()
        while algo.env_steps < args.sweep_moves:
            progress = algo.env_steps / args.sweep_moves
            algo.learn(algo.collect(progress), progress)
        seconds = time.perf_counter() - start
        row = {"config": spec, "train_moves": algo.env_steps, "train_seconds": seconds}
        row.update(play(algo.act, args.sweep_games))
        print(f"  {row}", flush=True)
        rows.append(row)
        del algo, env
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--num-envs", type=int, default=NTupleConfig.num_envs)
    p.add_argument("--backends", default="numba,torch")
    p.add_argument("--warmup-seconds", type=float, default=10.0)
    p.add_argument("--speed-seconds", type=float, default=30.0)
    p.add_argument("--python-seconds", type=float, default=20.0)
    p.add_argument("--minutes", default="5,15,30", help="cumulative training minutes to evaluate")
    p.add_argument("--greedy-games", type=int, default=1000)
    p.add_argument("--search-games", type=int, default=200)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-strength", action="store_true")
    p.add_argument("--sweep", help="configs to compare at equal moves, ';'-separated")
    p.add_argument("--sweep-moves", type=int, default=10_000_000)
    p.add_argument("--sweep-games", type=int, default=300)
    p.add_argument("--json", type=Path, help="write the rows here too")
    args = p.parse_args()
    set_threads(args.threads)

    header = (
        f"CPU: {cpu_model()}, {args.threads} threads (torch {torch.__version__}, numba "
        f"{version('numba') or 'not installed'}, open_spiel {version('open_spiel') or '-'})"
    )
    print(header, flush=True)
    out: dict = {"header": header}
    if not args.skip_speed:
        rows = speed(args)
        out["speed"] = rows
        python = next((r["rate"] for r in rows if r["games"] == 1), None)
        print("\n| learner | games at once | training moves/s | x per-move Python |")
        print("|---|---:|---:|---:|")
        for r in rows:
            ratio = None if python is None else r["rate"] / python
            print(
                f"| {r['learner']} | {r['games']:,} | {fmt_rate(r['rate'])} | {fmt_ratio(ratio)} |"
            )
        for cpu, rate in TDL2048_ST_TRAINING.items():
            print(f"| TDL2048+ C++, 1 thread, {cpu} (quoted) | 1 | {fmt_rate(rate)} | |")
    if args.sweep:
        rows = sweep(args)
        out["sweep"] = rows
        print("\n| config | training moves | mean score | 2048 | 4096 | 8192 | 16384 |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            shares = " | ".join(f"{100 * r['tiles'][t]:.1f}%" for t in TILES)
            print(f"| {r['config']} | {r['train_moves']:,} | {r['mean_score']:,.0f} | {shares} |")
        return
    if not args.skip_strength:
        rows = strength(args)
        out["strength"] = rows
        print("\n| agent | games | mean score | 2048 | 4096 | 8192 | 16384 | moves/s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            shares = " | ".join(f"{100 * r['tiles'][t]:.1f}%" for t in TILES)
            print(
                f"| {r['agent']} | {r['games']} | {r['mean_score']:,.0f} | {shares} | "
                f"{fmt_rate(r['moves_per_s'])} |"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
