"""Random-policy environment steps per second (``renshu bench``)."""

from __future__ import annotations

import time

import torch

from renshu.envs.base import random_legal_actions


def measure_throughput(env, seconds: float, seed: int = 0, warmup_steps: int = 5) -> float:
    """Env steps per second (steps x num_envs / wall seconds) of uniformly random legal
    actions, after ``warmup_steps`` steps; synchronises CUDA before reading the clock."""
    generator = torch.Generator(device=env.device).manual_seed(seed)
    _, info = env.reset(seed=seed)
    for _ in range(warmup_steps):
        _, _, _, _, info = env.step(random_legal_actions(info["action_mask"], generator))
    cuda = env.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    steps = 0
    start = time.perf_counter()
    while True:
        _, _, _, _, info = env.step(random_legal_actions(info["action_mask"], generator))
        steps += 1
        if steps % 8 == 0 or env.num_envs < 64:
            if cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return steps * env.num_envs / elapsed
