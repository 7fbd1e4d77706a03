"""``renshu/Game2048-v0``: one 2048 game as a standard :class:`gymnasium.Env`.

For outside tools (Stable-Baselines3, ``gymnasium.make_vec``). It plays by exactly the rules of
the batched game in :mod:`renshu.envs.game2048` and shares its row tables, but steps a single
board held as a Python int, which is far faster for one game than a batch of size one.
Randomness comes from ``self.np_random`` (seeded by ``reset(seed=...)``), as Gymnasium expects.

``info`` (from ``reset`` and ``step``) holds ``"board"`` (int64 ``[4, 4]`` tile values),
``"score"``, ``"max_tile"`` and ``"action_mask"`` (int8 ``[4]``, 1 = legal); ``action_masks()``
returns the same mask as bools, which is where sb3-contrib's ``MaskablePPO`` looks for it.
``reset(options={"board": tiles})`` starts the game from the given ``[4, 4]`` tile values instead
of two random tiles (checked: a board that is not a 2048 position is a ValueError).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from renshu.envs import game2048 as g

_U64 = (1 << 64) - 1
RESET_OPTIONS = {"board": "int [4, 4] tile values to start from (0: empty)"}


def _transpose(b: int) -> int:
    a1 = b & 0xF0F00F0FF0F00F0F
    a2 = b & 0x0000F0F00000F0F0
    a3 = b & 0x0F0F00000F0F0000
    a = a1 | ((a2 << 12) & _U64) | (a3 >> 12)
    b1 = a & 0xFF00FF0000FF00FF
    b2 = a & 0x00FF00FF00000000
    b3 = a & 0x00000000FF00FF00
    return b1 | (b2 >> 24) | ((b3 << 24) & _U64)


class _Tables:
    """The batched game's row tables as Python lists (fast scalar indexing)."""

    def __init__(self) -> None:
        move, canmove = g._numpy_tables()
        self.move = move.tolist()
        self.canmove = canmove.tolist()


_tables: _Tables | None = None


def _get_tables() -> _Tables:
    global _tables
    if _tables is None:
        _tables = _Tables()
    return _tables


def move_board(board: int, action: int) -> tuple[int, int]:
    """One move of a Python-int board (no spawn): (new board, reward)."""
    t = _get_tables().move
    vertical = action >= 2
    src = _transpose(board) if vertical else board
    offset = (action & 1) << 16
    new = 0
    reward = 0
    for r in range(4):
        p = t[offset + ((src >> (16 * r)) & 0xFFFF)]
        new |= (p & 0xFFFF) << (16 * r)
        reward += (p >> 16) * 4
    return (_transpose(new) if vertical else new), reward


def legal_mask(board: int) -> np.ndarray:
    c = _get_tables().canmove
    t = _transpose(board)
    h = v = 0
    for r in range(4):
        h |= c[(board >> (16 * r)) & 0xFFFF]
        v |= c[(t >> (16 * r)) & 0xFFFF]
    return np.array([h & 1, (h >> 1) & 1, v & 1, (v >> 1) & 1], dtype=np.int8)


def board_exponents(board: int) -> np.ndarray:
    return np.array([(board >> (4 * i)) & 0xF for i in range(16)], dtype=np.uint8).reshape(4, 4)


class Game2048Env(gym.Env):
    """One game of 2048 (actions 0 left, 1 right, 2 up, 3 down). See the module docstring."""

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 8}

    def __init__(
        self, obs: str = "exponent", invalid_move: str = "mask", render_mode: str | None = None
    ):
        self._game = g.Game2048(obs=obs, invalid_move=invalid_move)  # validates the options
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        self.obs_mode = obs
        self.invalid_move = invalid_move
        self.render_mode = render_mode
        self.observation_space = self._game.observation_space
        self.action_space = gym.spaces.Discrete(4)
        self.board = 0
        self.score = 0
        self._legal = np.zeros(4, dtype=np.int8)

    # -- helpers --------------------------------------------------------------------------

    def _spawn(self, board: int) -> int:
        empty = [i for i in range(16) if not (board >> (4 * i)) & 0xF]
        cell = empty[int(self.np_random.integers(len(empty)))]
        tile = 2 if self.np_random.random() < 0.1 else 1
        return board | (tile << (4 * cell))

    def _observation(self) -> np.ndarray:
        e = board_exponents(self.board)
        if self.obs_mode == "exponent":
            return e
        if self.obs_mode == "onehot":
            return (e[None] == np.arange(16, dtype=np.uint8)[:, None, None]).astype(np.float32)
        if self.obs_mode == "log2":
            return e.astype(np.float32)
        return np.where(e > 0, 2.0 ** e.astype(np.float32), 0.0).astype(np.float32) / 2048.0

    def tiles(self) -> np.ndarray:
        e = board_exponents(self.board).astype(np.int64)
        return np.where(e > 0, 1 << e, 0)

    def _info(self, legal: np.ndarray) -> dict[str, Any]:
        board = self.tiles()
        mask = np.ones(4, dtype=np.int8) if self.invalid_move == "noop" else legal.copy()
        return {
            "board": board,
            "score": self.score,
            "max_tile": int(board.max()),
            "action_mask": mask,
        }

    # -- gymnasium API --------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        unknown = sorted(set(options or {}) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {unknown} for renshu/Game2048-v0; valid: "
                + ", ".join(f"{k} ({v})" for k, v in RESET_OPTIONS.items())
            )
        if options and options.get("board") is not None:
            e = g.check_tiles(options["board"], shape=("4", "4"))
            self.board = int(g.board_from_exponents(e)) & _U64
        else:
            self.board = self._spawn(self._spawn(0))
        self.score = 0
        self._legal = legal_mask(self.board)
        return self._observation(), self._info(self._legal)

    def action_masks(self) -> np.ndarray:
        """bool ``[4]``: the moves that change the board (all true with ``invalid_move="noop"``)."""
        if self.invalid_move == "noop":
            return np.ones(4, dtype=bool)
        return self._legal.astype(bool)

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(
                f"action must be an int in [0, 3] (left, right, up, down), got {action!r}"
            )
        new, reward = move_board(self.board, int(action))
        if new != self.board:
            self.board = self._spawn(new)
            self.score += reward
            self._legal = legal_mask(self.board)
        else:
            reward = 0
        terminated = not self._legal.any()
        return self._observation(), float(reward), terminated, False, self._info(self._legal)

    def render(self):
        from renshu.envs import render

        if self.render_mode == "ansi":
            return render.board_ansi(self.tiles()) + f"\nscore {self.score}\n"
        if self.render_mode == "rgb_array":
            return render.board_rgb(self.tiles(), header=f"score {self.score}")
        return None
