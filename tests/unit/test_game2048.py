"""Tests of the batched 2048 game (renshu.envs.game2048) against hand-made boards and a scalar
reference written independently from the rules (tests/reference_2048.py).

Statistical tests use fixed seeds, so they are deterministic; their thresholds are stated next to
them (binomial: 5 standard deviations; chi-square: the p = 1e-6 critical value) so that a correct
implementation passes for essentially any seed while a biased one fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference_2048 as ref
from renshu.envs import game2048 as g
from renshu.envs.game2048 import (
    Game2048,
    board_from_exponents,
    board_from_tiles,
    legal_moves,
    move,
    tiles,
    transpose,
)

LEFT, RIGHT, UP, DOWN = 0, 1, 2, 3

# Chi-square critical values at p = 1e-6 (scipy.stats.chi2.isf(1e-6, df)).
CHI2_CRIT_1E6 = {1: 23.928, 2: 27.631, 11: 48.866, 14: 54.635, 15: 56.493, 119: 207.199}


def board(rows: list[list[int]]) -> torch.Tensor:
    """A batch of one board from 4 rows of tile values."""
    return board_from_tiles([rows])


def as_lists(b: torch.Tensor) -> list[list[list[int]]]:
    return tiles(b).tolist()


def actions(a: int, n: int) -> torch.Tensor:
    return torch.full((n,), a, dtype=torch.int64)


def chi_square(counts: np.ndarray) -> float:
    """Pearson chi-square of ``counts`` against the uniform distribution over its cells."""
    counts = np.asarray(counts, dtype=np.float64)
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


# ---------------------------------------------------------------------------------------------
# The scalar reference itself, on the rule examples (so the oracle is checked against the spec).


@pytest.mark.parametrize(
    "row, expected, reward",
    [
        ([2, 2, 2, 2], [4, 4, 0, 0], 8),
        ([4, 4, 8, 8], [8, 16, 0, 0], 24),
        ([2, 0, 0, 2], [4, 0, 0, 0], 4),
        ([4, 4, 4, 4], [8, 8, 0, 0], 16),
        ([2, 2, 2, 0], [4, 2, 0, 0], 4),
        ([4, 2, 2, 0], [4, 4, 0, 0], 4),
        ([0, 0, 0, 2], [2, 0, 0, 0], 0),
        ([2, 4, 8, 16], [2, 4, 8, 16], 0),
        ([32768, 32768, 0, 0], [32768, 32768, 0, 0], 0),
        ([16384, 16384, 32768, 0], [32768, 32768, 0, 0], 32768),
    ],
)
def test_reference_row_examples(row, expected, reward):
    assert ref.slide_row_left(row) == (expected, reward)


# ---------------------------------------------------------------------------------------------
# Hand-made boards, all four directions.

# Each row of BOARD_A is one of the rule examples.
BOARD_A = [
    [2, 2, 2, 2],
    [4, 4, 8, 8],
    [2, 0, 0, 2],
    [4, 4, 4, 4],
]
BOARD_A_LEFT = [
    [4, 4, 0, 0],
    [8, 16, 0, 0],
    [4, 0, 0, 0],
    [8, 8, 0, 0],
]
BOARD_A_RIGHT = [
    [0, 0, 4, 4],
    [0, 0, 8, 16],
    [0, 0, 0, 4],
    [0, 0, 8, 8],
]
# The same examples as columns (top to bottom).
BOARD_T = [
    [2, 4, 2, 4],
    [2, 4, 0, 4],
    [2, 8, 0, 4],
    [2, 8, 2, 4],
]
BOARD_T_UP = [
    [4, 8, 4, 8],
    [4, 16, 0, 8],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
]
BOARD_T_DOWN = [
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [4, 8, 0, 8],
    [4, 16, 4, 8],
]
# Three equal tiles: the pair nearest the wall merges, so direction matters.
BOARD_B = [
    [2, 2, 2, 0],
    [0, 8, 8, 8],
    [4, 0, 4, 4],
    [0, 0, 0, 0],
]
BOARD_B_LEFT = [
    [4, 2, 0, 0],
    [16, 8, 0, 0],
    [8, 4, 0, 0],
    [0, 0, 0, 0],
]
BOARD_B_RIGHT = [
    [0, 0, 2, 4],
    [0, 0, 8, 16],
    [0, 0, 4, 8],
    [0, 0, 0, 0],
]
BOARD_B_UP = [
    [2, 2, 2, 8],
    [4, 8, 8, 4],
    [0, 0, 4, 0],
    [0, 0, 0, 0],
]
BOARD_B_DOWN = [
    [0, 0, 0, 0],
    [0, 0, 2, 0],
    [2, 2, 8, 8],
    [4, 8, 4, 4],
]

HAND_MADE = [
    # (name, board, action, expected board, reward)
    ("A-left", BOARD_A, LEFT, BOARD_A_LEFT, 8 + 24 + 4 + 16),
    ("A-right", BOARD_A, RIGHT, BOARD_A_RIGHT, 8 + 24 + 4 + 16),
    ("T-up", BOARD_T, UP, BOARD_T_UP, 8 + 24 + 4 + 16),
    ("T-down", BOARD_T, DOWN, BOARD_T_DOWN, 8 + 24 + 4 + 16),
    ("B-left", BOARD_B, LEFT, BOARD_B_LEFT, 4 + 16 + 8),
    ("B-right", BOARD_B, RIGHT, BOARD_B_RIGHT, 4 + 16 + 8),
    ("B-up", BOARD_B, UP, BOARD_B_UP, 0),
    ("B-down", BOARD_B, DOWN, BOARD_B_DOWN, 0),
    (
        "cap-left",
        [[32768, 32768, 0, 0], [16384, 16384, 32768, 0], [0] * 4, [0] * 4],
        LEFT,
        [[32768, 32768, 0, 0], [32768, 32768, 0, 0], [0] * 4, [0] * 4],
        32768,
    ),
    (
        "cap-up",
        [[32768, 0, 0, 0], [32768, 0, 0, 0], [0] * 4, [0] * 4],
        UP,
        [[32768, 0, 0, 0], [32768, 0, 0, 0], [0] * 4, [0] * 4],
        0,
    ),
]


@pytest.mark.parametrize(
    "start, action, expected, reward", [h[1:] for h in HAND_MADE], ids=[h[0] for h in HAND_MADE]
)
def test_move_hand_made(start, action, expected, reward):
    assert ref.move(start, action) == (expected, reward)  # the oracle agrees with the hand result
    moved, r = move(board(start), actions(action, 1))
    assert as_lists(moved) == [expected]
    assert r.dtype == torch.float32
    assert r.tolist() == [float(reward)]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16])
def test_move_accepts_narrow_integer_actions(dtype):
    start = board([[0, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]).repeat(4)
    moved, _ = move(start, torch.tensor([LEFT, RIGHT, UP, DOWN], dtype=dtype))
    want, _ = move(start, torch.tensor([LEFT, RIGHT, UP, DOWN]))
    assert moved.equal(want)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_move_accepts_wide_integer_actions(dtype):
    start = board([[0, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]).repeat(4)
    moved, _ = move(start, torch.tensor([LEFT, RIGHT, UP, DOWN], dtype=dtype))
    t = tiles(moved)
    for i, (r, c) in enumerate([(1, 0), (1, 3), (0, 1), (3, 1)]):
        assert t[i, r, c] == 2 and t[i].sum() == 2


def test_move_hand_made_batched_mixed_actions():
    """All hand-made cases in one batch, each board with its own action."""
    starts = board_from_tiles([h[1] for h in HAND_MADE])
    acts = torch.tensor([h[2] for h in HAND_MADE])
    moved, r = move(starts, acts)
    assert as_lists(moved) == [h[3] for h in HAND_MADE]
    assert r.tolist() == [float(h[4]) for h in HAND_MADE]


@pytest.mark.parametrize(
    "start, legal",
    [
        (BOARD_A, [True, True, True, True]),
        ([[2, 0, 0, 0]] + [[0] * 4] * 3, [False, True, False, True]),
        ([[0] * 4] * 3 + [[0, 0, 0, 2]], [True, False, True, False]),
        ([[2, 4, 8, 16]] + [[0] * 4] * 3, [False, False, False, True]),
        ([[32768, 32768, 0, 0]] + [[0] * 4] * 3, [False, True, False, True]),
        ([[32768, 32768, 32768, 32768]] + [[0] * 4] * 3, [False, False, False, True]),
        ([[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 4, 2]], [False] * 4),
        ([[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 8, 8]], [True, True, False, False]),
        ([[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 8], [4, 2, 4, 8]], [False, False, True, True]),
        ([[0] * 4] * 4, [False] * 4),
    ],
)
def test_legal_moves_hand_made(start, legal):
    assert ref.legal(start) == legal
    got = legal_moves(board(start))
    assert got.dtype == torch.bool
    assert got.tolist() == [legal]


def test_board_from_tiles_roundtrip_and_errors():
    t = [[0, 2, 4, 8], [16, 32, 64, 128], [256, 512, 1024, 2048], [4096, 8192, 16384, 32768]]
    b = board_from_tiles([t])
    assert b.dtype == torch.int64 and b.shape == (1,)
    assert as_lists(b) == [t]
    # Cell (r, c) is nibble 4 * r + c.
    assert board_from_tiles([[[2, 0, 0, 0]] + [[0] * 4] * 3]).tolist() == [1]
    assert board_from_tiles([[[0] * 4] * 3 + [[0, 0, 0, 4]]]).tolist() == [2 << 60]
    assert board_from_exponents([[[k + 4 * r for k in range(4)] for r in range(4)]]).equal(b)
    for bad in (3, 1, 6, 65536):
        with pytest.raises(ValueError):
            board_from_tiles([[[bad, 0, 0, 0]] + [[0] * 4] * 3])


# ---------------------------------------------------------------------------------------------
# Game2048.step on hand-made boards (the step also spawns one tile).


@pytest.mark.parametrize(
    "start, action, expected, reward", [h[1:] for h in HAND_MADE], ids=[h[0] for h in HAND_MADE]
)
def test_step_hand_made(start, action, expected, reward):
    game = Game2048()
    g = torch.Generator().manual_seed(7)
    n = 64  # many copies: the spawn lands in different cells
    state = game.from_boards(board(start).repeat(n), score=torch.full((n,), 100))
    new, r, terminated = game.step(state, actions(action, n), g)
    assert r.tolist() == [float(reward)] * n
    assert new.score.tolist() == [100 + reward] * n
    exp = np.array(expected)
    changed = expected != start
    for got in tiles(new.board).numpy():
        diff = got - exp
        if not changed:
            assert (got == np.array(start)).all()
            continue
        (rows, cols) = np.nonzero(diff)
        assert len(rows) == 1, "exactly one new tile"
        assert exp[rows[0], cols[0]] == 0 and got[rows[0], cols[0]] in (2, 4)
    assert new.legal.tolist() == [ref.legal(t) for t in as_lists(new.board)]
    assert terminated.tolist() == [ref.game_over(t) for t in as_lists(new.board)]


def test_illegal_move_is_a_noop_in_mask_mode():
    game = Game2048()
    start = [[2, 4, 8, 16]] + [[0] * 4] * 3  # only "down" changes it
    state = game.from_boards(board(start).repeat(3))
    g = torch.Generator().manual_seed(0)
    new, r, terminated = game.step(state, torch.tensor([LEFT, RIGHT, UP]), g)
    assert new.board.equal(state.board)
    assert r.tolist() == [0.0, 0.0, 0.0]
    assert terminated.tolist() == [False, False, False]
    assert new.score.tolist() == [0, 0, 0]


# ---------------------------------------------------------------------------------------------
# Game over.

FULL_NO_MERGE = [[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 4, 2]]
FULL_ONE_MERGE = [[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 8, 8]]
# Moving left leaves one empty cell, (3, 3); whether a 2 or a 4 lands there, no move is left.
ONE_MOVE_TO_GAME_OVER = [[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 8], [0, 8, 16, 32]]


def test_game_over_detection():
    game = Game2048()
    state = game.from_boards(board_from_tiles([FULL_NO_MERGE, FULL_ONE_MERGE]))
    assert state.legal.tolist() == [[False] * 4, [True, True, False, False]]
    assert ref.game_over(FULL_NO_MERGE) and not ref.game_over(FULL_ONE_MERGE)


def test_step_into_game_over_terminates():
    game = Game2048()
    g = torch.Generator().manual_seed(3)
    n = 200
    state = game.from_boards(board(ONE_MOVE_TO_GAME_OVER).repeat(n))
    assert state.legal[0].tolist() == [True, False, False, True]
    new, r, terminated = game.step(state, actions(LEFT, n), g)
    assert terminated.all()
    assert not new.legal.any()
    assert r.tolist() == [0.0] * n
    last = tiles(new.board)[:, 3, 3]
    assert set(last.tolist()) == {2, 4}  # both spawn values occur among 200 tries
    # A step that does not end the game is not terminated.
    state = game.from_boards(board(FULL_ONE_MERGE).repeat(n))
    new, r, terminated = game.step(state, actions(RIGHT, n), g)
    assert r.tolist() == [16.0] * n
    assert terminated.tolist() == [ref.game_over(t) for t in as_lists(new.board)]


def test_legal_actions_modes():
    boards = board_from_tiles(
        [FULL_NO_MERGE, FULL_ONE_MERGE, BOARD_A, [[2, 0, 0, 0]] + [[0] * 4] * 3]
    )
    masked = Game2048(invalid_move="mask")
    noop = Game2048(invalid_move="noop")
    assert masked.legal_actions(masked.from_boards(boards)).tolist() == [
        [False, False, False, False],
        [True, True, False, False],
        [True, True, True, True],
        [False, True, False, True],
    ]
    mask = noop.legal_actions(noop.from_boards(boards))
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True] * 4] * 4
    # noop mode still ends the game only when no move changes the board
    g = torch.Generator().manual_seed(0)
    n = 20
    _, _, terminated = noop.step(
        noop.from_boards(board(ONE_MOVE_TO_GAME_OVER).repeat(n)), actions(LEFT, n), g
    )
    assert terminated.all()


# ---------------------------------------------------------------------------------------------
# Property test against the scalar reference on many random boards.

N_RANDOM = 20_000


def _random_exponents(rng: np.random.Generator) -> np.ndarray:
    """``[N_RANDOM, 4, 4]`` exponents of varied boards."""
    parts = []
    # Sparse boards: exponents 1..11, about half the cells empty.
    e = rng.integers(1, 12, size=(8000, 4, 4))
    parts.append(np.where(rng.random(e.shape) < 0.5, 0, e))
    # Near-full boards with small exponents: many merges, and some boards with no move at all.
    e = rng.integers(1, 5, size=(7000, 4, 4))
    parts.append(np.where(rng.random(e.shape) < 0.06, 0, e))
    # Full boards with exponents 1..11.
    parts.append(rng.integers(1, 12, size=(2000, 4, 4)))
    # Large tiles next to the 32768 cap.
    e = rng.integers(12, 16, size=(2990, 4, 4))
    parts.append(np.where(rng.random(e.shape) < 0.3, 0, e))
    # A few boards with a single tile, and empty boards.
    single = np.zeros((10, 4, 4), dtype=np.int64)
    single.reshape(10, 16)[np.arange(10), rng.integers(0, 16, 10)] = 1
    parts.append(single)
    out = np.concatenate(parts).astype(np.int64)
    out[-2:] = 0
    assert out.shape == (N_RANDOM, 4, 4)
    return out


@pytest.fixture(scope="module")
def random_boards():
    """Random boards with the reference's answer for every action."""
    rng = np.random.default_rng(2048)
    exps = _random_exponents(rng)
    tile_values = np.where(exps > 0, 1 << exps, 0)
    starts = tile_values.tolist()
    ref_boards = np.zeros((4, N_RANDOM, 4, 4), dtype=np.int64)
    ref_rewards = np.zeros((4, N_RANDOM), dtype=np.int64)
    for i, s in enumerate(starts):
        for a in range(4):
            m, r = ref.move(s, a)
            ref_boards[a, i] = m
            ref_rewards[a, i] = r
    changed = (ref_boards != tile_values[None]).any(axis=(2, 3)).T  # [N, 4]
    return {
        "exponents": exps,
        "tiles": tile_values,
        "boards": board_from_exponents(torch.from_numpy(exps)),
        "ref_boards": ref_boards,
        "ref_rewards": ref_rewards,
        "changed": changed,
    }


def test_random_boards_cover_interesting_cases(random_boards):
    changed = random_boards["changed"]
    assert (~changed.any(axis=1)).sum() > 100  # boards with no legal move
    assert changed.all(axis=1).sum() > 1000
    assert (random_boards["ref_rewards"] > 0).sum() > 10_000
    # boards where a move would merge two 32768 tiles if it were not for the cap
    t = random_boards["tiles"]
    assert ((t[:, :, :-1] == 32768) & (t[:, :, 1:] == 32768)).any(axis=(1, 2)).sum() > 100


def test_board_encoding_roundtrip(random_boards):
    assert np.array_equal(tiles(random_boards["boards"]).numpy(), random_boards["tiles"])
    assert random_boards["boards"].equal(board_from_tiles(torch.from_numpy(random_boards["tiles"])))


@pytest.mark.parametrize("action", [LEFT, RIGHT, UP, DOWN])
def test_move_matches_reference(random_boards, action):
    moved, reward = move(random_boards["boards"], actions(action, N_RANDOM))
    assert np.array_equal(tiles(moved).numpy(), random_boards["ref_boards"][action])
    assert np.array_equal(reward.numpy(), random_boards["ref_rewards"][action].astype(np.float32))


def test_move_matches_reference_mixed_actions(random_boards):
    rng = np.random.default_rng(1)
    acts = rng.integers(0, 4, N_RANDOM)
    moved, reward = move(random_boards["boards"], torch.from_numpy(acts))
    idx = np.arange(N_RANDOM)
    assert np.array_equal(tiles(moved).numpy(), random_boards["ref_boards"][acts, idx])
    assert np.array_equal(reward.numpy(), random_boards["ref_rewards"][acts, idx])


def test_legal_moves_match_reference(random_boards):
    got = legal_moves(random_boards["boards"]).numpy()
    assert np.array_equal(got, random_boards["changed"])


@pytest.mark.parametrize("action", [LEFT, RIGHT, UP, DOWN, "mixed"])
def test_step_matches_reference_plus_one_spawn(random_boards, action):
    game = Game2048()
    g = torch.Generator().manual_seed(11)
    idx = np.arange(N_RANDOM)
    if action == "mixed":
        acts = np.random.default_rng(5).integers(0, 4, N_RANDOM)
    else:
        acts = np.full(N_RANDOM, action)
    state = game.from_boards(random_boards["boards"])
    new, reward, terminated = game.step(state, torch.from_numpy(acts), g)

    expected = random_boards["ref_boards"][acts, idx]
    changed = random_boards["changed"][idx, acts]
    got = tiles(new.board).numpy()

    # Unchanged moves: the board is exactly the old board and the reward 0.
    assert np.array_equal(got[~changed], random_boards["tiles"][~changed])
    # Changed moves: the reference board plus exactly one 2 or 4 on a cell empty after the move.
    diff = (got != expected)[changed].reshape(-1, 16)
    assert (diff.sum(axis=1) == 1).all()
    cell = diff.argmax(axis=1)
    before = expected[changed].reshape(-1, 16)[np.arange(len(cell)), cell]
    spawned = got[changed].reshape(-1, 16)[np.arange(len(cell)), cell]
    assert (before == 0).all()
    assert set(np.unique(spawned).tolist()) == {2, 4}

    assert np.array_equal(reward.numpy(), random_boards["ref_rewards"][acts, idx])
    assert np.array_equal(new.score.numpy(), random_boards["ref_rewards"][acts, idx])
    # State bookkeeping and termination: consistent on every board, and equal to the reference
    # on every 5th board (the reference is slow; test_legal_moves_match_reference covers the rest).
    assert new.legal.equal(legal_moves(new.board))
    assert terminated.equal(~new.legal.any(dim=1))
    sub = slice(None, None, 5)
    ref_legal = np.array([ref.legal(b) for b in got[sub].tolist()])
    assert np.array_equal(new.legal.numpy()[sub], ref_legal)
    assert np.array_equal(terminated.numpy()[sub], ~ref_legal.any(axis=1))
    assert terminated.any()  # some games do end on these boards


def test_transpose_is_an_involution_matching_numpy():
    rng = np.random.default_rng(99)
    exps = rng.integers(0, 16, size=(5000, 4, 4))  # every nibble value, sign bit included
    b = board_from_exponents(torch.from_numpy(exps))
    assert (b < 0).any()  # the top nibble >= 8 sets the int64 sign bit
    t = transpose(b)
    got = tiles(t).numpy()
    want = np.where(exps > 0, 1 << exps, 0).transpose(0, 2, 1)
    assert np.array_equal(got, want)
    assert transpose(t).equal(b)


# ---------------------------------------------------------------------------------------------
# Spawn and init odds.


# Boards where moving left leaves a known set of empty cells.
SPAWN_CASES = [
    # (board, number of empty cells after moving left)
    ([[0, 0, 0, 2], [0] * 4, [0] * 4, [0] * 4], 15),
    ([[0, 0, 0, 2], [0, 0, 0, 4], [0, 0, 8, 0], [0, 16, 0, 0]], 12),
    ([[2, 2, 4, 8], [4, 8, 16, 32], [8, 16, 32, 64], [16, 32, 64, 128]], 1),
    ([[2, 2, 4, 8], [4, 8, 16, 32], [8, 16, 32, 64], [16, 32, 64, 64]], 2),
]


@pytest.mark.parametrize("start, n_empty", SPAWN_CASES)
def test_spawn_is_uniform_over_empty_cells_and_four_with_prob_0_1(start, n_empty):
    game = Game2048()
    after, _ = ref.move(start, LEFT)
    empty = ref.empty_cells(after)
    assert len(empty) == n_empty
    n = 60_000
    g = torch.Generator().manual_seed(1234 + n_empty)
    state = game.from_boards(board(start).repeat(n))
    new, _, _ = game.step(state, actions(LEFT, n), g)
    got = tiles(new.board).numpy()
    after = np.array(after)
    diff = (got != after).reshape(n, 16)
    assert (diff.sum(axis=1) == 1).all()
    cell = diff.argmax(axis=1)
    value = got.reshape(n, 16)[np.arange(n), cell]
    assert set(np.unique(value).tolist()) <= {2, 4}

    counts = np.bincount(cell, minlength=16)
    empty_index = [4 * r + c for r, c in empty]
    assert counts[empty_index].sum() == n  # every spawn on a cell that was empty
    if n_empty > 1:
        stat = chi_square(counts[empty_index])
        assert stat < CHI2_CRIT_1E6[n_empty - 1], (stat, counts[empty_index])

    fours = value == 4
    sigma = math.sqrt(0.1 * 0.9 / n)
    assert abs(fours.mean() - 0.1) < 5 * sigma, fours.mean()
    # The tile value does not depend on the cell: P(4) is 0.1 in every empty cell.
    for i in empty_index:
        on_cell = fours[cell == i]
        sigma_cell = math.sqrt(0.1 * 0.9 / len(on_cell))
        assert abs(on_cell.mean() - 0.1) < 5 * sigma_cell, (i, on_cell.mean())


def test_spawn_odds_over_many_steps_of_random_play():
    """Fraction of 4s over every spawn of many random games (varied numbers of empty cells)."""
    game = Game2048()
    g = torch.Generator().manual_seed(77)
    n = 2000
    state = game.init(n, g)
    spawned_values = []
    for _ in range(60):
        legal = state.legal
        # a random legal action (boards with no legal action are stepped with 0: a no-op)
        pick = torch.multinomial(legal.float() + 1e-9, 1, generator=g).squeeze(1)
        moved, _ = move(state.board, pick)
        new, _, _ = game.step(state, pick, g)
        changed = (moved != state.board).numpy()
        diff = tiles(new.board).numpy() - tiles(moved).numpy()
        spawned = diff.reshape(n, 16).sum(axis=1)
        assert ((diff != 0).reshape(n, 16).sum(axis=1) == changed).all()
        spawned_values.append(spawned[changed])
        state = new
    values = np.concatenate(spawned_values)
    assert set(np.unique(values).tolist()) == {2, 4}
    m = len(values)
    assert m > 100_000
    sigma = math.sqrt(0.1 * 0.9 / m)
    frac = (values == 4).mean()
    assert abs(frac - 0.1) < 5 * sigma, frac


def test_init_two_tiles_on_distinct_uniform_cells():
    game = Game2048()
    n = 120_000
    g = torch.Generator().manual_seed(42)
    state = game.init(n, g)
    t = tiles(state.board).numpy().reshape(n, 16)
    occupied = t > 0
    assert (occupied.sum(axis=1) == 2).all()  # exactly two tiles, so on distinct cells
    assert set(np.unique(t[occupied]).tolist()) == {2, 4}
    assert state.score.tolist() == [0] * n
    assert np.array_equal(state.legal.numpy(), legal_moves(state.board).numpy())

    # Each cell equally likely: per-cell occupancy (expected 2n/16 each).
    cell_counts = occupied.sum(axis=0)
    stat = chi_square(cell_counts)
    assert stat < CHI2_CRIT_1E6[15], (stat, cell_counts)
    # Each unordered pair of cells equally likely (120 pairs, expected 1000 each).
    cells = np.sort(np.nonzero(occupied)[1].reshape(n, 2), axis=1)
    pair_id = cells[:, 0] * 16 + cells[:, 1]
    pair_counts = np.bincount(pair_id, minlength=256)
    pair_counts = pair_counts[[i * 16 + j for i in range(16) for j in range(i + 1, 16)]]
    assert pair_counts.sum() == n
    stat = chi_square(pair_counts)
    assert stat < CHI2_CRIT_1E6[119], stat

    # Tile values: 4 w.p. 0.1, independently for the two tiles.
    values = t[occupied].reshape(n, 2)
    fours = values == 4
    sigma = math.sqrt(0.1 * 0.9 / (2 * n))
    assert abs(fours.mean() - 0.1) < 5 * sigma, fours.mean()
    both = fours.all(axis=1).mean()
    assert abs(both - 0.01) < 5 * math.sqrt(0.01 * 0.99 / n), both


def test_init_and_step_are_deterministic_given_the_generator():
    game = Game2048()
    s1 = game.init(500, torch.Generator().manual_seed(5))
    s2 = game.init(500, torch.Generator().manual_seed(5))
    s3 = game.init(500, torch.Generator().manual_seed(6))
    assert s1.board.equal(s2.board)
    assert not s1.board.equal(s3.board)
    a = torch.randint(0, 4, (500,), generator=torch.Generator().manual_seed(0))
    n1, r1, t1 = game.step(s1, a, torch.Generator().manual_seed(9))
    n2, r2, t2 = game.step(s2, a, torch.Generator().manual_seed(9))
    assert n1.board.equal(n2.board) and r1.equal(r2) and t1.equal(t2)


# ---------------------------------------------------------------------------------------------
# Observations.


def test_observation_modes_are_consistent():
    rng = np.random.default_rng(3)
    exps = rng.integers(0, 16, size=(300, 4, 4))
    b = board_from_exponents(torch.from_numpy(exps))
    obs = {}
    for mode in ("exponent", "onehot", "log2", "raw"):
        game = Game2048(obs=mode)
        o = game.observe(game.from_boards(b))
        space = game.observation_space
        assert o.shape == (300, *space.shape), mode
        assert o.dtype == getattr(torch, np.dtype(space.dtype).name), mode
        assert space.contains(o[0].numpy()), mode
        obs[mode] = o
    e = obs["exponent"]
    assert e.dtype == torch.uint8
    assert np.array_equal(e.numpy(), exps)
    assert np.array_equal(obs["log2"].numpy(), exps.astype(np.float32))
    assert (obs["onehot"].sum(dim=1) == 1).all()
    assert np.array_equal(obs["onehot"].argmax(dim=1).numpy(), exps)
    raw = obs["raw"].double() * 2048
    assert np.array_equal(raw.numpy(), np.where(exps > 0, 2.0**exps, 0.0))


def test_game_rejects_unknown_options():
    with pytest.raises(ValueError, match="exponent.*onehot.*log2.*raw"):
        Game2048(obs="pixels")
    with pytest.raises(ValueError, match="mask.*noop"):
        Game2048(invalid_move="ignore")


def test_episode_extras():
    game = Game2048()
    state = game.from_boards(
        board_from_tiles([BOARD_A, FULL_ONE_MERGE]), score=torch.tensor([12, 345])
    )
    extras = game.episode_extras(state)
    assert extras["score"].tolist() == [12, 345]
    assert extras["max_tile"].tolist() == [8, 8]


def test_row_tables_equal_the_scalar_rule_on_every_row():
    """The vectorised table build against _move_row_left, row by row, all 65,536 rows."""
    move, canmove = g._numpy_tables()
    n = 1 << 16
    for row in range(n):
        cells = [(row >> (4 * i)) & 0xF for i in range(4)]
        left, r_left = g._move_row_left(cells)
        right_rev, r_right = g._move_row_left(cells[::-1])
        left_word = sum(c << (4 * i) for i, c in enumerate(left))
        right_word = sum(c << (4 * i) for i, c in enumerate(right_rev[::-1]))
        assert move[row] == left_word | ((r_left // 4) << 16)
        assert move[n + row] == right_word | ((r_right // 4) << 16)
        assert canmove[row] == (left_word != row) | ((right_word != row) << 1)
