"""Atari Breakout throughput: renshu against Stable-Baselines3, side by side in one run.

Two measurements, 8 envs each, DeepMind preprocessing included (no-op starts, frame skip 4 with
max-pooling, 84x84 grey, stacks of 4):

1. **Env steps/s** with random actions: renshu's ``AtariEnv`` (ale-py's C++ vector env, frames
   returned as torch uint8 tensors) against SB3's ``make_atari_env("BreakoutNoFrameskip-v4",
   n_envs=8)`` + ``VecFrameStack(4)`` (Python wrappers per env) in a ``DummyVecEnv`` and in a
   ``SubprocVecEnv``.
2. **DQN training env steps/s** (collection + learning, the number a training run shows): the
   same learning work on both sides -- Nature CNN, batch 32, one gradient step per 4
   transitions (8 envs, 2 gradient steps per vector step), Adam, a 20k-transition buffer,
   learning from transition 1,000 -- timed over ``--train-steps`` transitions after learning
   started. renshu: ``DQN(AtariEnv(...), DQNConfig(...))`` stepped by ``collect`` + ``learn``
   (``renshu.algos.base.update``), twice: with ``double=False``, the same algorithm as SB3's
   DQN (the like-for-like row), and with Double DQN, renshu's default (one more forward pass
   per gradient step), each also with ``bf16="on"`` (bfloat16 autocast of the Q-network,
   opt-in; AMX on this CPU). SB3: ``DQN("CnnPolicy", VecFrameStack(
   make_atari_env(...)), train_freq=1, gradient_steps=2, ...)`` on a DummyVecEnv and on a
   SubprocVecEnv.

Differences that are part of each design, not of the measurement: renshu's envs are ALE v5
(sticky actions 0.25), SB3's ``NoFrameskip-v4`` (no sticky actions; an extra Python wrapper
layer per env); renshu keeps the CNN channels-last (NHWC), SB3 the PyTorch default (NCHW).

    python benchmarks/atari_throughput.py                 # ~4 minutes
    python benchmarks/atari_throughput.py --seconds 5 --train-steps 2000   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _common import cpu_model, fmt_rate, fmt_ratio, set_threads, version

GAME = "Breakout"
N_ENVS = 8


def _rate(step, seconds: float) -> float:
    """Env steps/s of ``step()`` (returns transitions made) repeated for ``seconds``."""
    for _ in range(5):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += step()
    return n / (time.perf_counter() - t0)


# -- 1. env steps/s --------------------------------------------------------------------------


def renshu_env_rate(seconds: float) -> float:
    import torch

    from renshu.envs.atari import AtariEnv

    env = AtariEnv(f"ALE/{GAME}-v5", num_envs=N_ENVS, seed=0)
    env.reset(seed=0)
    g = torch.Generator().manual_seed(0)

    def step():
        env.step(torch.randint(env.num_actions, (N_ENVS,), generator=g))
        return N_ENVS

    rate = _rate(step, seconds)
    env.close()
    return rate


def _make_game(**kwargs):
    """The raw game for SB3's Atari wrappers (also in SubprocVecEnv's worker processes)."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    return gym.make(f"{GAME}NoFrameskip-v4", **kwargs)


def _sb3_env(vec: str):
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack

    cls = SubprocVecEnv if vec == "subproc" else DummyVecEnv
    env = make_atari_env(_make_game, n_envs=N_ENVS, seed=0, vec_env_cls=cls)
    return VecFrameStack(env, n_stack=4)


def sb3_missing() -> str | None:
    """The package SB3's side needs that is not installed (its Atari wrappers resize with
    OpenCV), or None."""
    import importlib

    for module in ("stable_baselines3", "cv2"):
        try:
            importlib.import_module(module)
        except ImportError as e:
            return e.name or module
    return None


def sb3_env_rate(vec: str, seconds: float) -> float:
    import numpy as np

    env = _sb3_env(vec)
    env.reset()
    rng = np.random.default_rng(0)
    n_actions = env.action_space.n

    def step():
        env.step(rng.integers(n_actions, size=N_ENVS))
        return N_ENVS

    rate = _rate(step, seconds)
    env.close()
    return rate


# -- 2. DQN training -------------------------------------------------------------------------

BUFFER, STARTS, BATCH, LR = 20_000, 1_000, 32, 1e-4


def renshu_dqn_rate(train_steps: int, double: bool, bf16: str = "off") -> float:
    from renshu.algos.base import update
    from renshu.algos.dqn import DQN, DQNConfig
    from renshu.envs.atari import AtariEnv

    env = AtariEnv(f"ALE/{GAME}-v5", num_envs=N_ENVS, seed=0)
    cfg = DQNConfig(
        num_envs=N_ENVS, buffer_size=BUFFER, learning_starts=STARTS, batch_size=BATCH,
        learning_rate=LR, train_freq=N_ENVS, gradient_steps=2, target_update_interval=1_000,
        clip_rewards=True, double=double, bf16=bf16,
    )  # fmt: skip
    algo = DQN(env, cfg, seed=0)
    progress = 0.5  # a fixed point of the run: only epsilon depends on it
    while algo.grad_steps == 0:  # up to the first learning round
        update(algo, progress)
    start, t0 = algo.env_steps, time.perf_counter()
    while algo.env_steps - start < train_steps:
        update(algo, progress)
    rate = (algo.env_steps - start) / (time.perf_counter() - t0)
    env.close()
    return rate


def sb3_dqn_rate(vec: str, train_steps: int) -> float:
    from stable_baselines3 import DQN

    env = _sb3_env(vec)
    model = DQN(
        "CnnPolicy", env, buffer_size=BUFFER, learning_starts=STARTS, batch_size=BATCH,
        learning_rate=LR, train_freq=1, gradient_steps=2, target_update_interval=1_000,
        optimize_memory_usage=False, device="cpu", seed=0, verbose=0,
    )  # fmt: skip
    model.learn(total_timesteps=STARTS + N_ENVS)  # up to the first learning round
    start, t0 = model.num_timesteps, time.perf_counter()
    model.learn(total_timesteps=train_steps, reset_num_timesteps=False)
    rate = (model.num_timesteps - start) / (time.perf_counter() - t0)
    env.close()
    return rate


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per env measurement")
    p.add_argument("--train-steps", type=int, default=6_000, help="transitions timed per DQN")
    p.add_argument("--threads", type=int, default=2, help="torch threads on every side (2)")
    p.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3")
    p.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")
    args = p.parse_args(argv)
    cores = set_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    missing = None if args.no_sb3 else sb3_missing()
    if missing:
        log(f"Stable-Baselines3 rows skipped: {missing} is not installed")
    sb3_sides = [] if args.no_sb3 or missing else ["SB3 DummyVecEnv", "SB3 SubprocVecEnv"]
    env_rates: dict[str, float] = {}
    dqn_rates: dict[str, float] = {}
    for side in ["renshu", *sb3_sides]:
        log(f"env steps/s: {side} ...")
        if side == "renshu":
            env_rates[side] = renshu_env_rate(args.seconds)
        else:
            env_rates[side] = sb3_env_rate(side.split()[-1][:-6].lower(), args.seconds)
        log(f"  {env_rates[side]:,.0f}")
    plain = "renshu, plain DQN (SB3's algorithm)"
    renshu_rows = {  # row -> (double, bf16)
        plain: (False, "off"),
        "renshu, Double DQN (its default)": (True, "off"),
        "renshu, plain DQN, bf16=on": (False, "on"),
        "renshu, Double DQN, bf16=on": (True, "on"),
    }
    for side in [*renshu_rows, *sb3_sides]:
        log(f"DQN training env steps/s: {side} ...")
        if side in renshu_rows:
            double, bf16 = renshu_rows[side]
            dqn_rates[side] = renshu_dqn_rate(args.train_steps, double, bf16)
        else:
            dqn_rates[side] = sb3_dqn_rate(side.split()[-1][:-6].lower(), args.train_steps)
        log(f"  {dqn_rates[side]:,.0f}")

    import torch

    print(f"# Atari {GAME}: env and DQN training throughput ({time.strftime('%Y-%m-%d')})")
    print()
    print(f"- CPU: {cpu_model()}, {os.cpu_count()} cores ({len(cores)} used)")
    print(
        f"- torch {torch.__version__} with {args.threads} threads on every side; ale-py "
        f"{version('ale-py')}; stable-baselines3 {version('stable-baselines3')}"
    )
    print(
        f"- {N_ENVS} envs, DeepMind preprocessing; DQN: Nature CNN, batch {BATCH}, 1 gradient "
        f"step per 4 transitions, buffer {BUFFER:,}, timed over {args.train_steps:,} "
        "transitions after learning started"
    )
    print()
    print("| env | env steps/s (random actions) | renshu x faster |")
    print("|---|---:|---:|")
    for side, rate in env_rates.items():
        print(f"| {side} | {fmt_rate(rate)} | {fmt_ratio(env_rates['renshu'] / rate)} |")
    if missing:
        print(f"| SB3 make_atari_env | not installed ({missing}) | — |")
    print()
    base = sb3_sides[0] if sb3_sides else plain
    print(f"| DQN training | env steps/s | x {base} |")
    print("|---|---:|---:|")
    for side, rate in dqn_rates.items():
        print(f"| {side} | {fmt_rate(rate)} | {fmt_ratio(rate / dqn_rates[base])} |")
    if missing:
        print(f"| SB3 DQN | not installed ({missing}) | — |")
    out = {"env_steps_per_second": env_rates, "dqn_env_steps_per_second": dqn_rates}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
