"""Gymnasium registration of renshu's native games, importing nothing but Gymnasium.

``import renshu`` runs :func:`register_gymnasium_envs`, so ``gymnasium.make`` and
``gymnasium.make_vec`` know ``renshu/Game2048-v0``, ``renshu/CartPole-v0`` and
``renshu/GridWorld-v0``. The entry points are strings: torch and the game modules load only
when an env is made. ``renshu.envs.specs.resolve`` maps the same ids to the native specs.
"""

from __future__ import annotations

import gymnasium as gym

_VECTOR = "renshu.interop.gymnasium"

# Gymnasium id -> (single-game entry point, vector entry point, episode step limit).
# The limit keeps a stuck deterministic policy (always an illegal move) from looping forever.
ENTRY_POINTS: dict[str, tuple[str, str, int]] = {
    "renshu/Game2048-v0": (
        "renshu.envs.game2048_gym:Game2048Env",
        f"{_VECTOR}:game2048_vector_env",
        100_000,
    ),
    "renshu/CartPole-v0": (f"{_VECTOR}:CartPoleEnv", f"{_VECTOR}:cartpole_vector_env", 500),
    "renshu/GridWorld-v0": (f"{_VECTOR}:GridWorldEnv", f"{_VECTOR}:gridworld_vector_env", 100),
}


def register_gymnasium_envs() -> None:
    """Register the native games with Gymnasium (idempotent)."""
    for env_id, (entry_point, vector_entry_point, limit) in ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=entry_point,
                vector_entry_point=vector_entry_point,
                max_episode_steps=limit,
            )
