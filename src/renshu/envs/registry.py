"""Environment names -> TensorEnvs (through their :mod:`~renshu.envs.specs`), and the Gymnasium
registration of renshu's native games."""

from __future__ import annotations

from typing import Any

import torch

from renshu.envs.base import TensorEnv
from renshu.envs.specs import EnvSpec, resolve


def make_env(
    name: str | EnvSpec,
    num_envs: int = 1,
    device: str | torch.device | None = "cpu",
    seed: int | None = None,
    max_episode_steps: int | None = None,
    render: bool = False,
    **options: Any,
) -> TensorEnv:
    """Build a TensorEnv by name: a native game (``game2048``/``2048``, ``cartpole``,
    ``gridworld``), an Atari id (``ALE/Breakout-v5``, ``BreakoutNoFrameskip-v4``) or any
    registered Gymnasium id (``CartPole-v1``).

    ``options`` are the env's options (``renshu envs`` lists them), typed and checked by its
    spec: strings from the command line are converted (``"0"`` -> 0.0 for a float option), an
    unknown name or a bad value raises a ValueError that names the option and the valid values.
    ``render``: the env can draw frames (:meth:`TensorEnv.frame`), for recording. For a
    Gymnasium id, ``wrappers`` (a callable applied to each copy) may be given as well; for a
    native game, ``stuck_steps`` (truncate an episode whose observation stayed the same that
    many steps in a row: what evaluation uses, see ``EvalSpec.stuck_steps``).
    """
    spec = resolve(name) if isinstance(name, str) else name
    wrappers = options.pop("wrappers", None)
    extra = {} if wrappers is None else {"wrappers": wrappers}
    stuck = options.pop("stuck_steps", None)
    if stuck is not None:
        extra["stuck_steps"] = stuck
    typed = spec.parse_options(options)
    limit = typed.pop("max_episode_steps", None)  # an env option too (--env-option)
    return spec.make(
        num_envs=num_envs, device=device, seed=seed, render=render,
        max_episode_steps=max_episode_steps if max_episode_steps is not None else limit,
        **typed, **extra,
    )  # fmt: skip
