"""Environments: the TensorEnv protocol, native batched games and adapters.

What renshu knows about each environment (:mod:`renshu.envs.specs`) imports without torch, so
``renshu envs`` and the CLI's help stay fast; ``FunctionalEnv``, ``TensorEnv`` and ``make_env``
load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FunctionalEnv", "TensorEnv", "make_env"]

_LAZY = {
    "FunctionalEnv": "renshu.envs.base",
    "TensorEnv": "renshu.envs.base",
    "make_env": "renshu.envs.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'renshu.envs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
