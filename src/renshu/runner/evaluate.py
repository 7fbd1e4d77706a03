"""Evaluation and recording: the one loop that plays whole episodes with a policy, batched.

:func:`play` steps a TensorEnv with ``act(obs, mask) -> actions`` until every env has finished
its quota of episodes; evaluation (:func:`evaluate`) keeps the finished episodes' statistics,
recording (:mod:`renshu.runner.record`) watches env 0 step by step through ``on_step``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from renshu.envs.specs import EnvSpec

# act(obs [n, ...], mask [n, A]) -> actions [n]
ActFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# on_step(obs, mask, actions, reward, info) after each env step; True stops the loop
StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict], bool]


def make_eval_env(spec, episodes: int, device, render: bool = False):
    """The env an evaluation of run ``spec`` steps: at most the env's ``eval.num_envs`` copies,
    with the evaluation step limit if the env has one."""
    from renshu.envs.registry import make_env

    env_spec: EnvSpec = spec.env_spec
    options = dict(spec.env_options)  # the run's own step limit, if it set one, applies too
    if env_spec.eval.max_episode_steps is not None:
        options.setdefault("max_episode_steps", env_spec.eval.max_episode_steps)
    return make_env(
        env_spec, num_envs=min(episodes, env_spec.eval.num_envs), device=device, seed=spec.seed,
        render=render, **options,
    )  # fmt: skip


@torch.no_grad()
def play(
    act: ActFn,
    env,
    episodes: int,
    seed: int | None,
    max_steps: int = 1_000_000,
    on_step: StepFn | None = None,
) -> dict[str, torch.Tensor]:
    """Play ``episodes`` episodes on ``env`` (a TensorEnv) with ``act``.

    Episodes are spread evenly over the envs and each env contributes only its first episodes
    (its quota), so short episodes are not over-represented. Returns the finished episodes'
    statistics (``return``, ``length`` and the env's extras), each a 1-D CPU tensor of
    ``episodes`` entries (fewer when ``on_step`` stopped the loop).
    """
    n = env.num_envs
    quota = torch.full((n,), episodes // n, dtype=torch.int64, device=env.device)
    quota[: episodes % n] += 1
    taken = torch.zeros_like(quota)
    obs, info = env.reset(seed=seed)
    stats: dict[str, list[torch.Tensor]] = {}
    for _ in range(max_steps):
        mask = info["action_mask"]
        actions = act(obs, mask)
        next_obs, reward, _, _, info = env.step(actions)
        keep = info["done"] & (taken < quota)
        if bool(keep.any()):
            for key, value in info["episode"].items():
                stats.setdefault(key, []).append(value[keep].cpu())
            taken += keep.to(torch.int64)
        if on_step is not None and on_step(obs, mask, actions, reward, info):
            break
        if bool((taken >= quota).all()):
            break
        obs = next_obs
    else:
        raise RuntimeError(f"evaluation did not finish {episodes} episodes in {max_steps} steps")
    return {key: torch.cat(values) for key, values in stats.items()}


def evaluate(
    act: ActFn, env, episodes: int, seed: int, max_steps: int = 1_000_000
) -> dict[str, torch.Tensor]:
    """The statistics of ``episodes`` whole episodes (see :func:`play`)."""
    return play(act, env, episodes, seed, max_steps)


def summarize(stats: dict[str, torch.Tensor], env_spec: EnvSpec | None = None) -> dict[str, Any]:
    """JSON-ready summary: episodes, mean/std return, and the env's extras as its spec says
    (``mean_score``, ``max_tile_counts``, ``success_rate``)."""
    returns = stats["return"].double()
    out: dict[str, Any] = {
        "episodes": int(returns.numel()),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std(unbiased=False)),
        "min_return": float(returns.min()),
        "max_return": float(returns.max()),
        "mean_length": float(stats["length"].double().mean()),
    }
    extras = env_spec.extras if env_spec is not None else {}
    for name, how in extras.items():
        if name not in stats:
            continue
        values = stats[name]
        if how == "mean":
            out[f"mean_{name}"] = float(values.double().mean())
        elif how == "counts":
            keys, counts = torch.unique(values, return_counts=True)
            out[f"{name}_counts"] = {str(int(k)): int(c) for k, c in zip(keys, counts)}
        elif how == "rate":
            out[f"{name}_rate"] = float(values.double().mean())
    return out
