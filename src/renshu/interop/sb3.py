"""A Stable-Baselines3 ``VecEnv`` over renshu's batched engine.

``vec_env("game2048", num_envs=1024)`` gives SB3 (``PPO``, ``A2C``, ``DQN``, sb3-contrib's
``MaskablePPO``, ...) one batch of 1024 games stepped as tensor ops, where ``DummyVecEnv`` would
step 1024 Python environments one after another. What SB3 expects of a ``VecEnv`` is there:

* ``step`` returns numpy observations, float32 rewards, bool dones and a list of info dicts;
  where an episode ended the env has already started the next one, and that env's info holds
  ``"terminal_observation"``, ``"TimeLimit.truncated"`` (so SB3 bootstraps truncated episodes),
  ``"episode"`` ``{"r", "l", "t"}`` as SB3's ``Monitor`` writes it (so ``ep_rew_mean`` is
  logged without a wrapper, and ``env_is_wrapped(Monitor)`` is true) and the game's extras
  (2048: ``score``, ``max_tile``).
* ``action_masks()`` (bool ``[num_envs, num_actions]``) and ``env_method("action_masks")``,
  which is how ``MaskablePPO`` asks for the legal moves.
* ``seed(s)`` then ``reset()`` seeds the one generator that drives every game;
  ``set_options({"board": tiles})`` starts the next reset's 2048 games from given boards
  (``[4, 4]`` for all, or one per env through a list of option dicts).

Needs the ``renshu[sb3]`` extra (stable-baselines3; sb3-contrib for ``MaskablePPO``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

try:
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import VecEnv
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn
except ImportError as e:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        "renshu.interop.sb3 needs Stable-Baselines3: pip install 'renshu[sb3]' "
        f"(stable-baselines3 and sb3-contrib) ({e})"
    ) from e

from renshu.envs.base import TensorEnv
from renshu.interop.gymnasium import TensorVectorEnv, render_frame

__all__ = ["TensorVecEnv", "vec_env"]


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.numpy() if x.device.type == "cpu" else x.cpu().numpy()


class TensorVecEnv(VecEnv):
    """An SB3 ``VecEnv`` over a TensorEnv (see the module docstring)."""

    def __init__(self, env: TensorEnv, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.env = env
        self._render_mode = render_mode
        # Reset options ("board") are handled by the Gymnasium vector env over the same engine.
        self._gym = TensorVectorEnv(env, backend="numpy", render_mode=render_mode)
        super().__init__(env.num_envs, env.observation_space, env.action_space)
        self._actions: torch.Tensor | None = None
        self._mask = np.ones((env.num_envs, env.num_actions), dtype=bool)
        self._start_time = time.time()

    def __repr__(self) -> str:
        return f"TensorVecEnv({self.env!r})"

    # -- SB3 VecEnv API -------------------------------------------------------------------------

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]  # SB3's seed(s) stores s, s + 1, ...: the engine takes s
        options = self._merged_options()
        obs, info = self._gym.reset(seed=seed, options=options)
        self._mask = info["action_mask"].astype(bool)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        try:
            self._actions = torch.as_tensor(np.asarray(actions))
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"actions must be an integer array of shape ({self.num_envs},), got {actions!r}"
            ) from None

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("call step_async(actions) before step_wait()")
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        self._actions = None
        self._mask = _numpy(info["action_mask"]).copy()
        done = _numpy(info["done"])
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done.any():
            final = _numpy(info["final_obs"])
            episode = {k: _numpy(v) for k, v in info["episode"].items()}
            ep_return, ep_length = episode.pop("return"), episode.pop("length")
            cut = _numpy(truncated) & ~_numpy(terminated)
            elapsed = round(time.time() - self._start_time, 6)
            for i in np.flatnonzero(done).tolist():
                entry = infos[i]
                entry["terminal_observation"] = final[i]
                entry["TimeLimit.truncated"] = bool(cut[i])
                entry["episode"] = {"r": float(ep_return[i]), "l": int(ep_length[i]), "t": elapsed}
                for key, values in episode.items():
                    entry[key] = values[i].item()
        return _numpy(obs), _numpy(reward.to(torch.float32)), done, infos

    def action_masks(self) -> np.ndarray:
        """bool ``[num_envs, num_actions]``: the legal actions of the current observations."""
        return self._mask.copy()

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of the one batched engine, once per env of ``indices``."""
        count = len(list(self._get_indices(indices)))
        if attr_name == "render_mode":
            value = self._render_mode
        elif attr_name == "action_masks":
            value = self.action_masks
        else:
            value = getattr(self.env, attr_name)
        return [value] * count

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Sets the attribute on the one batched engine (all envs share it)."""
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        """``env_method("action_masks")``: one mask row per env of ``indices``."""
        if method_name != "action_masks":
            raise AttributeError(
                f"renshu's batched VecEnv runs env_method('action_masks') only, not "
                f"{method_name!r}: its envs are rows of one engine, not separate objects"
            )
        return [self._mask[i] for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """True for SB3's ``Monitor`` (and its bases): ``info["episode"]`` is what it writes,
        so ``evaluate_policy`` reads whole episodes from it. False for any other wrapper."""
        wrapped = issubclass(Monitor, wrapper_class)
        return [wrapped] * len(list(self._get_indices(indices)))

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self._render_mode != "rgb_array":
            return [None] * self.num_envs
        return [render_frame(self.env, i) for i in range(self.num_envs)]

    # -- helpers --------------------------------------------------------------------------------

    def _merged_options(self) -> dict[str, Any] | None:
        """SB3 keeps one options dict per env; the engine takes one for all (a ``board`` given
        per env becomes the ``[num_envs, 4, 4]`` batch)."""
        options = self._options
        if not any(options):
            return None
        keys = set().union(*(o.keys() for o in options))
        merged: dict[str, Any] = {}
        for key in keys:
            values = [o.get(key) for o in options]
            if key == "board" and not all(v is values[0] for v in values):
                if any(v is None for v in values):
                    raise ValueError("options['board'] must be given for every env or for none")
                merged[key] = np.stack([np.asarray(v) for v in values])
            else:
                merged[key] = values[0]
        return merged


def vec_env(
    name: str,
    num_envs: int = 1,
    *,
    device: str | torch.device | None = "cpu",
    seed: int | None = None,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
    **options: Any,
) -> TensorVecEnv:
    """An SB3 ``VecEnv`` of ``num_envs`` games of ``name`` (``game2048``, ``cartpole``,
    ``gridworld``, ...) on one batched engine; ``options`` are the game's (``renshu envs``
    lists them; an unknown one is a ValueError naming the valid ones)."""
    from renshu.envs.registry import make_env

    env = make_env(
        name, num_envs=num_envs, device=device, seed=seed, max_episode_steps=max_episode_steps,
        **options,
    )  # fmt: skip
    return TensorVecEnv(env, render_mode=render_mode)
