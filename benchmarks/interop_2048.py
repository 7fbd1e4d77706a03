"""2048 through other libraries' vector APIs: renshu's batched engine vs one Python game per env.

Three tables, each side by side in one run:

1. **SB3 PPO rollout collection** (``PPO.collect_rollouts``, SB3's own loop: policy forward,
   env step, rollout buffer) with the same number of transitions per rollout: renshu's
   ``renshu.interop.sb3.vec_env("game2048", N)`` against ``DummyVecEnv`` over
   ``gymnasium.make("renshu/Game2048-v0")`` (renshu's fastest single-game env, a Python-int
   bitboard). ``MlpPolicy`` (64x64) on the default uint8 exponent observations.
2. **SB3 PPO end to end** (``PPO.learn`` of one rollout at a time, SB3's default learning step: 10
   epochs of minibatch 64) on the best row of each collector, and how much of the time SB3's
   learning step takes: with collection free, the speed-up could not exceed
   ``(collect + learn) / learn`` of the DummyVecEnv run ("ceiling").
3. **Gymnasium vector env**, uniformly random actions (``action_space.sample()``): renshu's
   ``gymnasium.make_vec("renshu/Game2048-v0", 4096, vectorization_mode="vector_entry_point")``
   (numpy and torch backends; numpy also at 16,384) against
   ``make_vec(..., vectorization_mode="sync")`` at its best envs count among 1, 4, 16, 64; and
   the layers under the vector env at 4096 (``FunctionalEnv.step``, ``Game2048.step`` alone),
   to show where its time goes.

Each row warms up first. Rows of one table are then timed in ``--rounds`` interleaved rounds
(each round times whole rollouts or steps for ``--seconds / rounds``) and the best round counts,
so that a burst of load from other processes on a shared machine does not land on one side only.

    python benchmarks/interop_2048.py                 # about 3-4 minutes
    python benchmarks/interop_2048.py --quick         # a smoke run
    python benchmarks/interop_2048.py --threads 1 --tables gymnasium --rounds 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass

from _common import cpu_model, fmt_rate, fmt_ratio, set_threads, version


@dataclass
class Row:
    table: str
    name: str
    envs: int
    steps_per_env: int
    steps_per_s: float
    extra: dict


def best_rates(runners: list, seconds: float, rounds: int) -> list[float]:
    """Interleaved timing: ``runners`` are (run, items per call); each round calls every run
    for ``seconds / rounds``. Returns each runner's best items/s over the rounds."""
    best = [0.0] * len(runners)
    for run, _ in runners:
        run()  # warm-up
    for _ in range(rounds):
        for i, (run, items) in enumerate(runners):
            calls = 0
            start = time.perf_counter()
            while calls < 1 or time.perf_counter() - start < seconds / rounds:
                run()
                calls += 1
            best[i] = max(best[i], calls * items / (time.perf_counter() - start))
    return best


# -- 1 and 2: SB3 PPO --------------------------------------------------------------------------


def make_sb3_env(kind: str, num_envs: int, seed: int):
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    if kind == "renshu":
        from renshu.interop.sb3 import vec_env

        return vec_env("game2048", num_envs=num_envs, seed=seed)
    env = DummyVecEnv([lambda: gym.make("renshu/Game2048-v0") for _ in range(num_envs)])
    env.seed(seed)
    return env


def ppo(env, n_steps: int, seed: int):
    from stable_baselines3 import PPO

    # SB3's defaults (MlpPolicy 64x64, 10 epochs of minibatch 64, lr 3e-4) but n_steps.
    return PPO("MlpPolicy", env, n_steps=n_steps, batch_size=64, seed=seed, device="cpu")


def collector(kind: str, num_envs: int, n_steps: int, seed: int):
    """(run, transitions per call) for ``collect_rollouts`` alone."""
    model = ppo(make_sb3_env(kind, num_envs, seed), n_steps, seed)
    _, callback = model._setup_learn(total_timesteps=10**12, callback=None)
    callback.on_training_start(locals(), globals())

    def run():
        model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=n_steps)

    return run, num_envs * n_steps


def learner(kind: str, num_envs: int, n_steps: int, seed: int):
    """(run, transitions per call) for ``PPO.learn`` of one rollout (collection + learning)."""
    model = ppo(make_sb3_env(kind, num_envs, seed), n_steps, seed)
    per_rollout = num_envs * n_steps
    model.learn(per_rollout)

    def run():
        model.learn(per_rollout, reset_num_timesteps=False)

    return run, per_rollout


# -- 3: Gymnasium vector env -------------------------------------------------------------------


def gym_runner(num_envs: int, mode: str, seed: int, backend: str = "numpy"):
    """(run, env steps per call) for random-action steps of a Gymnasium vector env."""
    import gymnasium as gym
    import torch

    kwargs = {"backend": backend} if mode == "vector_entry_point" else {}
    envs = gym.make_vec("renshu/Game2048-v0", num_envs=num_envs, vectorization_mode=mode, **kwargs)
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    if backend == "torch":
        gen = torch.Generator().manual_seed(seed)

        def sample():
            return torch.randint(0, 4, (num_envs,), generator=gen)
    else:
        sample = envs.action_space.sample
    steps = max(1, 8192 // num_envs)

    def run():
        for _ in range(steps):
            envs.step(sample())

    return run, steps * num_envs


def engine_runner(num_envs: int, seed: int, layer: str):
    """(run, env steps per call) for the layers under the vector env, random actions:
    ``game``: ``Game2048.step`` alone (no auto-reset, no statistics); ``functional``: the
    ``FunctionalEnv`` the vector env wraps (auto-reset, truncation, episode statistics);
    ``no-pool``: the same with its pool of new games cut to the games that end at each step,
    which is the auto-reset before the pool (one ``game.init`` of those games per step)."""
    import torch

    from renshu.envs.registry import make_env

    env = make_env("game2048", num_envs=num_envs, seed=seed)
    if layer == "no-pool":
        env._pool_size = lambda wanted: wanted  # each refill: exactly the games that ended
    env.reset(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    steps = max(1, 8192 // num_envs)
    state = [env.game.init(num_envs, env.generator)]

    def run():
        for _ in range(steps):
            actions = torch.randint(0, 4, (num_envs,), generator=gen)  # as the vector env's row
            if layer == "game":
                state[0] = env.game.step(state[0], actions, env.generator)[0]
            else:
                env.step(actions)

    return run, steps * num_envs


# -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row (3)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (3)")
    p.add_argument(
        "--transitions",
        type=int,
        default=16384,
        help="transitions per rollout (16384: SB3's default 2048 steps x 8 envs)",
    )
    p.add_argument(
        "--tables",
        choices=("all", "sb3", "gymnasium"),
        default="all",
        help="sb3: tables 1 and 2 only; gymnasium: table 3 only (default all)",
    )
    p.add_argument("--quick", action="store_true", help="short rows, for a smoke run")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.transitions, args.rounds = 0.2, 4096, 1
    set_threads(args.threads)
    try:
        import sb3_contrib  # noqa: F401
        import stable_baselines3  # noqa: F401
    except ImportError:
        print("needs Stable-Baselines3: pip install 'renshu[sb3]'", file=sys.stderr)
        return 2
    import renshu  # noqa: F401  (registers the Gymnasium ids)

    print(f"CPU: {cpu_model()} ({args.threads} torch threads)")
    print(
        f"python {platform.python_version()}, torch {version('torch')}, gymnasium "
        f"{version('gymnasium')}, stable-baselines3 {version('stable-baselines3')}, numpy "
        f"{version('numpy')}, renshu {version('renshu')}"
    )
    rows: list[Row] = []

    if args.tables in ("all", "sb3"):
        sb3_tables(args, rows)
    if args.tables in ("all", "gymnasium"):
        gymnasium_table(args, rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    return 0


def sb3_tables(args: argparse.Namespace, rows: list[Row]) -> None:
    total = args.transitions
    # 1. collection
    configs = [("DummyVecEnv", "dummy", n) for n in (8, 64)]
    configs += [("renshu VecEnv", "renshu", n) for n in (256, 1024, 4096)]
    runners = [collector(kind, n, total // n, args.seed) for _, kind, n in configs]
    rates = best_rates(runners, args.seconds, args.rounds)
    for (label, kind, n), rate in zip(configs, rates):
        rows.append(Row("collect", label, n, total // n, rate, {"kind": kind}))
    dummy_best = max((r for r in rows if r.extra["kind"] == "dummy"), key=lambda r: r.steps_per_s)
    renshu_best = max((r for r in rows if r.extra["kind"] == "renshu"), key=lambda r: r.steps_per_s)
    print(f"\n### SB3 PPO `collect_rollouts` on 2048, {total:,} transitions per rollout\n")
    print("| collector | envs x steps | steps/s | x DummyVecEnv (best) |")
    print("|---|---|---:|---:|")
    for r in rows:
        print(
            f"| {r.name} | {r.envs:,} x {r.steps_per_env} | {fmt_rate(r.steps_per_s)} | "
            f"{fmt_ratio(r.steps_per_s / dummy_best.steps_per_s)} |"
        )

    # 2. end to end, on each collector's best shape
    best = (dummy_best, renshu_best)
    runners = [learner(b.extra["kind"], b.envs, b.steps_per_env, args.seed) for b in best]
    rates = best_rates(runners, args.seconds, args.rounds)
    learn = []
    for b, rate in zip(best, rates):
        collect_s = total / b.steps_per_s
        learn_s = max(total / rate - collect_s, 1e-9)
        row = Row("learn", b.name, b.envs, b.steps_per_env, rate,
                  {"collect_s": collect_s, "learn_s": learn_s})  # fmt: skip
        learn.append(row)
        rows.append(row)
    dummy_learn, renshu_learn = learn
    ceiling = (dummy_learn.extra["collect_s"] + dummy_learn.extra["learn_s"]) / (
        dummy_learn.extra["learn_s"]
    )
    print(
        f"\n### SB3 PPO end to end (`learn`, SB3's default learning step), {total:,} per rollout\n"
    )
    print("| collector | envs x steps | steps/s | x DummyVecEnv | s per rollout: collect + learn |")
    print("|---|---|---:|---:|---:|")
    for r in learn:
        print(
            f"| {r.name} | {r.envs:,} x {r.steps_per_env} | {fmt_rate(r.steps_per_s)} | "
            f"{fmt_ratio(r.steps_per_s / dummy_learn.steps_per_s)} | "
            f"{r.extra['collect_s']:.2f} + {r.extra['learn_s']:.2f} |"
        )
    print(
        f"\nSB3's learning step takes {dummy_learn.extra['learn_s']:.2f} s of the DummyVecEnv "
        f"run's {dummy_learn.extra['collect_s'] + dummy_learn.extra['learn_s']:.2f} s per rollout; "
        f"with collection free the end-to-end speed-up could reach {fmt_ratio(ceiling)} at most "
        f"(measured: {fmt_ratio(renshu_learn.steps_per_s / dummy_learn.steps_per_s)})."
    )

    print(
        f"\nTarget: collection >= 20x DummyVecEnv: "
        f"{fmt_ratio(renshu_best.steps_per_s / dummy_best.steps_per_s)}."
    )


def gymnasium_table(args: argparse.Namespace, rows: list[Row]) -> None:
    # 3. Gymnasium vector env
    configs = [("make_vec sync", n, "sync", "numpy") for n in (1, 4, 16, 64)]
    configs += [
        (f"make_vec vector_entry_point ({b})", 4096, "vector_entry_point", b)
        for b in ("numpy", "torch")
    ]
    configs += [("make_vec vector_entry_point (numpy)", 16384, "vector_entry_point", "numpy")]
    runners = [gym_runner(n, mode, args.seed, backend=b) for _, n, mode, b in configs]
    # What the vector env's step is made of, at 4096 envs.
    layers = ("functional", "no-pool", "game")
    configs += [
        ("under it: FunctionalEnv.step (auto-reset, statistics)", 4096, "functional", ""),
        ("the same without the pool of new games (as before)", 4096, "no-pool", ""),
        ("under that: Game2048.step alone", 4096, "game", ""),
    ]
    runners += [engine_runner(4096, args.seed, layer) for layer in layers]
    rates = best_rates(runners, args.seconds, args.rounds)
    gym_rows = [Row("gymnasium", c[0], c[1], 0, rate, {}) for c, rate in zip(configs, rates)]
    rows += gym_rows
    sync_best = max(gym_rows[:4], key=lambda r: r.steps_per_s)
    print("\n### Gymnasium vector env on 2048, random actions\n")
    print("| vector env | envs | steps/s | x sync (best) |")
    print("|---|---:|---:|---:|")
    for r in gym_rows:
        print(
            f"| {r.name} | {r.envs:,} | {fmt_rate(r.steps_per_s)} | "
            f"{fmt_ratio(r.steps_per_s / sync_best.steps_per_s)} |"
        )
    print(
        f"\nTarget: vector env at 4,096 envs >= 100x sync: "
        f"{fmt_ratio(gym_rows[4].steps_per_s / sync_best.steps_per_s)}."
    )


if __name__ == "__main__":
    sys.exit(main())
