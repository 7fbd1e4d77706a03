"""Memory of a 1,000,000-transition Atari replay buffer: renshu's layout, measured.

renshu's ``ReplayBuffer`` with ``frame_stack=4`` keeps one 84x84 uint8 frame per transition
(the newest of its stack) plus action, reward, flags and its position in the episode; stacks
and next observations are rebuilt when sampling (``core/buffers.py``). This script allocates
the buffer for 8 envs, writes 1M transitions of 84x84 frames into it (every page touched) and
reports the process's resident memory growth next to what the buffer says it allocated.

For comparison, the per-transition bytes of Stable-Baselines3's ``ReplayBuffer`` for the same
observations are read off its arrays (allocated at 10,000 transitions and scaled to 1M): with
``optimize_memory_usage=False`` it keeps obs and next_obs stacks (the "naive" layout, 2 x 4
frames per transition), with ``True`` one stack per transition.

    python benchmarks/replay_memory.py                # ~1 minute, needs ~8 GB free
    python benchmarks/replay_memory.py --transitions 200000
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import version

SHAPE = (4, 84, 84)
N_ENVS = 8


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def renshu_bytes(transitions: int) -> tuple[int, int, float]:
    """(bytes the buffer reports, resident growth after filling it, seconds to fill)."""
    import torch

    from renshu.core.buffers import ReplayBuffer

    parts = {"obs": (SHAPE, torch.uint8), "mask": ((4,), torch.bool)}
    before = rss_bytes()
    buf = ReplayBuffer(transitions, N_ENVS, parts, frame_stack=4, max_episode_steps=27_000)
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (64, N_ENVS, *SHAPE), dtype=torch.uint8, generator=g)
    mask = torch.ones(N_ENVS, 4, dtype=torch.bool)
    action = torch.zeros(N_ENVS, dtype=torch.int64)
    reward = torch.zeros(N_ENVS)
    done = torch.zeros(N_ENVS, dtype=torch.bool)
    t0 = time.perf_counter()
    for i in range(buf.rows):
        buf.add({"obs": frames[i % 64], "mask": mask}, action, reward, done, done)
    seconds = time.perf_counter() - t0
    grown = rss_bytes() - before
    assert buf.size == buf.rows
    return buf.nbytes(), grown, seconds


def sb3_bytes_per_transition(optimize: bool) -> float | None:
    try:
        import gymnasium as gym
        import numpy as np
        from stable_baselines3.common.buffers import ReplayBuffer
    except ImportError:
        return None
    n = 10_000
    buf = ReplayBuffer(
        n, gym.spaces.Box(0, 255, SHAPE, dtype=np.uint8), gym.spaces.Discrete(4),
        device="cpu", n_envs=N_ENVS, optimize_memory_usage=optimize,
        handle_timeout_termination=not optimize,
    )  # fmt: skip
    arrays = [v for v in vars(buf).values() if isinstance(v, np.ndarray)]
    return sum(a.nbytes for a in arrays) / n


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transitions", type=int, default=1_000_000)
    args = p.parse_args(argv)
    n = args.transitions
    print(f"filling a {n:,}-transition renshu buffer ...", file=sys.stderr, flush=True)
    reported, grown, seconds = renshu_bytes(n)
    naive = sb3_bytes_per_transition(False)
    optimized = sb3_bytes_per_transition(True)
    scale = 1_000_000 / n

    def gb(x: float) -> str:
        return f"{x / 1e9:.2f} GB"

    print(f"# Replay memory for 1,000,000 Atari transitions ({time.strftime('%Y-%m-%d')})")
    print()
    print(
        f"- observations uint8 {list(SHAPE)} (4 stacked 84x84 frames), {N_ENVS} envs; "
        f"renshu measured at {n:,} transitions (filled in {seconds:.1f} s), scaled x{scale:g}; "
        f"stable-baselines3 {version('stable-baselines3')} arrays at 10,000, scaled"
    )
    print()
    print("| layout | bytes per transition | 1M transitions |")
    print("|---|---:|---:|")
    print(
        f"| renshu, resident memory growth after filling | {grown / n:,.0f} | "
        f"**{gb(grown * scale)}** |"
    )
    print(f"| renshu, as allocated (`ReplayBuffer.nbytes()`) | {reported / n:,.0f} "
          f"| {gb(reported * scale)} |")  # fmt: skip
    if naive is not None:
        print(f"| SB3 `ReplayBuffer` (obs + next_obs stacks) | {naive:,.0f} | {gb(naive * 1e6)} |")
    if optimized is not None:
        print(
            f"| SB3 `ReplayBuffer(optimize_memory_usage=True)` | {optimized:,.0f} "
            f"| {gb(optimized * 1e6)} |"
        )


if __name__ == "__main__":
    main()
