"""renshu: fast, correct deep reinforcement learning in PyTorch.

Games run as batched tensor functions (``renshu.envs``); algorithms consume the TensorEnv
protocol. Importing renshu registers its native games with Gymnasium (``renshu/Game2048-v0``).
"""

from renshu.envs.base import FunctionalEnv, TensorEnv
from renshu.envs.registry import make_env
from renshu.interop.gymnasium import register_gymnasium_envs

__version__ = "0.1.0"
__all__ = ["FunctionalEnv", "TensorEnv", "make_env", "__version__"]

register_gymnasium_envs()
