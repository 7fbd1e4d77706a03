"""2048 as pure batched torch functions.

A board is one int64 per game: 16 four-bit exponents (0 = empty, k = tile 2**k), cell ``(r, c)``
in bits ``4 * (4 * r + c)``; row ``r`` is the 16-bit word ``(board >> 16 * r) & 0xFFFF`` with its
left-most cell in the low nibble. A move of a row is one lookup in a 65,536-entry table; columns
are rows of the transposed board, so up/down reuse the left/right tables. A step of a batch is a
handful of tensor ops, identical on CPU and CUDA, with randomness only from an explicit
``torch.Generator``.

Rules: 4x4 board, two starting tiles; after every move that changes the board one tile lands on a
uniformly chosen empty cell (2 with probability 0.9, else 4); a tile merges at most once per move;
the reward is the sum of the tiles created by merges; the game ends when no move changes the board.
Tiles stop at 32768 (2**15, the largest exponent a nibble holds): two 32768 tiles do not merge.

Actions: 0 left, 1 right, 2 up, 3 down.

``invalid_move`` chooses what a move that changes nothing means:

* ``"mask"`` (default): it is illegal. ``legal_actions`` (and ``info["action_mask"]``) mark it
  false, so masked policies never pick it; if it is stepped anyway it is a no-op that spawns no
  tile and gives reward 0.
* ``"noop"``: every action is legal (the mask is all true); a move that changes nothing is a step
  with reward 0 and no new tile — the behaviour of the usual hand-written 2048 environments.

Either way the game ends only when no move changes the board.

Observations (``obs``):

* ``"exponent"`` (default): uint8 ``[4, 4]`` exponents. This is the one-hot encoding in compact
  form: ``torch.nn.Embedding(16, d)`` over it equals a linear layer over 16 one-hot planes, and
  renshu's networks do exactly that. It is 64x smaller than float planes, which makes it the
  fastest choice (see ``benchmarks/env_throughput.py``).
* ``"onehot"``: float32 ``[16, 4, 4]`` planes, plane k marks the cells holding 2**k (plane 0 marks
  empty cells).
* ``"log2"``: float32 ``[4, 4]`` exponents (log2 of the tile, 0 for empty).
* ``"raw"``: float32 ``[4, 4]`` tile values divided by 2048.

``compile=True`` runs the move-spawn-legality core through ``torch.compile``, which fuses its
~80 elementwise ops into a few loops (about 3x faster on CPU at large batches; the first step
of each batch size pays a compilation of tens of seconds). Same results as eager.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

ACTIONS = ("left", "right", "up", "down")
OBS_MODES = ("exponent", "onehot", "log2", "raw")
INVALID_MOVE_MODES = ("mask", "noop")
MAX_EXPONENT = 15

_NIBBLE_LOW_BITS = 0x1111111111111111
_HALF_LOW_BITS = 0x11111111


def _i64(x: int) -> int:
    """An unsigned 64-bit constant as the signed int64 torch stores."""
    return x - (1 << 64) if x >= (1 << 63) else x


# ---------------------------------------------------------------------------------------------
# Row tables (computed once per process with numpy, then copied to each device on first use).


def _move_row_left(cells: list[int]) -> tuple[list[int], int]:
    """Slide one row (exponents, left-most first) to the left. Returns (new cells, reward)."""
    tiles = [c for c in cells if c]
    out: list[int] = []
    reward = 0
    i = 0
    while i < len(tiles):
        if i + 1 < len(tiles) and tiles[i] == tiles[i + 1] and tiles[i] < MAX_EXPONENT:
            out.append(tiles[i] + 1)
            reward += 1 << (tiles[i] + 1)
            i += 2
        else:
            out.append(tiles[i])
            i += 1
    return out + [0] * (4 - len(out)), reward


def _slide_rows_left(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_move_row_left` for many rows at once: ``cells [n, 4]`` -> (new cells, rewards)."""
    n = cells.shape[0]
    # Tiles to the left (a stable sort keeps their order), then a zero column as a sentinel.
    order = np.argsort(cells == 0, axis=1, kind="stable")
    tiles = np.concatenate([np.take_along_axis(cells, order, 1), np.zeros((n, 2), cells.dtype)], 1)
    out = np.zeros_like(cells)
    reward = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    read = np.zeros(n, dtype=np.int64)  # next tile to read in each row
    for j in range(4):  # each output cell takes one tile, or two equal ones merged
        a, b = tiles[rows, read], tiles[rows, read + 1]
        merge = (a != 0) & (a == b) & (a < MAX_EXPONENT)
        out[:, j] = a + merge
        reward += np.where(merge, np.left_shift(1, a + 1), 0)
        read = np.minimum(read + 1 + merge, 4)
    return out, reward


@functools.lru_cache(maxsize=1)
def _numpy_tables() -> tuple[np.ndarray, np.ndarray]:
    """Row tables, built once per process (vectorised over the 65,536 rows).

    ``move[d * 65536 + row]`` (int32) packs the row after sliding it left (d=0) or right (d=1)
    in bits 0-15 and a quarter of the merge reward above them (rewards are multiples of 4 and at
    most 65536, so this fits). ``canmove[row]`` (uint8) has bit 1 set when sliding left changes
    the row and bit 2 when sliding right does.
    """
    n = 1 << 16
    rows = np.arange(n, dtype=np.int64)
    shifts = 4 * np.arange(4, dtype=np.int64)
    cells = (rows[:, None] >> shifts) & 0xF
    left, r_left = _slide_rows_left(cells)
    right_rev, r_right = _slide_rows_left(cells[:, ::-1].copy())
    left_word = (left << shifts).sum(1)
    right_word = (right_rev[:, ::-1] << shifts).sum(1)
    move = np.concatenate([left_word | ((r_left // 4) << 16), right_word | ((r_right // 4) << 16)])
    canmove = (left_word != rows).astype(np.uint8) | ((right_word != rows).astype(np.uint8) << 1)
    return move.astype(np.int32), canmove


@functools.cache
def _tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    move, canmove = _numpy_tables()
    # Bit masks that test "any of the four row bytes has bit 1 (left) / bit 2 (right)".
    any_row = torch.tensor([0x01010101, 0x02020202], dtype=torch.int32)
    return (
        torch.from_numpy(move).to(device),
        torch.from_numpy(canmove).to(device),
        any_row.to(device),
    )


# ---------------------------------------------------------------------------------------------
# Bitboard helpers (all batched over a 1-D int64 tensor of boards). Row r of a board is its r-th
# 16-bit word, so viewing the boards as uint16 gives the rows without shifting (little-endian,
# as on every platform torch runs on).


def transpose(b: torch.Tensor) -> torch.Tensor:
    """Transpose every 4x4 nibble matrix: cell (r, c) <-> (c, r)."""
    a1 = b & _i64(0xF0F00F0FF0F00F0F)
    a2 = b & 0x0000F0F00000F0F0
    a3 = b & 0x0F0F00000F0F0000
    a = a1 | (a2 << 12) | (a3 >> 12)
    b1 = a & _i64(0xFF00FF0000FF00FF)
    b2 = a & 0x00FF00FF00000000
    b3 = a & 0x00000000FF00FF00
    return b1 | (b2 >> 24) | (b3 << 24)


def _rows(b: torch.Tensor) -> torch.Tensor:
    """int32 rows ``[..., 4]`` of int64 boards ``[...]``."""
    return b.contiguous().view(torch.uint16).to(torch.int32)


def _empty_cells(b: torch.Tensor) -> torch.Tensor:
    """Bit ``4 i`` set where nibble ``i`` is empty."""
    occupied = b | (b >> 1) | (b >> 2) | (b >> 3)
    return ~occupied & _NIBBLE_LOW_BITS


def _spawn_cell(b: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where one new tile goes on each board, and which, from one uniform ``u`` per board.

    ``k = floor(u * empties)`` picks the k-th empty cell; the fractional part of ``u * empties``
    (uniform and independent of k) makes the tile a 4 when below 0.1. Returns (cell index
    0..15, exponent 1 or 2). Boards must have an empty cell and at least one tile.
    """
    empty = _empty_cells(b)
    # Per half board (8 nibbles), nibble i of `prefix` counts the empty cells among nibbles
    # 0..i of that half. Halves keep every product below 2**63: no overflow, also in compiled
    # code (where signed overflow is undefined).
    prefix_lo = ((empty & 0xFFFFFFFF) * _HALF_LOW_BITS) & 0xFFFFFFFF
    prefix_hi = (((empty >> 32) & 0xFFFFFFFF) * _HALF_LOW_BITS) & 0xFFFFFFFF
    count_lo = prefix_lo >> 28
    count = (count_lo + (prefix_hi >> 28)).to(u.dtype)
    scaled = u * count
    k = scaled.floor()
    four = (scaled - k) < 0.1
    target = k.to(torch.int64) + 1
    # (x - y) >> 63 is -1 (all bits set) where x < y, else 0.
    upper = (count_lo - target) >> 63  # the k-th empty cell lies in the upper half
    prefix = prefix_lo ^ ((prefix_lo ^ prefix_hi) & upper)
    target = target - (count_lo & upper)
    # Binary search for the first nibble of that half whose count reaches the target.
    pos = 8 & upper
    local = torch.zeros_like(b)
    for step in (4, 2, 1):
        probe = local + (step - 1)
        below = (((prefix >> (probe * 4)) & 0xF) - target) >> 63
        local = local + (below & step)
    pos = pos + local
    return pos, 1 + four.to(torch.int64)


def _spawn(b: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``b`` with one new tile (see :func:`_spawn_cell`)."""
    pos, tile = _spawn_cell(b, u)
    return b | (tile << (pos * 4))


Tables = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _legal(b: torch.Tensor, t: torch.Tensor, tables: Tables) -> tuple[torch.Tensor, torch.Tensor]:
    """Legal moves ``[n, 4]`` of boards ``b`` (transposes ``t``) and game over ``[n]``."""
    _, canmove, any_row = tables
    rows = _rows(torch.stack([b, t], dim=1))  # [n, 8]: 4 rows, then 4 columns
    bits = canmove.index_select(0, rows.view(-1)).view(-1, 2, 4)
    word = bits.view(torch.int32)  # [n, 2, 1]: the four row bytes of rows / of columns
    legal = ((word & any_row) != 0).view(-1, 4)
    stuck = (word[:, 0, 0] | word[:, 1, 0]) == 0
    return legal, stuck


def legal_moves(b: torch.Tensor) -> torch.Tensor:
    """``[n, 4]`` bool: which of left, right, up, down change each board."""
    return _legal(b, transpose(b), _tables(b.device))[0]


def _ones(condition: torch.Tensor) -> torch.Tensor:
    """Bool -> int64 with all 64 bits set where true (a mask for :func:`_select`)."""
    return -condition.to(torch.int64)


def _select(ones: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x`` where ``ones`` (from :func:`_ones`) has its bits set, else ``y``."""
    return y ^ ((x ^ y) & ones)


def _slide(
    src: torch.Tensor, right: torch.Tensor, tables: Tables
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slide every row of ``src`` left (``right`` = 0) or right (1): (new boards, rewards)."""
    table = tables[0]
    index = _rows(src).view(-1, 4) + (right << 16).to(torch.int32).unsqueeze(1)
    packed = table.index_select(0, index.view(-1)).view(-1, 4)
    # The low 16 bits of the four packed rows, laid side by side, are the new board.
    moved = packed.to(torch.int16).view(torch.int64).view(-1)
    quarters = (packed[:, 0] >> 16) + (packed[:, 1] >> 16) + (packed[:, 2] >> 16)
    reward = (quarters + (packed[:, 3] >> 16)).to(torch.float32) * 4.0
    return moved, reward


def _move(
    b: torch.Tensor, t: torch.Tensor, action: torch.Tensor, tables: Tables
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move boards ``b`` (transposes ``t``): (new boards, their transposes, rewards)."""
    action = action.to(torch.int64)
    vertical = _ones(action >= 2)
    moved, reward = _slide(_select(vertical, t, b), action & 1, tables)
    other = transpose(moved)
    return _select(vertical, other, moved), _select(vertical, moved, other), reward


def move(b: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one move per board (no spawn). Returns (new boards, merge rewards as float32)."""
    moved, _, reward = _move(b, transpose(b), action, _tables(b.device))
    return moved, reward


def afterstates(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All four moves of boards ``[...]`` at once (no spawn): the afterstates ``[..., 4]``
    (int64, in action order), their merge rewards (float32) and which moves are legal (bool:
    the move changes the board). One table lookup per row of the board and of its transpose."""
    shape = b.shape
    b = b.reshape(-1)
    t = transpose(b)
    src = torch.stack([b, b, t, t], dim=1).view(-1)
    right = torch.tensor([0, 1, 0, 1], dtype=torch.int64, device=b.device).repeat(b.shape[0])
    moved, reward = _slide(src, right, _tables(b.device))
    moved = moved.view(-1, 4)
    legal = moved != src.view(-1, 4)
    after = torch.cat([moved[:, :2], transpose(moved[:, 2:])], dim=1)
    return after.view(*shape, 4), reward.view(*shape, 4), legal.view(*shape, 4)


def board_from_exponents(exponents: torch.Tensor | np.ndarray | list) -> torch.Tensor:
    """``[..., 4, 4]`` exponents -> int64 boards ``[...]``."""
    e = torch.as_tensor(exponents, dtype=torch.int64)
    e = e.reshape(*e.shape[:-2], 16)
    shifts = torch.arange(0, 64, 4, dtype=torch.int64, device=e.device)
    return (e << shifts).sum(-1)


def board_from_tiles(tiles: torch.Tensor | np.ndarray | list) -> torch.Tensor:
    """``[..., 4, 4]`` tile values (0, 2, 4, ...) -> int64 boards."""
    t = torch.as_tensor(tiles, dtype=torch.int64)
    if bool(((t & (t - 1)) != 0).any()) or bool((t == 1).any()):
        raise ValueError("tile values must be 0 or powers of two >= 2")
    e = torch.where(t > 0, torch.log2(t.clamp(min=1).double()).round().long(), 0)
    if bool((e > MAX_EXPONENT).any()):
        raise ValueError(f"tiles above {2**MAX_EXPONENT} cannot be represented")
    return board_from_exponents(e)


def check_tiles(
    tiles: torch.Tensor | np.ndarray | list, shape: tuple[str, ...] = ("n", "4", "4")
) -> torch.Tensor:
    """Validated start boards: tile values (0 for empty, else 2, 4, ..., 32768) -> int64
    exponents of the same shape, on the CPU.

    ``shape`` names the expected dimensions (``("4", "4")`` for one board, ``("n", "4", "4")``
    for a batch). Anything that is not a 2048 position -- wrong shape, a value that is not an
    integer, negative, 1 or not a power of two, above 32768, or a board without a tile -- is a
    ValueError naming the first offending cell.
    """
    expected = "[" + ", ".join(shape) + "]"
    try:
        t = torch.as_tensor(np.asarray(tiles) if not isinstance(tiles, torch.Tensor) else tiles)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"tiles must be a {expected} array of integers, got {tiles!r}") from None
    t = t.detach().cpu()
    sizes = tuple(None if s == "n" else int(s) for s in shape)
    if t.dim() != len(sizes) or any(e is not None and e != s for e, s in zip(sizes, t.shape)):
        raise ValueError(f"tiles must have shape {expected}, got {list(t.shape)}")
    if t.dtype == torch.bool or t.dtype.is_complex:
        raise ValueError(f"tiles must be integers, got dtype {t.dtype}")
    if t.dtype.is_floating_point:
        whole = torch.isfinite(t) & (t == t.round())
        if not bool(whole.all()):
            cell = tuple((~whole).nonzero()[0].tolist())
            raise ValueError(f"tiles must be whole numbers; tiles{list(cell)} = {t[cell].item()}")
        if bool((t.abs() > 2.0**62).any()):
            raise ValueError(f"tiles above {2**MAX_EXPONENT} cannot be represented")
    t = t.to(torch.int64)
    bad = (t < 0) | (t == 1) | ((t & (t - 1)) != 0) | (t > 2**MAX_EXPONENT)
    if bool(bad.any()):
        cell = tuple(bad.nonzero()[0].tolist())
        value = int(t[cell])
        why = (
            f"above {2**MAX_EXPONENT}, the largest tile a board holds"
            if value > 2**MAX_EXPONENT
            else "not 0 (empty) or a power of two >= 2"
        )
        raise ValueError(f"tiles{list(cell)} = {value} is {why}")
    e = torch.where(t > 0, torch.log2(t.clamp(min=1).double()).round().long(), 0)
    empty = (e == 0).flatten(-2).all(-1)
    if bool(empty.any()):
        where = "" if e.dim() == 2 else f" (board {int(empty.nonzero()[0, 0])})"
        raise ValueError(f"a start board needs at least one tile{where}; got an empty board")
    return e


def exponents(b: torch.Tensor) -> torch.Tensor:
    """int64 boards ``[n]`` -> uint8 exponents ``[n, 4, 4]`` (reads the bytes; little-endian)."""
    by = b.contiguous().view(torch.uint8).view(-1, 8)
    out = torch.empty(by.shape[0], 8, 2, dtype=torch.uint8, device=b.device)
    torch.bitwise_and(by, 0xF, out=out[:, :, 0])
    torch.bitwise_right_shift(by, 4, out=out[:, :, 1])
    return out.view(-1, 4, 4)


def tiles(b: torch.Tensor) -> torch.Tensor:
    """int64 boards ``[n]`` -> int64 tile values ``[n, 4, 4]`` (0 for empty)."""
    e = exponents(b).to(torch.int64)
    return torch.where(e > 0, 1 << e, 0)


def _step_boards(
    b: torch.Tensor,
    t: torch.Tensor,
    action: torch.Tensor,
    u: torch.Tensor,
    move_table: torch.Tensor,
    canmove: torch.Tensor,
    any_row: torch.Tensor,
):
    """One move + spawn for boards ``b`` (transposes ``t``) with uniforms ``u``.

    Returns (boards, transposes, rewards, legal moves, game over). A pure tensor function, so
    ``torch.compile`` can fuse it into a few loops (``Game2048(compile=True)``).
    """
    tables = (move_table, canmove, any_row)
    moved, moved_t, reward = _move(b, t, action, tables)
    changed = moved != b
    pos, tile = _spawn_cell(moved, u)
    pos_t = ((pos & 3) << 2) | (pos >> 2)  # the same cell in the transposed board
    ones = _ones(changed)
    board = _select(ones, moved | (tile << (pos * 4)), b)
    trans = _select(ones, moved_t | (tile << (pos_t * 4)), t)
    legal, terminated = _legal(board, trans, tables)
    return board, trans, reward * changed, legal, terminated


@functools.cache
def _compiled_step_boards():
    return torch.compile(_step_boards, dynamic=False)


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class State2048:
    board: torch.Tensor  # int64 [n]: 16 nibble exponents
    score: torch.Tensor  # int64 [n]: sum of merge rewards so far
    legal: torch.Tensor  # bool [n, 4]: moves that change the board
    transposed: torch.Tensor  # int64 [n]: transpose(board), kept to save work in step


class Game2048:
    """The 2048 game as pure batched functions (see the module docstring)."""

    name = "game2048"
    num_actions = 4
    action_meanings = ACTIONS

    def __init__(self, obs: str = "exponent", invalid_move: str = "mask", compile: bool = False):
        if obs not in OBS_MODES:
            raise ValueError(f"obs must be one of {OBS_MODES}, got {obs!r}")
        if invalid_move not in INVALID_MOVE_MODES:
            raise ValueError(
                f"invalid_move must be one of {INVALID_MOVE_MODES}, got {invalid_move!r}"
            )
        self.obs = obs
        self.invalid_move = invalid_move
        if isinstance(compile, str):  # from the command line (--env-option compile=true)
            if compile.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"compile must be true or false, got {compile!r}")
            compile = compile.lower() in ("true", "1", "yes")
        self.compile = bool(compile)
        if obs == "exponent":
            self.observation_space = gym.spaces.Box(0, MAX_EXPONENT, (4, 4), np.uint8)
        elif obs == "onehot":
            self.observation_space = gym.spaces.Box(0.0, 1.0, (16, 4, 4), np.float32)
        elif obs == "log2":
            self.observation_space = gym.spaces.Box(0.0, float(MAX_EXPONENT), (4, 4), np.float32)
        else:
            self.observation_space = gym.spaces.Box(
                0.0, 2.0**MAX_EXPONENT / 2048, (4, 4), np.float32
            )

    def __repr__(self) -> str:
        return (
            f"Game2048(obs={self.obs!r}, invalid_move={self.invalid_move!r}, "
            f"compile={self.compile})"
        )

    # -- pure functions ---------------------------------------------------------------------

    def init(self, n: int, generator: torch.Generator) -> State2048:
        """Empty boards with two tiles on distinct uniformly chosen cells (2 w.p. 0.9, else 4).

        One float64 uniform per board: its first digits in base 240 pick the ordered pair of
        cells, the remaining fraction the two tile values.
        """
        device = generator.device
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        x = u * 240.0
        pair = x.floor()
        y = (x - pair) * 10.0
        d = y.floor()
        tile1 = 1 + (d == 0).to(torch.int64)
        tile2 = 1 + ((y - d) < 0.1).to(torch.int64)
        pair = pair.to(torch.int64)
        first = pair // 15
        second = pair % 15
        second = second + (second >= first).to(torch.int64)
        board = (tile1 << (first * 4)) | (tile2 << (second * 4))
        return self.from_boards(board)

    def from_boards(self, board: torch.Tensor, score: torch.Tensor | None = None) -> State2048:
        """A state from int64 boards (see :func:`board_from_tiles`)."""
        if score is None:
            score = torch.zeros_like(board)
        t = transpose(board)
        legal = _legal(board, t, _tables(board.device))[0]
        return State2048(board=board, score=score, legal=legal, transposed=t)

    def from_tiles(
        self,
        tiles: torch.Tensor | np.ndarray | list,
        device: str | torch.device = "cpu",
        score: torch.Tensor | None = None,
    ) -> State2048:
        """Games that start from given boards: tile values ``[n, 4, 4]`` (0 for empty), checked
        by :func:`check_tiles` (a board that is not a 2048 position is a ValueError). For
        search, tests and curricula; the states step like any other."""
        board = board_from_exponents(check_tiles(tiles)).to(device)
        if score is not None:
            score = torch.as_tensor(score, dtype=torch.int64, device=device).expand_as(board)
        return self.from_boards(board, score=None if score is None else score.clone())

    def step(
        self, state: State2048, action: torch.Tensor, generator: torch.Generator
    ) -> tuple[State2048, torch.Tensor, torch.Tensor]:
        b = state.board
        u = torch.rand(b.shape, generator=generator, device=b.device)
        step = _compiled_step_boards() if self.compile else _step_boards
        board, trans, reward, legal, terminated = step(
            b, state.transposed, action, u, *_tables(b.device)
        )
        score = state.score + reward.to(torch.int64)
        new = State2048(board=board, score=score, legal=legal, transposed=trans)
        return new, reward, terminated

    def observe(self, state: State2048) -> torch.Tensor:
        e = exponents(state.board)
        if self.obs == "exponent":
            return e
        if self.obs == "onehot":
            planes = torch.arange(16, dtype=torch.uint8, device=e.device).view(1, 16, 1, 1)
            return (e.unsqueeze(1) == planes).to(torch.float32)
        if self.obs == "log2":
            return e.to(torch.float32)
        t = torch.where(e > 0, 1 << e.to(torch.int64), 0)
        return t.to(torch.float32) / 2048.0

    def legal_actions(self, state: State2048) -> torch.Tensor:
        if self.invalid_move == "noop":
            return torch.ones_like(state.legal)
        return state.legal

    def episode_extras(self, state: State2048) -> dict[str, torch.Tensor]:
        e = exponents(state.board).view(-1, 16)
        e = torch.maximum(e[:, :8], e[:, 8:])
        e = torch.maximum(e[:, :4], e[:, 4:])
        e = torch.maximum(e[:, :2], e[:, 2:])
        e = torch.maximum(e[:, 0], e[:, 1]).to(torch.int64)
        return {"score": state.score, "max_tile": 1 << e}

    # -- rendering ----------------------------------------------------------------------------

    def render_ansi(self, state: State2048, index: int = 0, color: bool = True) -> str:
        """Board ``index`` as terminal text (ANSI colours unless ``color=False``)."""
        from renshu.envs.render import board_ansi

        return board_ansi(tiles(state.board[index : index + 1])[0], color=color)

    def render_rgb(self, state: State2048, index: int = 0, header: str | None = None):
        """Board ``index`` as an RGB frame (uint8 numpy ``[H, W, 3]``), e.g. for GIFs."""
        from renshu.envs.render import board_rgb

        return board_rgb(tiles(state.board[index : index + 1])[0], header=header)
