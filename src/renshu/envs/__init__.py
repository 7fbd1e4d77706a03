"""Environments: the TensorEnv protocol, native batched games and adapters."""

from renshu.envs.base import FunctionalEnv, TensorEnv
from renshu.envs.registry import make_env

__all__ = ["FunctionalEnv", "TensorEnv", "make_env"]
