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


# The step limit of an evaluated or recorded episode of an env that has none of its own and
# whose EvalSpec sets none: every evaluation ends.
EVAL_STEP_LIMIT = 100_000


def make_eval_env(spec, episodes: int, device, render: bool = False):
    """The env an evaluation of run ``spec`` steps: at most the env's ``eval.num_envs`` copies,
    with a step limit per episode (the run's own, else the EvalSpec's, else the env's, else
    :data:`EVAL_STEP_LIMIT`) and the EvalSpec's truncation of stuck episodes."""
    from renshu.envs.registry import make_env

    env_spec: EnvSpec = spec.env_spec
    ev = env_spec.eval
    options = dict(spec.env_options)  # the run's own step limit, if it set one, applies too
    if ev.max_episode_steps is not None:
        options.setdefault("max_episode_steps", ev.max_episode_steps)
    if ev.stuck_steps is not None:
        options["stuck_steps"] = ev.stuck_steps
    num_envs = min(episodes, ev.num_envs)
    env = make_env(env_spec, num_envs=num_envs, device=device, seed=spec.seed, render=render,
                   **options)  # fmt: skip
    if env.max_episode_steps is None:  # e.g. a Gymnasium id registered without a time limit
        env.close()
        options["max_episode_steps"] = EVAL_STEP_LIMIT
        env = make_env(env_spec, num_envs=num_envs, device=device, seed=spec.seed,
                       render=render, **options)  # fmt: skip
    return env


def eval_policy(algo, env_spec: EnvSpec, seed: int, stochastic: bool = False) -> tuple[ActFn, str]:
    """How ``algo`` acts in an evaluation on ``env_spec``, and a label saying so.

    Greedy (its most likely action or highest value), except where the env's EvalSpec says
    otherwise: value-based agents (``algo.value_based``) take a random legal action with
    probability ``eval.epsilon``; policy-gradient agents sample from their policy with
    ``eval.sample_policy`` (both Atari's protocol). ``stochastic`` samples in any case."""
    ev = env_spec.eval
    device = algo.device

    def greedy(obs, mask):
        return algo.act(obs.to(device), mask.to(device), deterministic=True)

    def sample(obs, mask):
        return algo.act(obs.to(device), mask.to(device), deterministic=False)

    if stochastic:
        return sample, "stochastic"
    if algo.value_based:
        if ev.epsilon > 0:
            return epsilon_greedy(
                greedy, ev.epsilon, seed, device
            ), f"epsilon-greedy {ev.epsilon:g}"
        return greedy, "greedy"
    if ev.sample_policy:
        return sample, "sampled"
    return greedy, "greedy"


def epsilon_greedy(act: ActFn, epsilon: float, seed: int, device) -> ActFn:
    """``act``, but a uniformly random legal action with probability ``epsilon`` (seeded)."""
    from renshu.envs.base import make_generator, random_legal_actions

    generator = make_generator(torch.device(device), seed)

    def epsilon_act(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        actions = act(obs, mask)
        mask = mask.to(actions.device)
        explore = torch.rand(actions.shape, generator=generator, device=actions.device) < epsilon
        random = random_legal_actions(mask, generator)
        return torch.where(explore, random.to(actions.dtype), actions)

    return epsilon_act


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
    if env.max_episode_steps is not None:  # the quota of whole episodes always fits
        max_steps = max(max_steps, -(-episodes // n) * env.max_episode_steps + 1)
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
