"""Environment names -> TensorEnvs, and the Gymnasium registration of renshu's native games."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

from renshu.envs.base import FunctionalEnv, TensorEnv


@dataclass(frozen=True)
class EnvSpec:
    name: str
    description: str
    make_game: Callable[..., Any]
    max_episode_steps: int | None = None
    aliases: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)


def _game2048(**kwargs):
    from renshu.envs.game2048 import Game2048

    return Game2048(**kwargs)


def _cartpole():
    from renshu.envs.cartpole import CartPole

    return CartPole()


def _gridworld(**kwargs):
    from renshu.envs.gridworld import GridWorld

    return GridWorld(**kwargs)


NATIVE_ENVS: dict[str, EnvSpec] = {
    "game2048": EnvSpec(
        name="game2048",
        description="2048 on a 4x4 board, batched bitboards (actions: left, right, up, down)",
        make_game=_game2048,
        max_episode_steps=None,
        aliases=("2048",),
        options={
            "obs": "exponent | onehot | log2 | raw",
            "invalid_move": "mask | noop",
            "compile": "false | true (fuse the step with torch.compile)",
        },
    ),
    "cartpole": EnvSpec(
        name="cartpole",
        description="CartPole-v1 physics as batched tensors (actions: push left, push right)",
        make_game=_cartpole,
        max_episode_steps=500,
    ),
    "gridworld": EnvSpec(
        name="gridworld",
        description="the classic 4x3 grid world: goal +1, pit -1, slippery moves "
        "(actions: left, right, up, down)",
        make_game=_gridworld,
        max_episode_steps=100,
        options={
            "obs": "onehot | coords | rgb (uint8 [3, 84, 84] image)",
            "slip": "probability a move goes sideways instead (default 0.2; 0: deterministic)",
            "step_cost": "reward -step_cost for every step that ends nowhere (default 0.04)",
        },
    ),
}

_ALIASES = {alias: spec.name for spec in NATIVE_ENVS.values() for alias in spec.aliases}


def native_env_names() -> list[str]:
    return sorted(NATIVE_ENVS)


def _unknown_env_error(name: str, gymnasium_ids: bool) -> ValueError:
    known = native_env_names() + sorted(_ALIASES)
    close = difflib.get_close_matches(name, known, n=1)
    if not close and gymnasium_ids:
        close = difflib.get_close_matches(name, list(gym.registry), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    gym_hint = " Any Gymnasium id works too (e.g. CartPole-v1)." if gymnasium_ids else ""
    return ValueError(
        f"unknown environment {name!r}.{hint} Native environments: {', '.join(native_env_names())}"
        f" (aliases: {', '.join(f'{a}={c}' for a, c in sorted(_ALIASES.items()))}).{gym_hint} "
        "Run `renshu envs` for the list."
    )


def resolve_name(name: str) -> str:
    """The canonical native name for ``name`` (aliases allowed), or a ValueError listing them."""
    if name in NATIVE_ENVS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    raise _unknown_env_error(name, gymnasium_ids=False)


def make_env(
    name: str,
    num_envs: int = 1,
    device: str | torch.device | None = "cpu",
    seed: int | None = None,
    max_episode_steps: int | None = None,
    **options: Any,
) -> TensorEnv:
    """Build a TensorEnv by name: a native game (``game2048``/``2048``, ``cartpole``) or any
    registered Gymnasium id (``CartPole-v1``, ``ALE/Pong-v5`` with ale-py installed).

    For a native game, ``options`` go to the game (e.g. ``obs="onehot"``,
    ``invalid_move="noop"``); an unknown option raises a ValueError naming the valid ones. For a
    Gymnasium id they go to :class:`~renshu.envs.gym.GymEnv` (``vectorization``, ``wrappers``)
    and the rest to ``gymnasium.make``.
    """
    if name not in NATIVE_ENVS and name not in _ALIASES:
        if name.startswith("ALE/"):
            from renshu.envs.atari import AtariEnv

            # DeepMind-preprocessed games in ale-py's vector env (options: see AtariEnv).
            return AtariEnv(
                name, num_envs, device=device, seed=seed, max_episode_steps=max_episode_steps,
                **options,
            )  # fmt: skip
        if name in gym.registry:
            from renshu.envs.gym import GymEnv

            env_options = {k: options.pop(k) for k in ("vectorization", "wrappers") if k in options}
            return GymEnv(
                name,
                num_envs=num_envs,
                device=device,
                seed=seed,
                max_episode_steps=max_episode_steps,
                env_kwargs=options,
                **env_options,
            )
        raise _unknown_env_error(name, gymnasium_ids=True)
    spec = NATIVE_ENVS[resolve_name(name)]
    unknown = set(options) - set(spec.options)
    if unknown:
        valid = ", ".join(f"{k} ({v})" for k, v in spec.options.items()) or "none"
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for environment {spec.name!r}; valid: {valid}"
        )
    game = spec.make_game(**options)
    steps = max_episode_steps if max_episode_steps is not None else spec.max_episode_steps
    return FunctionalEnv(game, num_envs=num_envs, device=device, max_episode_steps=steps, seed=seed)


# ---------------------------------------------------------------------------------------------
# Gymnasium registration (done on `import renshu`).

GYM_IDS = {"renshu/Game2048-v0": "renshu.envs.game2048_gym:Game2048Env"}


def register_gymnasium_envs() -> None:
    for env_id, entry_point in GYM_IDS.items():
        if env_id not in gym.registry:
            # A cap keeps a stuck deterministic policy (always an illegal move) from looping
            # forever.
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=100_000)
