"""renshu's batched games behind other libraries' vector APIs.

* :mod:`renshu.interop.gymnasium`: a ``gymnasium.vector.VectorEnv`` over a TensorEnv, and the
  Gymnasium registration of the native games (``renshu/Game2048-v0``, ``renshu/CartPole-v0``,
  ``renshu/GridWorld-v0``) with single-game and vector entry points.
* :mod:`renshu.interop.sb3`: a Stable-Baselines3 ``VecEnv`` over a TensorEnv (needs the
  ``renshu[sb3]`` extra; imported only when used).

Nothing here is imported by ``import renshu`` except the Gymnasium registration.
"""
