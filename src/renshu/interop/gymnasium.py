"""Gymnasium's vector API over renshu's batched engine, and the Gymnasium registration.

:class:`TensorVectorEnv` is one ``gymnasium.vector.VectorEnv`` over a TensorEnv (a
FunctionalEnv for the native games): all ``num_envs`` games step as one batch of tensor ops
instead of ``num_envs`` Python environments. It speaks Gymnasium 1.x's vector conventions:

* ``metadata["autoreset_mode"]`` is ``AutoresetMode.SAME_STEP``: where an episode ends, the
  returned observation already starts the next one; ``info["final_obs"]`` (an object array,
  ``None`` where no episode ended) holds the last observation and ``info["final_info"]`` the
  finished episodes' statistics, each with its ``_key`` mask, as ``SyncVectorEnv`` lays them out.
* ``info["action_mask"]`` (int8 ``[num_envs, num_actions]``, 1 = legal) on every reset and step.
* ``info["final_info"]`` holds the game's episode extras (2048: ``score``, ``max_tile``; the grid
  world: ``success``) and ``episode`` ``{"r", "l"}`` (return and length), the keys Gymnasium's
  per-env ``RecordEpisodeStatistics`` leaves there. The vector ``RecordEpisodeStatistics``
  wrapper works on top (it adds the top-level ``info["episode"]``).
* numpy arrays in and out (``backend="numpy"``, the default). ``backend="torch"`` returns
  tensors on the env's device and takes tensors, with no host copies: then ``final_obs`` is the
  batched ``[num_envs, ...]`` tensor, masks are bool, and the ``final_*`` keys are present on
  every step (valid where their ``_key`` mask is true), so that nothing waits for the device.

``reset(seed=s)`` seeds the one generator that drives every game (a list of seeds has no meaning
here and is refused). 2048 also takes ``reset(options={"board": tiles})``: ``[4, 4]`` tile values
for every game or ``[num_envs, 4, 4]``, one board each (later episodes start as usual).

Importing renshu registers ``renshu/Game2048-v0``, ``renshu/CartPole-v0`` and
``renshu/GridWorld-v0`` (:mod:`renshu.interop.registration`) with a single-game
``entry_point`` (``gymnasium.make``, ``make_vec(..., vectorization_mode="sync")``) and a
``vector_entry_point`` here: ``gymnasium.make_vec("renshu/Game2048-v0", num_envs=4096)`` builds
one batched engine.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from renshu.envs.base import FunctionalEnv, TensorEnv
from renshu.envs.specs import resolve
from renshu.interop.registration import ENTRY_POINTS, register_gymnasium_envs

__all__ = [
    "GYM_IDS",
    "TensorVectorEnv",
    "FunctionalGameEnv",
    "make_vector_env",
    "register_gymnasium_envs",
]

BACKENDS = ("numpy", "torch")
RENDER_MODES = ("rgb_array",)


def _seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(
            f"seed must be an int >= 0 or None, got {seed!r}: one generator drives all the "
            "games of renshu's batched engine, so a list of per-env seeds has no meaning here"
        )
    return int(seed)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.numpy() if x.device.type == "cpu" else x.cpu().numpy()


def render_frame(env: TensorEnv, index: int) -> np.ndarray:
    """RGB frame (uint8 ``[H, W, 3]``) of game ``index`` of a FunctionalEnv."""
    if not isinstance(env, FunctionalEnv) or env.state is None:
        raise RuntimeError("rendering needs a native game after reset()")
    return env.game.render_rgb(env.state, index)


class TensorVectorEnv(VectorEnv):
    """A ``gymnasium.vector.VectorEnv`` over a TensorEnv (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": list(RENDER_MODES),
    }

    def __init__(self, env: TensorEnv, backend: str = "numpy", render_mode: str | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(
                f"render_mode must be one of {', '.join(RENDER_MODES)} or None, got {render_mode!r}"
            )
        if render_mode is not None and not isinstance(env, FunctionalEnv):
            raise ValueError(f"render_mode={render_mode!r} needs a native game, not {env!r}")
        from renshu.envs.game2048 import Game2048

        self.env = env
        self.backend = backend
        self.render_mode = render_mode
        self.num_envs = env.num_envs
        self.device = env.device
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(env.observation_space, self.num_envs)
        self.action_space = batch_space(env.action_space, self.num_envs)
        self.metadata = dict(type(self).metadata)
        self._numpy = backend == "numpy"
        starts_from_boards = isinstance(env, FunctionalEnv) and isinstance(env.game, Game2048)
        self.reset_options: dict[str, str] = (
            {"board": "tile values [4, 4] (every game) or [num_envs, 4, 4] to start from"}
            if starts_from_boards
            else {}
        )

    def __repr__(self) -> str:
        spec = f"{self.spec.id}, " if self.spec is not None else ""
        return f"TensorVectorEnv({spec}{self.env!r}, backend={self.backend!r})"

    # -- Gymnasium API --------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        seed = _seed(seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.reset_options))
        if unknown:
            valid = ", ".join(f"{k} ({v})" for k, v in self.reset_options.items()) or "none"
            raise ValueError(f"unknown reset option(s) {unknown} for {self!r}; valid: {valid}")
        board = options.get("board")
        start = None if board is None else self._board_state(board)  # checked before resetting
        super().reset(seed=seed)
        if start is None:
            obs, info = self.env.reset(seed=seed)
        else:  # a FunctionalEnv (the only kind that takes boards)
            obs, info = self.env.reset(seed=seed, state=start)
        return self._out(obs), self._step_info(info)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(self._actions(actions))
        out = self._step_info(info)
        done = info["done"]
        if not self._numpy:
            out["final_obs"], out["_final_obs"] = info["final_obs"], done
            out["final_info"] = self._final_info(info["episode"], done)
            out["_final_info"] = done.clone()
            return obs, reward, terminated, truncated, out
        done = _numpy(done)
        if done.any():
            rows = _numpy(info["final_obs"])
            final_obs = np.empty(self.num_envs, dtype=object)  # None where nothing ended
            for i in np.flatnonzero(done).tolist():
                final_obs[i] = rows[i]
            out["final_obs"], out["_final_obs"] = final_obs, done.copy()
            out["final_info"] = self._final_info(info["episode"], done)
            out["_final_info"] = done.copy()
        return _numpy(obs), _numpy(reward), _numpy(terminated), _numpy(truncated), out

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One RGB frame per env with ``render_mode="rgb_array"`` (None without a render mode)."""
        if self.render_mode is None:
            return None
        return tuple(render_frame(self.env, i) for i in range(self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()

    # -- helpers --------------------------------------------------------------------------------

    def _out(self, x: torch.Tensor) -> Any:
        return _numpy(x) if self._numpy else x

    def _actions(self, actions: Any) -> torch.Tensor:
        if isinstance(actions, torch.Tensor):
            return actions
        try:
            return torch.as_tensor(np.asarray(actions))
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"actions must be an integer array of shape ({self.num_envs},), got {actions!r}"
            ) from None

    def _step_info(self, info: dict[str, Any]) -> dict[str, Any]:
        mask = info["action_mask"]
        if self._numpy:
            return {
                "action_mask": _numpy(mask).astype(np.int8),  # a copy: the game keeps its mask
                "_action_mask": np.ones(self.num_envs, dtype=bool),
            }
        ones = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        return {"action_mask": mask.clone(), "_action_mask": ones}

    def _final_info(self, episode: dict[str, torch.Tensor], done: Any) -> dict[str, Any]:
        """The finished episodes' statistics, zero where none finished, with ``_key`` masks."""
        if self._numpy:
            copy = np.copy
            values = {k: _numpy(v) * done for k, v in episode.items()}  # same dtypes
        else:
            copy = torch.clone
            values = {k: v * done for k, v in episode.items()}
        stats: dict[str, Any] = {}
        for key, value in values.items():
            if key not in ("return", "length"):
                stats[key], stats[f"_{key}"] = value, copy(done)
        stats["episode"] = {
            "r": values["return"],
            "l": values["length"],
            "_r": copy(done),
            "_l": copy(done),
        }
        stats["_episode"] = copy(done)
        return stats

    def _board_state(self, board: Any):
        """The 2048 state of ``options["board"]``: ``[4, 4]`` for every game or one each."""
        from renshu.envs.game2048 import check_tiles

        n = self.num_envs
        try:
            tiles = board if isinstance(board, torch.Tensor) else torch.as_tensor(np.array(board))
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"options['board'] must be tile values [4, 4] or [{n}, 4, 4], got {board!r}"
            ) from None
        if tiles.dim() == 2:
            tiles = check_tiles(tiles, shape=("4", "4"))  # exponents; mapped back below
            tiles = torch.where(tiles > 0, 1 << tiles, 0).expand(n, 4, 4)
        elif tiles.dim() != 3 or tiles.shape[0] != n:
            raise ValueError(
                f"options['board'] must have shape [4, 4] or [{n}, 4, 4], got {list(tiles.shape)}"
            )
        return self.env.game.from_tiles(tiles, device=self.device)


def make_vector_env(
    name: str,
    num_envs: int = 1,
    *,
    device: str | torch.device | None = "cpu",
    seed: int | None = None,
    max_episode_steps: int | None = None,
    backend: str = "numpy",
    render_mode: str | None = None,
    **options: Any,
) -> TensorVectorEnv:
    """A :class:`TensorVectorEnv` over ``renshu.make_env(name, num_envs, ...)``: ``options`` are
    the game's (``renshu envs`` lists them; an unknown one is a ValueError naming the valid
    ones)."""
    from renshu.envs.registry import make_env

    env = make_env(
        name, num_envs=num_envs, device=device, seed=seed, max_episode_steps=max_episode_steps,
        **options,
    )  # fmt: skip
    return TensorVectorEnv(env, backend=backend, render_mode=render_mode)


def game2048_vector_env(num_envs: int = 1, **kwargs: Any) -> TensorVectorEnv:
    """``vector_entry_point`` of ``renshu/Game2048-v0`` (see :func:`make_vector_env`)."""
    return make_vector_env("game2048", num_envs, **kwargs)


def cartpole_vector_env(num_envs: int = 1, **kwargs: Any) -> TensorVectorEnv:
    """``vector_entry_point`` of ``renshu/CartPole-v0`` (see :func:`make_vector_env`)."""
    return make_vector_env("cartpole", num_envs, **kwargs)


def gridworld_vector_env(num_envs: int = 1, **kwargs: Any) -> TensorVectorEnv:
    """``vector_entry_point`` of ``renshu/GridWorld-v0`` (see :func:`make_vector_env`)."""
    return make_vector_env("gridworld", num_envs, **kwargs)


# ---------------------------------------------------------------------------------------------
# One game as a gymnasium.Env (the single-game entry points of CartPole and the grid world).


class FunctionalGameEnv(gym.Env):
    """One native game as a standard ``gymnasium.Env``, stepped by the batched functions at
    batch size one. Randomness comes from a torch generator seeded from ``self.np_random`` at
    every reset, so ``reset(seed=...)`` makes the episode repeatable as Gymnasium expects.
    ``info["action_mask"]`` (int8) and the game's episode extras are in every ``info``."""

    game_name: ClassVar[str]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None, **options: Any):
        from renshu.envs.registry import make_env

        modes = self.metadata["render_modes"]
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"render_mode must be one of {modes} or None, got {render_mode!r}")
        self.render_mode = render_mode
        tensor_env = make_env(self.game_name, num_envs=1, device="cpu", **options)
        self.game = tensor_env.game
        self.observation_space = self.game.observation_space
        self.action_space = gym.spaces.Discrete(self.game.num_actions)
        self._generator = torch.Generator()
        self.state = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options:
            raise ValueError(
                f"unknown reset option(s) {sorted(options)} for {self.game_name}; it takes none"
            )
        self._generator.manual_seed(int(self.np_random.integers(2**63 - 1)))
        self.state = self.game.init(1, self._generator)
        return self._observation(), self._info()

    def step(self, action: Any):
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            meanings = ", ".join(self.game.action_meanings)
            raise ValueError(
                f"action must be an int in [0, {self.game.num_actions - 1}] ({meanings}), "
                f"got {action!r}"
            )
        act = torch.tensor([int(action)])
        self.state, reward, terminated = self.game.step(self.state, act, self._generator)
        return self._observation(), float(reward[0]), bool(terminated[0]), False, self._info()

    def render(self):
        if self.render_mode == "rgb_array":
            return self.game.render_rgb(self.state, 0)
        if self.render_mode == "ansi":
            return self.game.render_ansi(self.state, 0, color=False) + "\n"
        return None

    def _observation(self) -> np.ndarray:
        return self.game.observe(self.state)[0].numpy()

    def _info(self) -> dict[str, Any]:
        info = {"action_mask": self.game.legal_actions(self.state)[0].to(torch.int8).numpy()}
        for key, value in self.game.episode_extras(self.state).items():
            info[key] = value[0].item()
        return info


class CartPoleEnv(FunctionalGameEnv):
    """``renshu/CartPole-v0``: one game of renshu's CartPole (Gymnasium CartPole-v1 physics)."""

    game_name = "cartpole"
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 50}


class GridWorldEnv(FunctionalGameEnv):
    """``renshu/GridWorld-v0``: one game of the 4x3 grid world (``info["success"]``)."""

    game_name = "gridworld"
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}


# ---------------------------------------------------------------------------------------------
# Gymnasium registration (done on `import renshu`, by renshu.interop.registration).

# Gymnasium id -> renshu's native env name (renshu.envs.specs.resolve maps them).
GYM_IDS: dict[str, str] = {gym_id: resolve(gym_id).name for gym_id in ENTRY_POINTS}
