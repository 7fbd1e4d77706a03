"""renshu: fast, correct deep reinforcement learning in PyTorch.

Games run as batched tensor functions (``renshu.envs``); algorithms consume the TensorEnv
protocol. ``import renshu`` is light: it registers the native games with Gymnasium as
``renshu/Game2048-v0``, ``renshu/CartPole-v0`` and ``renshu/GridWorld-v0`` (``gymnasium.make``
for one game, ``gymnasium.make_vec`` for one batched engine) and imports neither torch nor
any other heavy module until ``FunctionalEnv``, ``TensorEnv`` or ``make_env`` is used, or
the Python API: ``renshu.train("ppo", "cartpole", steps=20_000)`` returns a ``Run``
(:mod:`renshu.api`).
"""

from __future__ import annotations

from typing import Any

from renshu.interop.registration import register_gymnasium_envs

__version__ = "0.1.0"
__all__ = ["FunctionalEnv", "Run", "TensorEnv", "load_run", "make_env", "train", "__version__"]

_LAZY = {
    "FunctionalEnv": "renshu.envs.base",
    "TensorEnv": "renshu.envs.base",
    "make_env": "renshu.envs.registry",
    "train": "renshu.api",
    "load_run": "renshu.api",
    "Run": "renshu.api",
}


def __getattr__(name: str) -> Any:
    """``renshu.FunctionalEnv``, ``renshu.TensorEnv``, ``renshu.make_env`` and the Python API
    (``renshu.train``, ``renshu.load_run``, ``renshu.Run``: :mod:`renshu.api`), imported on
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
