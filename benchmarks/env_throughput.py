"""Random-policy 2048 environment throughput, side by side in one run.

Measures environment steps per second (one step of one game = one step; a batched step of N
games = N steps) with a uniformly random policy for:

* ``renshu``: ``FunctionalEnv(Game2048(obs=...), num_envs=N, device="cpu", check=False)``, random
  *legal* actions drawn inside the timed loop from ``info["action_mask"]``; auto-reset by the
  adapter.
* ``per-game Python``: :class:`PyGame2048` below, the 2048 people usually write (a 4x4 numpy
  board, ``np.rot90`` to turn every move into "left", a Python loop that slides and merges each
  row, a random empty cell gets a 2 (p=0.9) or a 4), stepped one game at a time with random *legal*
  actions (the env reports the legal moves, the policy picks one uniformly), reset on game over,
  the board as observation. Its speed does not depend on a batch size; it is the ``x per-game``
  baseline.
* ``gymnasium-2048`` (PyPI): ``gymnasium.make("gymnasium_2048/TwentyFortyEight-v0")``, one env,
  random actions from ``action_space.sample()`` (that env has no action mask; an invalid move is
  a no-op step), reset when terminated.
* ``pgx``: ``pgx.make("2048")``, ``jax.jit`` of one batched step: random legal actions from
  ``state.legal_action_mask`` with ``jax.random.categorical``, then
  ``jax.vmap(pgx.experimental.auto_reset(env.step, env.init))``; compile time excluded,
  ``block_until_ready`` before the clock stops.

Every measurement warms up first, then times whole steps for at least ``--seconds``. The thread
count applies to all: torch uses ``torch.set_num_threads(T)``, and when T is below the number
of cores the whole process is pinned to T cores (so XLA's thread pool uses the same cores);
with T = 1 XLA's multi-threaded Eigen is also switched off.

    python benchmarks/env_throughput.py                      # full run (about 1-2 minutes)
    python benchmarks/env_throughput.py --quick --seconds 0.2
    python benchmarks/env_throughput.py --threads 1 --batches 1,4096 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import pairwise

import numpy as np

from _common import (  # benchmarks/_common.py (this folder)
    cpu_model,
    fmt_rate,
    fmt_ratio,
    set_threads,
    version,
)

# ---------------------------------------------------------------------------------------------
# The per-game Python baseline: 2048 as it is usually written, one game per object.

# Actions as in renshu: 0 left, 1 right, 2 up, 3 down. ``np.rot90(board, k)`` (counter-clockwise)
# turns each direction into "left": up k=1, right k=2, down k=3.
_ROTATIONS = (0, 2, 1, 3)


def merge_row_left(row: list[int]) -> tuple[list[int], int]:
    """Slide and merge one row (tile values) to the left; each tile merges at most once."""
    tiles = [v for v in row if v != 0]
    out: list[int] = []
    reward = 0
    i = 0
    while i < len(tiles):
        if i + 1 < len(tiles) and tiles[i] == tiles[i + 1]:
            merged = tiles[i] * 2
            out.append(merged)
            reward += merged
            i += 2
        else:
            out.append(tiles[i])
            i += 1
    return out + [0] * (len(row) - len(out)), reward


def _can_move_left(rows: list[list[int]]) -> bool:
    for row in rows:
        for a, b in pairwise(row):
            if (a == 0 and b != 0) or (a != 0 and a == b):
                return True
    return False


class PyGame2048:
    """One 2048 game: 4x4 numpy board of tile values, Python row merging, rotations for moves."""

    def __init__(self, seed: int | None = None):
        self.rng = random.Random(seed)
        self.reset()

    def reset(self) -> np.ndarray:
        self.board = np.zeros((4, 4), dtype=np.int64)
        self.score = 0
        self._spawn()
        self._spawn()
        self.legal = self.legal_actions()
        return self.board.copy()

    def _spawn(self) -> None:
        empty = np.argwhere(self.board == 0)
        r, c = empty[self.rng.randrange(len(empty))]
        self.board[r, c] = 2 if self.rng.random() < 0.9 else 4

    @staticmethod
    def move(board: np.ndarray, action: int) -> tuple[np.ndarray, int]:
        """The board after ``action`` (no spawn) and the merge reward."""
        k = _ROTATIONS[action]
        rows, reward = [], 0
        for row in np.rot90(board, k).tolist():
            new_row, r = merge_row_left(row)
            rows.append(new_row)
            reward += r
        return np.rot90(np.array(rows, dtype=board.dtype), -k), reward

    def legal_actions(self) -> list[int]:
        """Moves that change the board (a scan of rows and columns, no move is made)."""
        rows = self.board.tolist()
        cols = self.board.T.tolist()
        lines = (rows, [r[::-1] for r in rows], cols, [c[::-1] for c in cols])
        return [a for a in range(4) if _can_move_left(lines[a])]

    def step(self, action: int) -> tuple[np.ndarray, int, bool]:
        """Returns (observation, reward, game over). A move that changes nothing is a no-op; on
        game over the game is reset and the observation is the new game's board."""
        moved, reward = self.move(self.board, action)
        if not np.array_equal(moved, self.board):
            self.board = moved
            self.score += reward
            self._spawn()
        else:
            reward = 0
        self.legal = self.legal_actions()
        done = not self.legal
        if done:
            self.reset()
        return self.board.copy(), reward, done


def _self_check() -> None:
    """Hand-made checks of :class:`PyGame2048` (run at startup)."""
    cases = {
        (2, 2, 2, 2): ([4, 4, 0, 0], 8),
        (2, 2, 4, 0): ([4, 4, 0, 0], 4),
        (0, 2, 0, 2): ([4, 0, 0, 0], 4),
        (4, 4, 8, 8): ([8, 16, 0, 0], 24),
        (2, 4, 8, 16): ([2, 4, 8, 16], 0),
        (0, 0, 0, 2): ([2, 0, 0, 0], 0),
        (8, 0, 8, 8): ([16, 8, 0, 0], 16),
    }
    for row, expected in cases.items():
        assert merge_row_left(list(row)) == expected, (row, merge_row_left(list(row)))

    board = np.array([[2, 2, 0, 4], [0, 0, 0, 0], [2, 0, 0, 4], [8, 0, 0, 0]])
    expected = {
        0: ([[4, 4, 0, 0], [0, 0, 0, 0], [2, 4, 0, 0], [8, 0, 0, 0]], 4),
        1: ([[0, 0, 4, 4], [0, 0, 0, 0], [0, 0, 2, 4], [0, 0, 0, 8]], 4),
        2: ([[4, 2, 0, 8], [8, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], 12),
        3: ([[0, 0, 0, 0], [0, 0, 0, 0], [4, 0, 0, 0], [8, 2, 0, 8]], 12),
    }
    for action, (want, want_reward) in expected.items():
        got, reward = PyGame2048.move(board, action)
        assert got.tolist() == want and reward == want_reward, (action, got.tolist(), reward)

    game = PyGame2048(seed=0)
    game.board = np.array([[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 4, 8]])
    assert game.legal_actions() == []
    game.board = np.array([[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 8, 8]])
    assert game.legal_actions() == [0, 1]
    # The legality scan agrees with "the move changes the board", over a random game.
    game = PyGame2048(seed=1)
    for _ in range(300):
        changes = [
            a for a in range(4) if not np.array_equal(PyGame2048.move(game.board, a)[0], game.board)
        ]
        assert game.legal == changes, (game.board, game.legal, changes)
        game.step(game.rng.choice(game.legal))


# ---------------------------------------------------------------------------------------------
# Timing.


@dataclass
class Result:
    impl: str
    obs: str
    batch: int
    steps_per_s: float | None  # None: not measured (see note)
    note: str = ""
    x_per_game: float | None = None
    x_pgx: float | None = None
    extra: dict = field(default_factory=dict)


def measure(
    step: Callable[[], None],
    batch: int,
    seconds: float,
    warmup: float,
    sync: Callable[[], None] | None = None,
) -> float:
    """Steps/s of ``step`` (one call = ``batch`` env steps): warm up, then time whole calls
    for at least ``seconds`` (``sync`` waits for queued work before the clock stops)."""
    end = time.perf_counter() + warmup
    step()
    while time.perf_counter() < end:
        step()
    if sync is not None:
        sync()
    calls = 0
    start = time.perf_counter()
    stop = start + seconds
    while True:
        step()
        calls += 1
        if time.perf_counter() >= stop:
            break
    if sync is not None:
        sync()
    elapsed = time.perf_counter() - start
    return calls * batch / elapsed


def bench_renshu(
    obs: str, batch: int, seconds: float, warmup: float, seed: int, compile: bool = False
) -> float:
    import torch

    from renshu.envs.base import FunctionalEnv, random_legal_actions
    from renshu.envs.game2048 import Game2048

    game = Game2048(obs=obs, compile=compile)
    env = FunctionalEnv(game, num_envs=batch, device="cpu", check=False, seed=seed)
    _, info = env.reset(seed=seed)
    if compile:  # compile outside the clock (like pgx's jit)
        env.step(random_legal_actions(info["action_mask"], torch.Generator().manual_seed(0)))
    gen = torch.Generator().manual_seed(seed)
    holder = {"mask": info["action_mask"]}

    def step() -> None:
        mask = holder["mask"]
        _, _, _, _, info = env.step(random_legal_actions(mask, gen))
        holder["mask"] = info["action_mask"]

    return measure(step, batch, seconds, warmup)


def bench_per_game(seconds: float, warmup: float, seed: int) -> float:
    game = PyGame2048(seed=seed)
    policy = random.Random(seed + 1)

    def step() -> None:
        game.step(policy.choice(game.legal))

    return measure(step, 1, seconds, warmup)


def bench_gymnasium_2048(seconds: float, warmup: float, seed: int) -> float:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import gymnasium as gym
    import gymnasium_2048  # noqa: F401  (registers the env id)

    env = gym.make("gymnasium_2048/TwentyFortyEight-v0")
    env.reset(seed=seed)
    env.action_space.seed(seed)

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()

    return measure(step, 1, seconds, warmup)


def make_pgx_runner(batch: int, seed: int):
    """A jitted batched step (random legal actions + auto-reset) and its initial carry."""
    import jax
    import jax.numpy as jnp
    import pgx
    from pgx.experimental import auto_reset

    env = pgx.make("2048")
    step_fn = jax.vmap(auto_reset(env.step, env.init))

    def run_step(state, key):
        key, k_act, k_step = jax.random.split(key, 3)
        logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
        action = jax.random.categorical(k_act, logits, axis=-1)
        state = step_fn(state, action, jax.random.split(k_step, batch))
        return state, key

    key = jax.random.PRNGKey(seed)
    key, k_init = jax.random.split(key)
    state = jax.jit(jax.vmap(env.init))(jax.random.split(k_init, batch))
    return jax.jit(run_step, donate_argnums=(0, 1)), state, key


def bench_pgx(batch: int, seconds: float, warmup: float, seed: int) -> tuple[float, float]:
    import jax

    run_step, state, key = make_pgx_runner(batch, seed)
    carry = {"state": state, "key": key}
    t0 = time.perf_counter()
    compiled = run_step.lower(state, key).compile()
    compile_s = time.perf_counter() - t0

    def step() -> None:
        carry["state"], carry["key"] = compiled(carry["state"], carry["key"])

    def sync() -> None:
        jax.block_until_ready(carry["state"])

    return measure(step, batch, seconds, warmup, sync), compile_s


# ---------------------------------------------------------------------------------------------
# Reporting.


def markdown_table(results: list[Result]) -> str:
    lines = [
        "| implementation | obs | batch | steps/s | x per-game | x pgx (same batch) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        rate = fmt_rate(r.steps_per_s) if r.steps_per_s is not None else r.note
        lines.append(
            f"| {r.impl} | {r.obs} | {f'{r.batch:,}' if r.batch else '—'} | {rate} "
            f"| {fmt_ratio(r.x_per_game)} "
            f"| {fmt_ratio(r.x_pgx)} |"
        )
    return "\n".join(lines)


def _add_ratios(results: list[Result]) -> None:
    base = next((r.steps_per_s for r in results if r.impl == "per-game Python"), None)
    pgx = {r.batch: r.steps_per_s for r in results if r.impl == "pgx" and r.steps_per_s}
    for r in results:
        if r.steps_per_s is None:
            continue
        if base:
            r.x_per_game = r.steps_per_s / base
        if r.batch in pgx:
            r.x_pgx = r.steps_per_s / pgx[r.batch]


def _set_threads(threads: int) -> list[int]:
    """Pin the process to ``threads`` cores (when fewer than it may use) before jax loads."""
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    return set_threads(threads)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=None, help="timed seconds per measurement (3)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and XLA (2)")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (1,64,4096,65536)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")
    p.add_argument("--quick", action="store_true", help="smoke run: 0.3 s, batches 1,64,4096")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.seconds is None:
        args.seconds = 0.3 if args.quick else 3.0
    if args.batches is None:
        args.batches = "1,64,4096" if args.quick else "1,64,4096,65536"
    try:
        args.batches = sorted({int(b) for b in args.batches.split(",") if b.strip()})
    except ValueError:
        p.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if not args.batches or min(args.batches) < 1:
        p.error("--batches needs at least one batch size >= 1")
    if args.seconds <= 0:
        p.error("--seconds must be > 0")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    _self_check()
    cores = _set_threads(args.threads)
    import torch

    seconds, seed = args.seconds, args.seed
    warmup = min(1.0, max(0.05, seconds / 3))
    results: list[Result] = []

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # per-game Python and gymnasium-2048: one game, no batch.
    log("per-game Python ...")
    results.append(
        Result("per-game Python", "int64[4,4] tiles", 1, bench_per_game(seconds, warmup, seed))
    )
    log("gymnasium-2048 ...")
    try:
        rate = bench_gymnasium_2048(seconds, warmup, seed)
        results.append(Result("gymnasium-2048", "uint8[4,4,16] one-hot", 1, rate))
    except ImportError as e:
        results.append(Result("gymnasium-2048", "—", 1, None, note=f"not installed ({e.name})"))

    # renshu: exponent at every batch, onehot at batches >= 4096 (or the largest given).
    big = [b for b in args.batches if b >= 4096] or [max(args.batches)]
    for obs, batches in (("exponent", args.batches), ("onehot", big)):
        label = "uint8[4,4] exponents" if obs == "exponent" else "float32[16,4,4] one-hot"
        for b in batches:
            log(f"renshu obs={obs} batch={b} ...")
            rate = bench_renshu(obs, b, seconds, warmup, seed)
            results.append(Result("renshu", f"{label} (`{obs}`)", b, rate))
    # renshu with the step fused by torch.compile (Game2048(compile=True)), default obs.
    for b in big:
        log(f"renshu compile=True batch={b} ...")
        rate = bench_renshu("exponent", b, seconds, warmup, seed, compile=True)
        results.append(Result("renshu compile=True", "uint8[4,4] exponents (`exponent`)", b, rate))

    # pgx.
    try:
        import jax
        import pgx  # noqa: F401
    except ImportError as e:
        jax = None
        results.append(Result("pgx", "—", 0, None, note=f"not installed ({e.name})"))
    if jax is not None:
        for b in args.batches:
            log(f"pgx batch={b} ...")
            rate, compile_s = bench_pgx(b, seconds, warmup, seed)
            results.append(
                Result("pgx", "bool[4,4,31] one-hot", b, rate, extra={"compile_s": compile_s})
            )

    _add_ratios(results)
    order = {
        "per-game Python": 0,
        "gymnasium-2048": 1,
        "renshu": 2,
        "renshu compile=True": 3,
        "pgx": 4,
    }
    results.sort(key=lambda r: (r.batch or float("inf"), order[r.impl], r.obs))

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "jax": version("jax"),
        "jaxlib": version("jaxlib"),
        "pgx": version("pgx"),
        "gymnasium": version("gymnasium"),
        "gymnasium-2048": version("gymnasium-2048"),
    }
    meta = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_used": cores,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "seconds": seconds,
        "versions": versions,
    }
    installed = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    print(f"# 2048 env throughput, random policy ({time.strftime('%Y-%m-%d')})")
    print()
    print(f"- CPU: {meta['cpu']}, {meta['cores']} cores ({len(cores)} used: {cores})")
    print(
        f"- threads: {args.threads} (torch.set_num_threads({torch.get_num_threads()}); "
        f"XLA limited to the same cores; XLA_FLAGS={meta['xla_flags'] or 'unset'})"
    )
    print(f"- versions: {installed}")
    print(f"- {seconds:g} s timed per row after warm-up; steps/s counts one step of one game")
    print(
        "- policy: uniformly random legal action, except gymnasium-2048 "
        "(random action, invalid move = no-op)"
    )
    print()
    print(markdown_table(results))
    compile_times = [f"{r.batch}: {r.extra['compile_s']:.1f}s" for r in results if r.extra]
    if compile_times:
        print()
        print(f"pgx compile time (excluded): {', '.join(compile_times)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": [asdict(r) for r in results]}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
