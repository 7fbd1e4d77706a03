"""renshu: fast, correct deep reinforcement learning in PyTorch.

Games run as batched tensor functions (``renshu.envs``); algorithms consume the TensorEnv
protocol. ``import renshu`` is light: it registers the native games with Gymnasium as
``renshu/Game2048-v0``, ``renshu/CartPole-v0`` and ``renshu/GridWorld-v0`` (``gymnasium.make``
for one game, ``gymnasium.make_vec`` for one batched engine) and imports neither torch nor
any other heavy module until ``FunctionalEnv``, ``TensorEnv`` or ``make_env`` is used.
"""

from __future__ import annotations

from typing import Any

from renshu.interop.registration import register_gymnasium_envs

__version__ = "0.1.0"
__all__ = ["FunctionalEnv", "TensorEnv", "make_env", "__version__"]

_LAZY = {
    "FunctionalEnv": "renshu.envs.base",
    "TensorEnv": "renshu.envs.base",
    "make_env": "renshu.envs.registry",
}


def __getattr__(name: str) -> Any:
    """``renshu.FunctionalEnv``, ``renshu.TensorEnv`` and ``renshu.make_env``, imported on
    first use (they need torch)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'renshu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


register_gymnasium_envs()
