"""N-tuple networks for 2048 as pure batched functions: tuple sets, symmetric boards, table
indices, values, the TD update and expectimax search.

An n-tuple network values a board (an afterstate: the board after a move, before the new tile)
as a sum of table weights. Each tuple is a fixed list of cells; the exponents on those cells,
read as the digits of a base-16 number, index that tuple's table. The network is shared over
the board's 8 symmetries (rotations and reflections), so

    V(b) = sum over tuples j and symmetries g of LUT_j[index_j(g b)]

is the same for every symmetric image of ``b``. All tables live in one flat float32 tensor (the
tuple's offset added to its index), so a batch of boards needs one gather and an update one
scatter.

Boards are the engine's packed int64 (:mod:`renshu.envs.game2048`): cell ``4 r + c`` in the
nibble at bit ``4 (4 r + c)``. Symmetries are bit operations on whole boards; a tuple's index
takes one shift and mask per run of consecutive cells (the tuple ``0 1 2 3 4 5`` is the low 24
bits of the board).

Lookups are laid out tuple-major: lookup ``k = 8 j + s`` is tuple ``j`` on symmetry ``s``, and a
value is the sum of its lookups in that order, one after another. The numba kernels below add
in the same order and scatter in the same order as :func:`torch.Tensor.index_add_` on the CPU,
so the fast path and the torch path give bit-identical tables (tested).

Two paths, chosen once by the caller (:func:`make_backend`): plain torch (any device; CUDA) and,
on the CPU when numba is installed, compiled kernels that do a board's four moves, its
``4 x 8 x tuples`` lookups and its update in one pass instead of dozens of passes over memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from renshu.envs.game2048 import _numpy_tables, afterstates, transpose

# ---------------------------------------------------------------------------------------------
# Tuple sets.

TUPLE_SETS: dict[str, tuple[tuple[int, ...], ...]] = {
    # Wu, Yeh, Liang, Chang & Chiang 2014 (also TDL2048+'s 4x6patt): two straight-ish 6-cell
    # lines and two 2x3 rectangles.
    "4x6": ((0, 1, 2, 3, 4, 5), (4, 5, 6, 7, 8, 9), (0, 1, 2, 4, 5, 6), (4, 5, 6, 8, 9, 10)),
    # Szubert & Jaskowski 2014: the outer and the inner row, and two 2x3 rectangles.
    "2x4+2x6": ((0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 2, 4, 5, 6), (4, 5, 6, 8, 9, 10)),
    # Matsuzaki 2016's eight 6-tuples (TDL2048+'s 8x6patt).
    "8x6": (
        (0, 1, 2, 4, 5, 6),
        (4, 5, 6, 7, 8, 9),
        (0, 1, 2, 3, 4, 5),
        (2, 3, 4, 5, 6, 9),
        (0, 1, 2, 5, 9, 10),
        (3, 4, 5, 6, 7, 8),
        (1, 3, 4, 5, 6, 7),
        (0, 1, 4, 8, 9, 10),
    ),
}
NUM_SYMMETRIES = 8
MAX_TUPLE_CELLS = 8


def parse_tuples(spec: str | Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """A tuple set from its name (``4x6``, ``2x4+2x6``, ``8x6``), from cell lists, or from a
    string of cell lists (``"0,1,2,3;4,5,6,7"``: tuples separated by ``;``). Cells are 0-15,
    row-major; a tuple has 1-8 distinct cells. Raises ValueError naming what is wrong."""
    if isinstance(spec, str):
        text = spec.strip()
        if text in TUPLE_SETS:
            return TUPLE_SETS[text]
        if not any(ch.isdigit() for ch in text) or "x" in text:
            raise ValueError(
                f"unknown tuple set {spec!r}; valid names: {', '.join(TUPLE_SETS)}, or cell "
                "lists such as '0,1,2,3,4,5;4,5,6,7,8,9' (cells 0-15, row-major)"
            )
        try:
            spec = [[int(c) for c in part.replace(",", " ").split()] for part in text.split(";")]
        except ValueError:
            raise ValueError(
                f"tuples {spec!r}: cell lists are whole numbers separated by ',' or spaces, "
                f"tuples separated by ';'; or one of the names {', '.join(TUPLE_SETS)}"
            ) from None
    tuples = []
    for i, cells in enumerate(spec):
        cells = tuple(cells)
        if not 1 <= len(cells) <= MAX_TUPLE_CELLS:
            raise ValueError(
                f"tuple {i} {list(cells)}: a tuple has 1 to {MAX_TUPLE_CELLS} cells, "
                f"got {len(cells)}"
            )
        bad = [
            c for c in cells if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= 15
        ]
        if bad:
            raise ValueError(f"tuple {i} {list(cells)}: cells must be 0-15 (row-major), got {bad}")
        if len(set(cells)) != len(cells):
            repeated = sorted({c for c in cells if cells.count(c) > 1})
            raise ValueError(
                f"tuple {i} {list(cells)}: cells must not repeat, got {repeated} twice"
            )
        tuples.append(cells)
    if not tuples:
        raise ValueError("a tuple set needs at least one tuple")
    return tuple(tuples)


@dataclass(frozen=True)
class TupleLayout:
    """Where each tuple's table sits in the flat table, and how its index is read.

    ``segments[j]`` lists ``(shift_in, mask, shift_out)`` per run of consecutive cells of tuple
    ``j``: ``index_j(b) = OR of ((b >> shift_in) & mask) << shift_out``."""

    tuples: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    segments: tuple[tuple[tuple[int, int, int], ...], ...]
    stages: int = 1

    @property
    def num_tuples(self) -> int:
        return len(self.tuples)

    @property
    def num_lookups(self) -> int:
        """Lookups per board value: tuples x 8 symmetries."""
        return NUM_SYMMETRIES * len(self.tuples)

    @property
    def entries(self) -> int:
        """float32 weights in one table set."""
        return sum(self.sizes)

    @property
    def nbytes(self) -> int:
        """Bytes of all table sets."""
        return 4 * self.entries * self.stages

    def describe(self) -> str:
        cells = "+".join(str(len(t)) for t in self.tuples)
        stage = f" x {self.stages} stages" if self.stages > 1 else ""
        return (
            f"{self.num_tuples} tuples ({cells} cells) x 8 symmetries, {self.entries:,} "
            f"float32 weights{stage} = {format_bytes(self.nbytes)}"
        )


def layout(tuples: Sequence[Sequence[int]], stages: int = 1) -> TupleLayout:
    """The :class:`TupleLayout` of a validated tuple set (see :func:`parse_tuples`)."""
    tuples = parse_tuples(tuples)
    sizes = tuple(16 ** len(t) for t in tuples)
    offsets = tuple(int(x) for x in np.cumsum((0,) + sizes[:-1]))
    segments = []
    for cells in tuples:
        runs: list[list[int]] = []  # [first cell, first digit, length]
        for k, c in enumerate(cells):
            if runs and c == runs[-1][0] + runs[-1][2]:
                runs[-1][2] += 1
            else:
                runs.append([c, k, 1])
        segments.append(tuple((4 * c, (1 << (4 * n)) - 1, 4 * k) for c, k, n in runs))
    return TupleLayout(tuple(tuples), offsets, sizes, tuple(segments), stages)


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} B"


def free_memory(device: torch.device) -> int:
    """Bytes that can be allocated now on ``device`` (CPU: the kernel's MemAvailable)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: let the allocation decide


def allocate_tables(
    lay: TupleLayout, device: torch.device, init: float = 0.0, counts: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The flat float32 table of every stage (``[stages * entries]``, each weight ``init``) and,
    with ``counts``, the int32 zeros of the same size that averaged updates use (see
    :func:`td_update`). Refuses before allocating when they do not fit in the free memory."""
    need = lay.nbytes * (2 if counts else 1)
    free = free_memory(device)
    if need > free:
        what = lay.describe() + (", and as many int32 update counts" if counts else "")
        raise ValueError(
            f"the n-tuple tables need {format_bytes(need)} ({what}) but only "
            f"{format_bytes(free)} is free on {device}; use fewer or shorter tuples "
            f"(e.g. tuples='4x6': 256 MiB of weights) or fewer stages"
        )
    n = lay.stages * lay.entries
    if device.type == "cpu" and (lut := huge_page_zeros(n, torch.float32)) is not None:
        if init != 0:
            lut.fill_(float(init))
        count = huge_page_zeros(n, torch.int32) if counts else None
        return lut, count
    lut = torch.full((n,), float(init), dtype=torch.float32, device=device)
    return lut, torch.zeros(n, dtype=torch.int32, device=device) if counts else None


HUGE_PAGE = 2 << 20
HUGE_PAGES_FROM = 16 << 20
"""tables of at least this many bytes are put on huge pages where the system allows"""


def huge_page_zeros(n: int, dtype: torch.dtype) -> torch.Tensor | None:
    """``n`` zeros on the CPU in anonymous memory advised for transparent huge pages (Linux
    ``madvise(MADV_HUGEPAGE)``, 2 MiB pages aligned to 2 MiB), or None where that is not
    available or the tensor is small.

    A lookup into a 256 MiB table at random lands on one of 65,536 pages of 4 KiB, far more
    than the TLB holds, so most lookups pay a page walk besides the cache miss; with 2 MiB
    pages the table spans 128 pages. Measured on this machine (docs/ntuple.md): 12-15% more
    boards per CPU-second in the play and update kernels. The tensor keeps the mapping alive;
    the kernel falls back to small pages when it has no huge ones free, so results never
    change, only speed.
    """
    import ctypes
    import mmap

    nbytes = n * torch.empty((), dtype=dtype).element_size()
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is None or nbytes < HUGE_PAGES_FROM:
        return None
    try:
        # private, anonymous (a shared mapping would be shmem, which madvise does not cover)
        buf = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        buf.madvise(advice)
    except (OSError, ValueError, AttributeError):
        return None
    offset = (-ctypes.addressof(ctypes.c_char.from_buffer(buf))) % HUGE_PAGE
    return torch.frombuffer(buf, dtype=dtype, count=n, offset=offset)


# ---------------------------------------------------------------------------------------------
# Symmetries and indices (torch, any device). Boards are int64 tensors of any shape.

_ROW_MASKS = (0x000F000F000F000F, 0x00F000F000F000F0)


def flip_lr(b: torch.Tensor) -> torch.Tensor:
    """Mirror every row (cell ``(r, c)`` <-> ``(r, 3 - c)``)."""
    m0, m1 = _ROW_MASKS
    # Masks after right shifts: int64 shifts are arithmetic.
    return ((b & m0) << 12) | ((b & m1) << 4) | ((b >> 4) & m1) | ((b >> 12) & m0)


def flip_ud(b: torch.Tensor) -> torch.Tensor:
    """Reverse the rows (cell ``(r, c)`` <-> ``(3 - r, c)``)."""
    return (
        (b << 48)
        | ((b << 16) & 0x0000FFFF00000000)
        | ((b >> 16) & 0x00000000FFFF0000)
        | ((b >> 48) & 0xFFFF)
    )


def symmetries(b: torch.Tensor) -> torch.Tensor:
    """The 8 symmetric images ``[8, *b.shape]``: identity, mirror, flip, rotation by 180, then
    the same four of the transpose."""
    t = transpose(b)
    ub, ut = flip_ud(b), flip_ud(t)
    return torch.stack([b, flip_lr(b), ub, flip_lr(ub), t, flip_lr(t), ut, flip_lr(ut)])


def tuple_indices(b: torch.Tensor, lay: TupleLayout, stage: torch.Tensor | None = None):
    """Flat table indices ``[tuples * 8, *b.shape]`` of boards ``b`` (lookup ``8 j + s``:
    tuple ``j`` on symmetry ``s``); ``stage`` (int64 like ``b``) picks each board's table set."""
    sym = symmetries(b)
    parts = []
    for offset, segs in zip(lay.offsets, lay.segments):
        idx = None
        for shift_in, mask, shift_out in segs:
            part = (sym >> shift_in) & mask
            if shift_out:
                part = part << shift_out
            idx = part if idx is None else idx | part
        parts.append(idx + offset if offset else idx)
    idx = torch.cat(parts)  # [T * 8, ...]
    if stage is not None and lay.stages > 1:
        idx = idx + stage * lay.entries
    return idx


def lookup_sum(lut: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``sum_k lut[idx[k]]`` over the first dimension, added in order of ``k``."""
    g = lut.index_select(0, idx.reshape(-1)).view(idx.shape)
    v = g[0].clone()
    for k in range(1, g.shape[0]):
        v += g[k]
    return v


def values(
    lut: torch.Tensor, b: torch.Tensor, lay: TupleLayout, stage: torch.Tensor | None = None
) -> torch.Tensor:
    """``V(b)`` (float32, shape of ``b``): the sum of the tables over tuples and symmetries."""
    return lookup_sum(lut, tuple_indices(b, lay, stage))


def td_update(
    lut: torch.Tensor,
    b: torch.Tensor,
    target: torch.Tensor,
    rate: float,
    lay: TupleLayout,
    stage: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
    cap: float = 1.0,
) -> torch.Tensor:
    """Move ``V(b)`` toward ``target`` for a batch of boards ``[U]``: every lookup of board ``i``
    gets ``rate * (target_i - V(b_i)) / lookups`` (``rate`` is the step on V itself).

    All errors use the tables as they were before the call, and the updates are added with an
    accumulating scatter (on the CPU in lookup-major order: tuple, symmetry, then board).
    Without ``counts``, updates of the same weight from different boards (or from two
    symmetries of one board) **add up**, as the gradient of the summed squared errors does.
    With ``counts`` (int32 zeros shaped like ``lut``; left zero again), the ``c`` updates a
    weight gets in this call are scaled by ``min(1, cap / c)``: up to ``cap`` of them add up,
    more are **averaged** to ``cap`` times their mean (``cap`` 1: the mean), so a weight shared
    by many boards moves at most ``cap`` times as far as one board would move it. ``weight``
    (float ``[U]``, e.g. 0 or 1) scales each board's update. Returns the TD errors
    ``target - V(b)``."""
    idx = tuple_indices(b, lay, stage)
    delta = target - lookup_sum(lut, idx)
    step = delta * float(np.float32(rate / lay.num_lookups))
    if weight is not None:
        step = step * weight
    flat = idx.reshape(-1)
    step = step.expand(idx.shape).reshape(-1)
    if counts is not None:  # a board weighted 0 adds nothing and counts for nothing
        ones = torch.ones_like(flat, dtype=torch.int32)
        if weight is not None:
            ones = (weight != 0).to(torch.int32).expand(idx.shape).reshape(-1)
        counts.index_add_(0, flat, ones)
        c = counts.index_select(0, flat).clamp(min=1).to(torch.float32)
        top = torch.full((), cap, dtype=torch.float32, device=c.device)
        step = step * torch.div(top, c).clamp(max=1.0)  # (a true division, like the kernel's)
        counts.index_fill_(0, flat, 0)
    lut.index_add_(0, flat, step)
    return delta


def action_values(
    lut: torch.Tensor, b: torch.Tensor, lay: TupleLayout, stage_tile: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For boards ``[M]``: each move's ``r + V(afterstate)`` (``-inf`` where illegal), the
    afterstates, their rewards and ``V`` (0 where illegal), all ``[M, 4]``."""
    after, reward, legal = afterstates(b)
    stage = None if stage_tile is None else board_stage(after, stage_tile)
    v = values(lut, after, lay, stage).masked_fill_(~legal, 0.0)
    q = (reward + v).masked_fill_(~legal, -math.inf)
    return q, after, reward, v


def best_moves(q, after, reward, v) -> tuple[torch.Tensor, ...]:
    """The greedy move of each board from :func:`action_values`' output: (action, afterstate,
    reward, V), each ``[M]``; the first best move on ties, move 0 where none is legal."""
    action = q.argmax(1, keepdim=True)
    pick = [x.gather(1, action).view(-1) for x in (after, reward, v)]
    return (action.view(-1), *pick)


def board_stage(b: torch.Tensor, tile_exponent: int) -> torch.Tensor:
    """0 for boards without a tile of exponent ``>= tile_exponent``, else 1 (int64)."""
    hit = torch.zeros_like(b, dtype=torch.bool)
    for cell in range(16):
        hit |= ((b >> (4 * cell)) & 0xF) >= tile_exponent
    return hit.to(torch.int64)


# ---------------------------------------------------------------------------------------------
# Expectimax (torch; the leaf evaluation may be the numba kernel). Depth 1 is the greedy
# afterstate choice; each further level is an expectation over every empty cell of every
# afterstate x {2: 0.9, 4: 0.1}, then the best move. Whole levels of the tree are tensors; the
# only Python recursion is over depth.

TILE_PROBS = ((1, 0.9), (2, 0.1))

QFunction = Callable[[torch.Tensor], torch.Tensor]
"""boards ``[M]`` -> ``r + V(afterstate)`` per move ``[M, 4]`` (``-inf`` where illegal)."""


def children(after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every board a new tile can make from afterstates ``[K]``: ``(parent [C], board [C],
    weight [C])``, weight = P(tile) / empty cells (float32)."""
    cells = torch.arange(16, device=after.device)
    nib = (after.unsqueeze(1) >> (4 * cells)) & 0xF  # [K, 16]
    empty = nib == 0
    count = empty.sum(1)
    parent, cell = empty.nonzero(as_tuple=True)
    base = after[parent]
    shift = 4 * cell
    boards, weights, parents = [], [], []
    for tile, p in TILE_PROBS:
        boards.append(base | (tile << shift))
        weights.append(p / count[parent].to(torch.float32))
        parents.append(parent)
    return torch.cat(parents), torch.cat(boards), torch.cat(weights)


def _chance(after, prob, depth, q_fn, value_fn, cutoff):
    """Expected value of afterstates ``[K]`` reached with probability ``prob``, searched
    ``depth`` plies deep (1: the network's value)."""
    if depth <= 1:
        return value_fn(after)
    out = torch.zeros(after.shape, dtype=torch.float32, device=after.device)
    deep = torch.ones_like(after, dtype=torch.bool) if cutoff <= 0 else prob >= cutoff
    if cutoff > 0 and not bool(deep.all()):
        shallow = (~deep).nonzero().squeeze(1)
        out[shallow] = value_fn(after[shallow])
        keep = deep.nonzero().squeeze(1)
        out[keep] = _chance(after[keep], prob[keep], depth, q_fn, value_fn, cutoff)
        return out
    parent, boards, weight = children(after)
    best = _max_node(boards, prob[parent] * weight, depth - 1, q_fn, value_fn, cutoff)
    return out.index_add_(0, parent, best * weight)


def _max_node(boards, prob, depth, q_fn, value_fn, cutoff):
    """max over moves of ``r + E[...]`` for boards ``[C]``; 0 where no move is legal."""
    q = _root_q(boards, prob, depth, q_fn, value_fn, cutoff)
    best = q.max(1).values
    return torch.where(torch.isinf(best), torch.zeros_like(best), best)


def _root_q(boards, prob, depth, q_fn, value_fn, cutoff):
    if depth <= 1:
        return q_fn(boards)
    after, reward, legal = afterstates(boards)
    m = boards.shape[0]
    flat = legal.view(-1).nonzero().squeeze(1)
    q = torch.full((m * 4,), -math.inf, dtype=torch.float32, device=boards.device)
    a = after.view(-1)[flat]
    p = prob.repeat_interleave(4)[flat]
    q[flat] = reward.view(-1)[flat] + _chance(a, p, depth, q_fn, value_fn, cutoff)
    return q.view(m, 4)


def expectimax_q(
    boards: torch.Tensor,
    depth: int,
    q_fn: QFunction,
    value_fn: Callable[[torch.Tensor], torch.Tensor],
    cutoff: float = 0.0,
    max_nodes: int = 1 << 21,
) -> torch.Tensor:
    """Each move's expectimax value ``[M, 4]`` (``-inf`` where illegal) of boards ``[M]``.

    ``depth`` 1: ``r + V(afterstate)``; depth 2: ``r + E_tile[max_b r_b + V(after_b)]`` over
    every empty cell x {2 (0.9), 4 (0.1)}; deeper likewise. ``cutoff`` > 0 evaluates a chance
    node reached with probability below it by ``V`` instead of expanding it. Boards are searched
    in chunks of at most ``max_nodes`` leaf boards (memory)."""
    if depth < 1:
        raise ValueError(f"search depth must be >= 1, got {depth}")
    m = boards.shape[0]
    if m == 0:
        return torch.empty((0, 4), dtype=torch.float32, device=boards.device)
    per_board = 4 * (4 * 32) ** (depth - 1)
    chunk = max(1, max_nodes // per_board)
    out = []
    for start in range(0, m, chunk):
        b = boards[start : start + chunk]
        prob = torch.ones(b.shape, dtype=torch.float32, device=b.device)
        out.append(_root_q(b, prob, depth, q_fn, value_fn, cutoff))
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------
# Backends: the torch path (any device) and the numba path (CPU), one interface.


@dataclass
class Backend:
    """The three operations learning and play need, bound to one table layout.

    ``q(lut, boards)`` -> (q, after, reward, v) as :func:`action_values`;
    ``best(lut, boards)`` -> the greedy move's (action, afterstate, reward, V) as
    :func:`best_moves`; ``value(lut, boards)`` -> V; ``update(lut, boards, targets, rate,
    counts=None, cap=1.0)`` -> TD errors, as :func:`td_update`."""

    name: str
    q: Callable
    best: Callable
    value: Callable
    update: Callable
    expectimax2: Callable | None = None
    """a fused depth-2 expectimax ``(lut, boards) -> q [M, 4]`` when the backend has one"""
    expectimax3: Callable | None = None
    """a fused depth-3 expectimax ``(lut, boards, cutoff) -> q [M, 4]`` when it has one"""


def torch_backend(lay: TupleLayout, stage_tile: int | None = None) -> Backend:
    def stage_of(b):
        return None if stage_tile is None else board_stage(b, stage_tile)

    return Backend(
        "torch",
        q=lambda lut, b: action_values(lut, b, lay, stage_tile),
        best=lambda lut, b: best_moves(*action_values(lut, b, lay, stage_tile)),
        value=lambda lut, b: values(lut, b, lay, stage_of(b)),
        update=lambda lut, b, target, rate, counts=None, cap=1.0: td_update(
            lut, b, target, rate, lay, stage_of(b), counts=counts, cap=cap
        ),
    )


def numba_available() -> bool:
    """Whether the compiled CPU kernels can be used (the ``numba`` package is installed)."""
    return _nb is not None


def make_backend(
    lay: TupleLayout, device: torch.device, kind: str = "auto", stage_tile: int | None = None
) -> Backend:
    """``"torch"``, ``"numba"`` (CPU only; needs the ``numba`` package) or ``"auto"`` (numba on
    the CPU when installed, else torch)."""
    if kind not in ("auto", "torch", "numba"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'numba', got {kind!r}")
    if kind == "auto":
        kind = "numba" if device.type == "cpu" and numba_available() else "torch"
    if kind == "torch":
        return torch_backend(lay, stage_tile)
    if device.type != "cpu":
        raise ValueError(f"backend 'numba' runs on the CPU only, not on {device}; use 'torch'")
    if not numba_available():
        raise ValueError(
            "backend 'numba' needs the numba package: pip install 'renshu[fast]' (or numba)"
        )
    return numba_backend(lay, stage_tile)


def pack_layout(lay: TupleLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layout as arrays for compiled kernels: per-tuple segment ranges ``[T + 1]``, segments
    ``[S, 3]`` (shift in, mask, shift out) and offsets ``[T]`` (int64)."""
    starts = np.zeros(lay.num_tuples + 1, dtype=np.int64)
    segs = []
    for j, s in enumerate(lay.segments):
        segs.extend(s)
        starts[j + 1] = len(segs)
    seg = np.array(segs, dtype=np.uint64).reshape(-1, 3)
    return starts, seg, np.array(lay.offsets, dtype=np.int64)


def move_tables() -> np.ndarray:
    """The engine's row table (int32 ``[2 * 65536]``; see ``game2048._numpy_tables``)."""
    return _numpy_tables()[0]


# ---------------------------------------------------------------------------------------------
# The numba path: one compiled pass per board (CPU). Boards are read as uint64 (views of the
# int64 tensors), so every shift is logical. Lookups are added, and scattered, in the same order
# as the torch path above, which makes the two bit-identical.

try:
    import numba as _nb
except ImportError:  # the torch path still works
    _nb = None

BLOCK = 16
"""boards valued together by the compiled kernels (their lookups issued as one batch)"""

if _nb is not None:
    _U = np.uint64
    _T1, _T2, _T3 = _U(0xF0F00F0FF0F00F0F), _U(0x0000F0F00000F0F0), _U(0x0F0F00000F0F0000)
    _T4, _T5, _T6 = _U(0xFF00FF0000FF00FF), _U(0x00FF00FF00000000), _U(0x00000000FF00FF00)
    _M0, _M1 = _U(_ROW_MASKS[0]), _U(_ROW_MASKS[1])
    _UD1, _UD2, _W = _U(0x0000FFFF00000000), _U(0x00000000FFFF0000), _U(0xFFFF)
    _S4, _S12, _S16, _S24, _S48 = _U(4), _U(12), _U(16), _U(24), _U(48)
    _F = _U(0xF)

    @_nb.njit(inline="always", cache=True)
    def _nb_transpose(x):
        a = (x & _T1) | ((x & _T2) << _S12) | ((x & _T3) >> _S12)
        return (a & _T4) | ((a & _T5) >> _S24) | ((a & _T6) << _S24)

    @_nb.njit(inline="always", cache=True)
    def _nb_flip_lr(x):
        return ((x & _M0) << _S12) | ((x & _M1) << _S4) | ((x >> _S4) & _M1) | ((x >> _S12) & _M0)

    @_nb.njit(inline="always", cache=True)
    def _nb_flip_ud(x):
        return (x << _S48) | ((x << _S16) & _UD1) | ((x >> _S16) & _UD2) | (x >> _S48)

    @_nb.njit(inline="always", cache=True)
    def _nb_index(x, j, starts, seg):
        idx = _U(0)
        for k in range(starts[j], starts[j + 1]):
            idx |= ((x >> seg[k, 0]) & seg[k, 1]) << seg[k, 2]
        return np.int64(idx)

    @_nb.njit(inline="always", cache=True)
    def _nb_stage_offset(x, stage_exp, entries):
        if stage_exp <= 0:
            return 0
        for c in range(16):
            if np.int64((x >> _U(4 * c)) & _F) >= stage_exp:
                return entries
        return 0

    @_nb.njit(inline="always", cache=True)
    def _nb_slide(x, base, move):
        out = _U(0)
        quarters = 0
        for r in range(4):
            p = move[base + np.int64((x >> _U(16 * r)) & _W)]
            out |= _U(p & 0xFFFF) << _U(16 * r)
            quarters += p >> 16
        return out, np.float32(4 * quarters)

    # Boards are valued in blocks of BLOCK: first every afterstate's table indices, then one
    # plain loop of lookups (independent loads, so the CPU keeps many cache misses in flight
    # instead of the few that one board's additions allow), then the sums, added in the order
    # the torch path adds them (bit-identical values). About 2x the boards/s of one board at a time
    # on trained 4x6 tables (docs/ntuple.md).

    @_nb.njit(inline="always", cache=True)
    def _nb_put_indices(y, starts, seg, offsets, stage_exp, entries, idx, k):
        """The ``8 x tuples`` table indices of board ``y`` into ``idx[k:]``, in the torch
        path's order; returns the next free position."""
        so = _nb_stage_offset(y, stage_exp, entries)
        t = _nb_transpose(y)
        ub = _nb_flip_ud(y)
        ut = _nb_flip_ud(t)
        s1 = _nb_flip_lr(y)
        s3 = _nb_flip_lr(ub)
        s5 = _nb_flip_lr(t)
        s7 = _nb_flip_lr(ut)
        for j in range(offsets.shape[0]):
            o = offsets[j] + so
            idx[k] = o + _nb_index(y, j, starts, seg)
            idx[k + 1] = o + _nb_index(s1, j, starts, seg)
            idx[k + 2] = o + _nb_index(ub, j, starts, seg)
            idx[k + 3] = o + _nb_index(s3, j, starts, seg)
            idx[k + 4] = o + _nb_index(t, j, starts, seg)
            idx[k + 5] = o + _nb_index(s5, j, starts, seg)
            idx[k + 6] = o + _nb_index(ut, j, starts, seg)
            idx[k + 7] = o + _nb_index(s7, j, starts, seg)
            k += 8
        return k

    @_nb.njit(inline="always", cache=True)
    def _nb_gather(lut, idx, vals, count):
        for q in range(count):
            vals[q] = lut[idx[q]]

    @_nb.njit(inline="always", cache=True)
    def _nb_sum(vals, k, count):
        v = np.float32(0.0)
        for q in range(k, k + count):
            v += vals[q]
        return v

    @_nb.njit(inline="always", cache=True)
    def _nb_move(x, t, a, move):
        """Afterstate and reward of move ``a`` from board ``x`` (``t``: its transpose)."""
        if a < 2:
            return _nb_slide(x, 65536 * a, move)
        y, r = _nb_slide(t, 65536 * (a - 2), move)
        return _nb_transpose(y), r

    @_nb.njit(inline="always", cache=True)
    def _nb_block_q(
        boards, lo, m, lut, starts, seg, offsets, stage_exp, entries, move, ys, rs, vs, idx, vals
    ):
        """Afterstates ``ys[b, a]``, rewards ``rs`` and values ``vs`` of boards ``lo..lo+m``;
        ``vs`` is -inf for a move that changes nothing."""
        per = 8 * offsets.shape[0]
        k = 0
        for b in range(m):
            x = boards[lo + b]
            t = _nb_transpose(x)
            for a in range(4):
                y, r = _nb_move(x, t, a, move)
                ys[b, a] = y
                rs[b, a] = r
                if y != x:
                    k = _nb_put_indices(y, starts, seg, offsets, stage_exp, entries, idx, k)
        _nb_gather(lut, idx, vals, k)
        k = 0
        for b in range(m):
            x = boards[lo + b]
            for a in range(4):
                if ys[b, a] == x:
                    vs[b, a] = -np.inf
                else:
                    vs[b, a] = _nb_sum(vals, k, per)
                    k += per

    @_nb.njit(parallel=True, cache=True)
    def _nb_q(boards, lut, starts, seg, offsets, stage_exp, entries, move, q, after, rew, val):
        n = boards.shape[0]
        size = BLOCK * 4 * 8 * offsets.shape[0]
        for blk in _nb.prange((n + BLOCK - 1) // BLOCK):
            lo = blk * BLOCK
            m = min(n, lo + BLOCK) - lo
            ys = np.empty((BLOCK, 4), dtype=np.uint64)
            rs = np.empty((BLOCK, 4), dtype=np.float32)
            vs = np.empty((BLOCK, 4), dtype=np.float32)
            idx = np.empty(size, dtype=np.int64)
            vals = np.empty(size, dtype=np.float32)
            _nb_block_q(
                boards, lo, m, lut, starts, seg, offsets, stage_exp, entries, move, ys, rs, vs,
                idx, vals,
            )  # fmt: skip
            for b in range(m):
                i = lo + b
                for a in range(4):
                    after[i, a] = ys[b, a]
                    rew[i, a] = rs[b, a]
                    if vs[b, a] == -np.inf:
                        val[i, a] = np.float32(0.0)
                        q[i, a] = -np.inf
                    else:
                        val[i, a] = vs[b, a]
                        q[i, a] = rs[b, a] + vs[b, a]

    @_nb.njit(parallel=True, cache=True)
    def _nb_best(boards, lut, starts, seg, offsets, stage_exp, entries, move, act, after, rew, val):
        n = boards.shape[0]
        size = BLOCK * 4 * 8 * offsets.shape[0]
        for blk in _nb.prange((n + BLOCK - 1) // BLOCK):
            lo = blk * BLOCK
            m = min(n, lo + BLOCK) - lo
            ys = np.empty((BLOCK, 4), dtype=np.uint64)
            rs = np.empty((BLOCK, 4), dtype=np.float32)
            vs = np.empty((BLOCK, 4), dtype=np.float32)
            idx = np.empty(size, dtype=np.int64)
            vals = np.empty(size, dtype=np.float32)
            _nb_block_q(
                boards, lo, m, lut, starts, seg, offsets, stage_exp, entries, move, ys, rs, vs,
                idx, vals,
            )  # fmt: skip
            for b in range(m):
                i = lo + b
                best_q = -np.inf
                best_a, best_y, best_r, best_v = 0, boards[i], np.float32(0.0), np.float32(0.0)
                for a in range(4):
                    if vs[b, a] != -np.inf:
                        qa = rs[b, a] + vs[b, a]
                        if qa > best_q:
                            best_q, best_a, best_y, best_r, best_v = (
                                qa,
                                a,
                                ys[b, a],
                                rs[b, a],
                                vs[b, a],
                            )
                act[i] = best_a
                after[i] = best_y
                rew[i] = best_r
                val[i] = best_v

    @_nb.njit(inline="always", cache=True)
    def _nb_children(y, children, weights):
        """Every board a new tile makes from afterstate ``y`` (each empty cell x {2, 4}, the
        2s first) with its probability; returns how many."""
        empty = 0
        for c in range(16):
            if (y >> _U(4 * c)) & _F == _U(0):
                empty += 1
        m = 0
        for k in range(2):
            tile = _U(k + 1)
            w = np.float32(0.9 if k == 0 else 0.1) / np.float32(empty)
            for c in range(16):
                if (y >> _U(4 * c)) & _F == _U(0):
                    children[m] = y | (tile << _U(4 * c))
                    weights[m] = w
                    m += 1
        return m

    @_nb.njit(inline="always", cache=True)
    def _nb_expected_best(
        y, lut, starts, seg, offsets, stage_exp, entries, move, kids, weights, ys, rs, vs, idx,
        vals,
    ):  # fmt: skip
        """E over the new tile of the best ``r + V`` after it, from afterstate ``y`` (a best
        of 0 where no move is left); its children valued as one block."""
        m = _nb_children(y, kids, weights)
        _nb_block_q(kids, 0, m, lut, starts, seg, offsets, stage_exp, entries, move, ys, rs, vs,
                    idx, vals)  # fmt: skip
        total = np.float32(0.0)
        for b in range(m):
            best = -np.inf
            for c in range(4):
                if vs[b, c] != -np.inf:
                    qc = rs[b, c] + vs[b, c]
                    if qc > best:
                        best = qc
            best = np.float32(0.0) if best == -np.inf else np.float32(best)
            total += best * weights[b]
        return total

    @_nb.njit(parallel=True, cache=True)
    def _nb_expectimax2(boards, lut, starts, seg, offsets, stage_exp, entries, move, q):
        n = boards.shape[0]
        size = 32 * 4 * 8 * offsets.shape[0]  # at most 2 tiles x 16 cells children
        for i in _nb.prange(n):
            kids = np.empty(32, dtype=np.uint64)
            weights = np.empty(32, dtype=np.float32)
            ys = np.empty((32, 4), dtype=np.uint64)
            rs = np.empty((32, 4), dtype=np.float32)
            vs = np.empty((32, 4), dtype=np.float32)
            idx = np.empty(size, dtype=np.int64)
            vals = np.empty(size, dtype=np.float32)
            x = boards[i]
            t = _nb_transpose(x)
            for a in range(4):
                y, r = _nb_move(x, t, a, move)
                if y == x:
                    q[i, a] = -np.inf
                else:
                    q[i, a] = r + _nb_expected_best(
                        y, lut, starts, seg, offsets, stage_exp, entries, move, kids, weights,
                        ys, rs, vs, idx, vals,
                    )  # fmt: skip

    @_nb.njit(parallel=True, cache=True)
    def _nb_expectimax3(boards, lut, starts, seg, offsets, stage_exp, entries, move, cutoff, q):
        # Depth 3: a move's children are one block; each child's moves then go a level deeper
        # (_nb_expected_best), unless the child's probability is below the cut-off, where the
        # network's value of its afterstates stands in (as expectimax_q does).
        n = boards.shape[0]
        size = 32 * 4 * 8 * offsets.shape[0]
        for i in _nb.prange(n):
            kids = np.empty(32, dtype=np.uint64)
            weights = np.empty(32, dtype=np.float32)
            ys = np.empty((32, 4), dtype=np.uint64)
            rs = np.empty((32, 4), dtype=np.float32)
            vs = np.empty((32, 4), dtype=np.float32)
            idx = np.empty(size, dtype=np.int64)
            vals = np.empty(size, dtype=np.float32)
            kids2 = np.empty(32, dtype=np.uint64)
            weights2 = np.empty(32, dtype=np.float32)
            ys2 = np.empty((32, 4), dtype=np.uint64)
            rs2 = np.empty((32, 4), dtype=np.float32)
            vs2 = np.empty((32, 4), dtype=np.float32)
            x = boards[i]
            t = _nb_transpose(x)
            for a in range(4):
                y, r = _nb_move(x, t, a, move)
                if y == x:
                    q[i, a] = -np.inf
                    continue
                m = _nb_children(y, kids, weights)
                _nb_block_q(kids, 0, m, lut, starts, seg, offsets, stage_exp, entries, move, ys,
                            rs, vs, idx, vals)  # fmt: skip
                total = np.float32(0.0)
                for c in range(m):
                    w = weights[c]
                    best = -np.inf
                    for b in range(4):
                        if vs[c, b] == -np.inf:
                            continue
                        if w < cutoff:
                            val = rs[c, b] + vs[c, b]
                        else:
                            val = rs[c, b] + _nb_expected_best(
                                ys[c, b], lut, starts, seg, offsets, stage_exp, entries, move,
                                kids2, weights2, ys2, rs2, vs2, idx, vals,
                            )  # fmt: skip
                        if val > best:
                            best = val
                    best = np.float32(0.0) if best == -np.inf else np.float32(best)
                    total += best * w
                q[i, a] = r + total

    @_nb.njit(parallel=True, cache=True)
    def _nb_values(boards, lut, starts, seg, offsets, stage_exp, entries, out):
        n = boards.shape[0]
        per = 8 * offsets.shape[0]
        for blk in _nb.prange((n + 4 * BLOCK - 1) // (4 * BLOCK)):
            lo = blk * 4 * BLOCK
            m = min(n, lo + 4 * BLOCK) - lo
            idx = np.empty(4 * BLOCK * per, dtype=np.int64)
            vals = np.empty(4 * BLOCK * per, dtype=np.float32)
            k = 0
            for b in range(m):
                k = _nb_put_indices(
                    boards[lo + b], starts, seg, offsets, stage_exp, entries, idx, k
                )
            _nb_gather(lut, idx, vals, k)
            for b in range(m):
                out[lo + b] = _nb_sum(vals, b * per, per)

    @_nb.njit(parallel=True, cache=True)
    def _nb_td(
        boards, target, rate, lut, counts, cap, starts, seg, offsets, stage_exp, entries, idx, delta
    ):
        n = boards.shape[0]
        lookups = idx.shape[0]
        rows = 4 * BLOCK
        for blk in _nb.prange((n + rows - 1) // rows):  # the errors: indices, then lookups
            lo = blk * rows
            hi = min(n, lo + rows)
            own = np.empty(rows * lookups, dtype=np.int64)
            vals = np.empty(rows * lookups, dtype=np.float32)
            k = 0
            for i in range(lo, hi):
                k = _nb_put_indices(boards[i], starts, seg, offsets, stage_exp, entries, own, k)
            _nb_gather(lut, own, vals, k)
            for i in range(lo, hi):
                b = (i - lo) * lookups
                delta[i] = target[i] - _nb_sum(vals, b, lookups)
                for q in range(lookups):
                    idx[q, i] = own[b + q]
        # Each tuple's table on one thread, boards in order: the order index_add_ uses.
        average = counts.shape[0] > 0
        for j in _nb.prange(offsets.shape[0]):
            if average:
                for s in range(8):
                    for i in range(n):
                        counts[idx[8 * j + s, i]] += 1
            for s in range(8):
                k = 8 * j + s
                for i in range(n):
                    w = idx[k, i]
                    if average:
                        scale = min(np.float32(1.0), cap / np.float32(max(counts[w], 1)))
                        lut[w] += delta[i] * rate * scale
                    else:
                        lut[w] += delta[i] * rate
            if average:
                for s in range(8):
                    for i in range(n):
                        counts[idx[8 * j + s, i]] = 0


SERIAL_BELOW = 256
"""boards' moves below which the compiled kernels run on one thread"""


def _u64(x: torch.Tensor) -> np.ndarray:
    return x.contiguous().numpy().view(np.uint64)


def numba_backend(lay: TupleLayout, stage_tile: int | None = None) -> Backend:
    """The compiled CPU path (see the section above); same results as :func:`torch_backend`."""
    starts, seg, offsets = pack_layout(lay)
    move = move_tables()
    stage_exp = 0 if stage_tile is None else int(stage_tile)
    entries = lay.entries
    lookups = lay.num_lookups

    def threads(work: int):
        """As many threads as torch uses, but one for a small batch (``work`` in boards' moves):
        a parallel launch costs 10-50 us on a quiet machine and milliseconds on a busy one,
        more than a few hundred boards' moves (the results are the same on any count)."""
        keep = torch.get_num_threads()
        many = max(1, min(keep, _nb.config.NUMBA_NUM_THREADS))
        _nb.set_num_threads(1 if work < SERIAL_BELOW else many)
        if torch.get_num_threads() != keep:
            # numba's OpenMP pool and torch share libgomp: starting the pool (the first call)
            # set torch's count to the pool's size, so a one-thread run went on with two.
            torch.set_num_threads(keep)

    def q(lut, b):
        threads(b.shape[0])
        m = b.shape[0]
        out_q = torch.empty((m, 4), dtype=torch.float32)
        after = torch.empty((m, 4), dtype=torch.int64)
        rew = torch.empty((m, 4), dtype=torch.float32)
        val = torch.empty((m, 4), dtype=torch.float32)
        _nb_q(
            _u64(b), lut.numpy(), starts, seg, offsets, stage_exp, entries, move,
            out_q.numpy(), after.numpy().view(np.uint64), rew.numpy(), val.numpy(),
        )  # fmt: skip
        return out_q, after, rew, val

    def best(lut, b):
        threads(b.shape[0])
        m = b.shape[0]
        act = torch.empty(m, dtype=torch.int64)
        after = torch.empty(m, dtype=torch.int64)
        rew = torch.empty(m, dtype=torch.float32)
        val = torch.empty(m, dtype=torch.float32)
        _nb_best(
            _u64(b), lut.numpy(), starts, seg, offsets, stage_exp, entries, move,
            act.numpy(), after.numpy().view(np.uint64), rew.numpy(), val.numpy(),
        )  # fmt: skip
        return act, after, rew, val

    def expectimax2(lut, b):
        threads(64 * b.shape[0])  # about 16 children x 4 moves per board
        out = torch.empty((b.shape[0], 4), dtype=torch.float32)
        _nb_expectimax2(
            _u64(b), lut.numpy(), starts, seg, offsets, stage_exp, entries, move, out.numpy()
        )
        return out

    def expectimax3(lut, b, cutoff=0.0):
        threads(4096 * b.shape[0])
        out = torch.empty((b.shape[0], 4), dtype=torch.float32)
        _nb_expectimax3(
            _u64(b), lut.numpy(), starts, seg, offsets, stage_exp, entries, move,
            np.float32(cutoff), out.numpy(),
        )  # fmt: skip
        return out

    def value(lut, b):
        threads(b.numel() // 4)
        flat = b.reshape(-1)
        out = torch.empty(flat.shape, dtype=torch.float32)
        _nb_values(_u64(flat), lut.numpy(), starts, seg, offsets, stage_exp, entries, out.numpy())
        return out.view(b.shape)

    none = np.zeros(0, dtype=np.int32)

    def update(lut, b, target, rate, counts=None, cap=1.0):
        threads(b.shape[0])
        n = b.shape[0]
        idx = np.empty((lookups, n), dtype=np.int64)
        delta = torch.empty(n, dtype=torch.float32)
        step = np.float32(rate / lookups)
        _nb_td(
            _u64(b), target.contiguous().numpy(), step, lut.numpy(),
            none if counts is None else counts.numpy(), np.float32(cap), starts, seg, offsets,
            stage_exp,
            entries, idx, delta.numpy(),
        )  # fmt: skip
        return delta

    return Backend(
        "numba", q=q, best=best, value=value, update=update, expectimax2=expectimax2,
        expectimax3=expectimax3,
    )  # fmt: skip


__all__ = [
    "TUPLE_SETS",
    "Backend",
    "TupleLayout",
    "action_values",
    "allocate_tables",
    "board_stage",
    "children",
    "expectimax_q",
    "flip_lr",
    "flip_ud",
    "layout",
    "lookup_sum",
    "make_backend",
    "parse_tuples",
    "symmetries",
    "td_update",
    "tuple_indices",
    "values",
]
