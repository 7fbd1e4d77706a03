"""Any Gymnasium environment as a :class:`~renshu.envs.base.TensorEnv`.

:class:`GymEnv` runs ``num_envs`` copies of a Gymnasium id in a ``gymnasium.vector.SyncVectorEnv``
(one process) or ``AsyncVectorEnv`` (one worker process per copy) and speaks renshu's TensorEnv
conventions: tensors on ``device``, auto-reset inside ``step`` with the last observation of a
finished episode in ``info["final_obs"]``, ``info["done"]``, finished-episode ``"return"`` and
``"length"`` in ``info["episode"]`` and an all-true ``info["action_mask"]``.

Only discrete action spaces are supported. Observations keep their dtype (uint8 frames stay
uint8), except float64, which becomes float32.

The vector env runs in Gymnasium's same-step autoreset mode, so a step that ends an episode
returns the first observation of the next one and no extra "reset step" is wasted, as with
renshu's native games.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from renshu.envs.base import TensorEnv, check_actions, check_seed, resolve_device

VECTORIZATIONS = ("sync", "async")

_OBS_SPACES = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiBinary,
    gym.spaces.MultiDiscrete,
)


def ensure_registered(env_id: str) -> None:
    """Raise a clear error unless ``env_id`` is a registered Gymnasium id.

    Atari ids (``ALE/...``) are registered by importing ale-py, which is tried first.
    """
    if env_id.startswith("ALE/"):
        try:
            import ale_py
        except ImportError as e:
            raise ImportError(
                f'{env_id!r} is an Atari game, which needs ale-py: pip install "renshu[atari]"'
            ) from e
        gym.register_envs(ale_py)
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown Gymnasium id {env_id!r}.{hint} Registered ids are listed by "
            "`python -c 'import gymnasium; gymnasium.pprint_registry()'`."
        )


def _single_obs_space(space: gym.Space) -> gym.Space:
    """The observation space of what :class:`GymEnv` returns (float64 boxes become float32)."""
    if not isinstance(space, _OBS_SPACES):
        raise ValueError(
            f"observation space {space} is not supported; GymEnv handles Box, Discrete, "
            "MultiBinary and MultiDiscrete observations (flatten others with a wrapper, e.g. "
            "gymnasium.wrappers.FlattenObservation)"
        )
    if isinstance(space, gym.spaces.Box) and space.dtype == np.float64:
        return gym.spaces.Box(
            space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32
        )
    return space


class EpisodeTally:
    """Running return and length of each env's current episode, for host-side (numpy) envs."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def reset(self) -> None:
        self.returns[:] = 0.0
        self.lengths[:] = 0

    def step(self, reward: np.ndarray, done: np.ndarray, device) -> dict[str, torch.Tensor]:
        """Add one step; returns the episode statistics (valid where ``done``) and restarts
        the finished episodes."""
        self.returns += reward
        self.lengths += 1
        episode = {
            "return": torch.as_tensor(self.returns, dtype=torch.float32).to(device),
            "length": torch.as_tensor(self.lengths.copy()).to(device),
        }
        self.returns[done] = 0.0
        self.lengths[done] = 0
        return episode


class GymEnv(TensorEnv):
    """``num_envs`` copies of the Gymnasium environment ``env_id`` as a TensorEnv.

    Args:
        env_id: a registered Gymnasium id, e.g. ``"CartPole-v1"`` or ``"ALE/Pong-v5"``.
        num_envs: number of copies stepped together.
        device: where the returned tensors live (``"auto"``: CUDA when present).
        seed: seed of the first ``reset()`` when it is given none; copy ``i`` gets ``seed + i``.
        max_episode_steps: overrides the id's time limit (None: keep the registered one).
        vectorization: ``"sync"`` steps the copies one after the other in this process;
            ``"async"`` runs each in its own worker process (worth it for slow envs).
        wrappers: applied to each copy after ``gymnasium.make`` (e.g. Atari preprocessing).
        env_kwargs: keyword arguments of ``gymnasium.make`` for the environment itself.
        check: validate the actions of every ``step`` (shape, dtype, range).
        render: make the copies with ``render_mode="rgb_array"`` so that :meth:`render` works.
    """

    supports_groups = True  # when the id's reset is determined by its seed (checked)

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        device: str | torch.device | None = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None = None,
        vectorization: str = "sync",
        wrappers: Callable[[gym.Env], gym.Env] | None = None,
        env_kwargs: dict[str, Any] | None = None,
        check: bool = True,
        render: bool = False,
    ):
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if vectorization not in VECTORIZATIONS:
            raise ValueError(
                f"vectorization must be one of {VECTORIZATIONS}, got {vectorization!r}"
            )
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        ensure_registered(env_id)
        self.env_id = env_id
        self.num_envs = num_envs
        self.device = resolve_device(device)
        self.vectorization = vectorization
        self.check = check
        self._seed = check_seed(seed)

        make_kwargs = dict(env_kwargs or {})
        if max_episode_steps is not None:
            make_kwargs["max_episode_steps"] = max_episode_steps
        if render:
            make_kwargs["render_mode"] = "rgb_array"
        self._last_frame: np.ndarray | None = None

        def make_one() -> gym.Env:
            env = gym.make(env_id, **make_kwargs)
            return wrappers(env) if wrappers is not None else env

        # Check the spaces on one copy before starting num_envs (possibly in worker processes).
        probe = make_one()
        try:
            action_space, obs_space = probe.action_space, probe.observation_space
        finally:
            probe.close()
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(
                f"{env_id} has action space {action_space}; GymEnv supports Discrete action "
                "spaces only"
            )
        self.action_space = action_space
        self.max_episode_steps = probe.spec.max_episode_steps if probe.spec else None
        self.num_actions = int(action_space.n)
        self._action_start = int(action_space.start)
        self.observation_space = _single_obs_space(obs_space)

        vector_cls = (
            gym.vector.SyncVectorEnv if vectorization == "sync" else gym.vector.AsyncVectorEnv
        )
        self.venv = vector_cls(
            [make_one] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
        self._mask = torch.ones(num_envs, self.num_actions, dtype=torch.bool, device=self.device)
        self._tally = EpisodeTally(num_envs)
        self._started = False

    def __repr__(self) -> str:
        return (
            f"GymEnv({self.env_id}, num_envs={self.num_envs}, device={self.device}, "
            f"vectorization={self.vectorization!r})"
        )

    def __enter__(self) -> GymEnv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(x)
        if t.dtype == torch.float64:
            t = t.to(torch.float32)
        return t.to(self.device)

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        seed = check_seed(seed)
        if seed is None and not self._started:
            seed = self._seed
        obs, _ = self.venv.reset(seed=seed)
        self._started = True
        self._tally.reset()
        return self._tensor(obs), {"action_mask": self._mask}

    def reset_groups(
        self, group_size: int, seed: int | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset so that every block of ``group_size`` consecutive copies starts from the same
        state: the copies of group ``g`` are all reset with seed ``seed + g``.

        Raises a ValueError if copies reset with the same seed return different observations
        (an environment whose reset is not determined by its seed cannot form such groups).
        """
        if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
            raise ValueError(f"group_size must be a positive int, got {group_size!r}")
        if self.num_envs % group_size:
            raise ValueError(f"group_size {group_size} must divide num_envs {self.num_envs}")
        seed = check_seed(seed)
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31))
        groups = self.num_envs // group_size
        seeds = [seed + g for g in range(groups) for _ in range(group_size)]
        obs, _ = self.venv.reset(seed=seeds)
        self._started = True
        self._tally.reset()
        flat = np.asarray(obs).reshape(groups, group_size, -1)
        same = (flat == flat[:, :1]).all(axis=(1, 2))
        if not same.all():
            g = int(np.flatnonzero(~same)[0])
            raise ValueError(
                f"{self.env_id} cannot be reset to the same state by seed: {group_size} copies "
                f"reset with seed {seed + g} returned different observations, so its groups "
                "cannot start from one state (use group_start='random' for this environment)"
            )
        return self._tensor(obs), {"action_mask": self._mask}

    def step(self, actions: torch.Tensor):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self.check:
            actions = check_actions(actions, self.num_envs, self.num_actions, self.device)
        np_actions = actions.detach().cpu().numpy().astype(np.int64) + self._action_start
        obs, reward, terminated, truncated, info = self.venv.step(np_actions)
        done = terminated | truncated

        final_obs = obs.copy()
        ended = info.get("_final_obs")
        if ended is not None:
            for i in np.flatnonzero(ended):
                final_obs[i] = info["final_obs"][i]

        episode = self._tally.step(reward, done, self.device)

        info_out = {
            "action_mask": self._mask,
            "final_obs": self._tensor(final_obs),
            "done": torch.as_tensor(done).to(self.device),
            "episode": episode,
        }
        return (
            self._tensor(obs),
            torch.as_tensor(reward, dtype=torch.float32).to(self.device),
            torch.as_tensor(terminated).to(self.device),
            torch.as_tensor(truncated).to(self.device),
            info_out,
        )

    def frame(self, index: int = 0, final: bool = False):
        """Copy ``index``'s picture (built with ``render=True``), drawn now. Gymnasium resets a
        finished copy within its step, so ``final`` gives the last one drawn before that step."""
        from renshu.envs.render import with_header

        if not (final and self._last_frame is not None):
            try:
                if self.vectorization == "sync":
                    image = self.venv.envs[index].render()
                else:
                    image = self.venv.call("render")[index]
            except gym.error.DependencyNotInstalled as e:
                raise ImportError(f"recording {self.env_id} needs its renderer: {e}") from None
            if image is None:
                raise ValueError(f"{self.env_id} renders no frames; build it with render=True")
            self._last_frame = np.asarray(image)
        return functools.partial(with_header, self._last_frame)

    def close(self) -> None:
        if self.venv is not None:
            self.venv.close()
            self.venv = None
        self._started = False
