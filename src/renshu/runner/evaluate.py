"""Evaluation: play a fixed number of whole episodes with a policy, batched."""

from __future__ import annotations

from collections.abc import Callable

import torch


@torch.no_grad()
def evaluate(
    act: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    env,
    episodes: int,
    seed: int,
    max_steps: int = 1_000_000,
) -> dict[str, torch.Tensor]:
    """Play ``episodes`` episodes on ``env`` (a TensorEnv) with ``act(obs, mask) -> actions``.

    Episodes are spread evenly over the envs and each env contributes only its first episodes
    (its quota), so short episodes are not over-represented. Returns the finished episodes'
    statistics (``return``, ``length`` and game extras), each a 1-D CPU tensor of ``episodes``.
    """
    n = env.num_envs
    quota = torch.full((n,), episodes // n, dtype=torch.int64, device=env.device)
    quota[: episodes % n] += 1
    taken = torch.zeros_like(quota)
    obs, info = env.reset(seed=seed)
    stats: dict[str, list[torch.Tensor]] = {}
    for _ in range(max_steps):
        obs, _, _, _, info = env.step(act(obs, info["action_mask"]))
        keep = info["done"] & (taken < quota)
        if bool(keep.any()):
            for key, value in info["episode"].items():
                stats.setdefault(key, []).append(value[keep].cpu())
            taken += keep.to(torch.int64)
            if bool((taken >= quota).all()):
                break
    else:
        raise RuntimeError(f"evaluation did not finish {episodes} episodes in {max_steps} steps")
    return {key: torch.cat(values) for key, values in stats.items()}


def summarize(stats: dict[str, torch.Tensor]) -> dict:
    """JSON-ready summary: episodes, mean/std return, and for 2048 mean score and max tiles."""
    returns = stats["return"].double()
    out = {
        "episodes": int(returns.numel()),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std(unbiased=False)),
        "min_return": float(returns.min()),
        "max_return": float(returns.max()),
        "mean_length": float(stats["length"].double().mean()),
    }
    if "score" in stats:
        out["mean_score"] = float(stats["score"].double().mean())
    if "max_tile" in stats:
        tiles, counts = torch.unique(stats["max_tile"], return_counts=True)
        out["max_tile_counts"] = {str(int(t)): int(c) for t, c in zip(tiles, counts)}
    if "success" in stats:
        out["success_rate"] = float(stats["success"].double().mean())
    return out
