"""Tests of the n-tuple network (renshu.core.ntuple) and the ntuple algorithm
(renshu.algos.ntuple) against scalar Python references written from the definitions: a board as
16 exponents, the 8 symmetries as list permutations, a tuple's index as base-16 digits, and
expectimax as a plain recursion over reference_2048's moves."""

from __future__ import annotations

import math

import pytest
import torch

import reference_2048 as ref
from renshu.algos.ntuple import NTuple, NTupleBatch, NTupleConfig
from renshu.core import ntuple as nt
from renshu.envs.game2048 import Game2048, afterstates, board_from_exponents, tiles
from renshu.envs.registry import make_env

needs_numba = pytest.mark.skipif(not nt.numba_available(), reason="numba is not installed")
BACKENDS = ["torch", pytest.param("numba", marks=needs_numba)]
CUSTOM = "0,4,8,12,13;1,6,11;3"  # non-contiguous cells, mixed lengths


def backend(lay, kind, stage_exp=None):
    return nt.make_backend(lay, torch.device("cpu"), kind, stage_exp)


def played_boards(n: int, moves: int, seed: int = 0) -> torch.Tensor:
    """Boards from random play (realistic positions, some with big tiles)."""
    game = Game2048()
    g = torch.Generator().manual_seed(seed)
    state = game.init(n, g)
    boards = []
    for _ in range(moves):
        action = torch.randint(0, 4, (n,), generator=g)
        state, _, _ = game.step(state, action, g)
        boards.append(state.board)
    return torch.cat(boards)


def random_boards(n: int, seed: int = 0, high: int = 14) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return board_from_exponents(torch.randint(0, high, (n, 4, 4), generator=g))


def integer_table(lay, seed: int = 0) -> torch.Tensor:
    """Whole-number weights: sums of up to 64 of them are exact in float32, in any order."""
    g = torch.Generator().manual_seed(seed)
    n = lay.stages * lay.entries
    return torch.randint(-1000, 1000, (n,), generator=g, dtype=torch.int32).float()


# -- scalar references ------------------------------------------------------------------------


def cells(board: int) -> list[int]:
    return [(board >> (4 * i)) & 0xF for i in range(16)]


def grid_syms(e: list[int]) -> list[list[int]]:
    """The 8 symmetric images of 16 row-major exponents, in renshu's order."""
    g = [e[4 * r : 4 * r + 4] for r in range(4)]
    lr = lambda m: [row[::-1] for row in m]
    ud = lambda m: m[::-1]
    tr = lambda m: [[m[r][c] for r in range(4)] for c in range(4)]
    t = tr(g)
    images = [g, lr(g), ud(g), lr(ud(g)), t, lr(t), ud(t), lr(ud(t))]
    return [[x for row in m for x in row] for m in images]


def ref_indices(board: int, lay) -> list[int]:
    out = []
    for j, tup in enumerate(lay.tuples):
        for img in grid_syms(cells(board)):
            out.append(lay.offsets[j] + sum(img[c] << (4 * k) for k, c in enumerate(tup)))
    return out


def ref_value(lut, board: int, lay) -> float:
    """The sum of the lookups (``lut``: a list, or a tensor read one weight at a time)."""
    return sum(float(lut[i]) for i in ref_indices(board, lay))


def to_int(board_tiles: list[list[int]]) -> int:
    out = 0
    for i, v in enumerate(x for row in board_tiles for x in row):
        out |= (0 if v == 0 else int(math.log2(v))) << (4 * i)
    return out


def to_tiles(board: int) -> list[list[int]]:
    e = cells(board)
    return [[0 if x == 0 else 1 << x for x in e[4 * r : 4 * r + 4]] for r in range(4)]


def ref_expectimax(lut: list[float], board: int, lay, depth: int) -> list[float]:
    """Each move's value by plain recursion (float64); -inf where illegal."""

    def chance(after: int, d: int) -> float:
        if d == 1:
            return ref_value(lut, after, lay)
        e = cells(after)
        empty = [i for i in range(16) if e[i] == 0]
        total = 0.0
        for i in empty:
            for tile, p in ((1, 0.9), (2, 0.1)):
                q = moves(after | (tile << (4 * i)), d - 1)
                best = max(q)
                total += p / len(empty) * (0.0 if best == -math.inf else best)
        return total

    def moves(b: int, d: int) -> list[float]:
        out = []
        for a in range(4):
            new, reward = ref.move(to_tiles(b), a)
            after = to_int(new)
            out.append(-math.inf if after == b else reward + chance(after, d))
        return out

    return moves(board, depth)


# -- tuple sets and validation ----------------------------------------------------------------


def test_named_sets_and_layout():
    lay = nt.layout("4x6")
    assert lay.tuples == (
        (0, 1, 2, 3, 4, 5),
        (4, 5, 6, 7, 8, 9),
        (0, 1, 2, 4, 5, 6),
        (4, 5, 6, 8, 9, 10),
    )
    assert lay.entries == 4 * 16**6 and lay.num_lookups == 32 and lay.nbytes == 4 * 4 * 16**6
    assert lay.offsets == (0, 16**6, 2 * 16**6, 3 * 16**6)
    # runs of consecutive cells read with one shift and mask each
    assert [len(s) for s in lay.segments] == [1, 1, 2, 2]
    assert nt.layout("2x4+2x6").entries == 2 * 16**4 + 2 * 16**6
    assert nt.layout("8x6").num_lookups == 64
    assert "256.0 MiB" in lay.describe()
    assert nt.parse_tuples(CUSTOM) == ((0, 4, 8, 12, 13), (1, 6, 11), (3,))
    assert nt.parse_tuples([[0, 1], [5]]) == ((0, 1), (5,))


def test_bad_tuple_sets_are_refused():
    with pytest.raises(
        ValueError, match="unknown tuple set '5x6'; valid names: 4x6, 2x4\\+2x6, 8x6"
    ):
        nt.parse_tuples("5x6")
    with pytest.raises(ValueError, match="cells must be 0-15.*got \\[16\\]"):
        nt.parse_tuples("0,1,16")
    with pytest.raises(ValueError, match="cells must be 0-15.*got \\[-1\\]"):
        nt.parse_tuples([[0, -1]])
    with pytest.raises(ValueError, match="must not repeat, got \\[2\\]"):
        nt.parse_tuples("0,1,2;2,3,2")
    with pytest.raises(ValueError, match="1 to 8 cells, got 9"):
        nt.parse_tuples([list(range(9))])
    with pytest.raises(ValueError, match="whole numbers"):
        nt.parse_tuples("0,1;a,b")
    with pytest.raises(ValueError, match="config field 'tuples'.*unknown tuple set"):
        NTupleConfig(tuples="6x6")
    with pytest.raises(ValueError, match="config field 'stage_tile'"):
        NTupleConfig(stage_tile=1000)
    with pytest.raises(ValueError, match="config field 'collision_cap'"):
        NTupleConfig(collision_cap=0)
    with pytest.raises(ValueError, match="config field 'learning_rate'"):
        NTupleConfig(learning_rate=-0.1)


def test_tables_that_do_not_fit_are_refused_before_allocation():
    # Three 8-cell tuples: 3 x 16^8 float32 weights = 48 GiB, more than any test machine has.
    lay = nt.layout([list(range(8)), list(range(8, 16)), list(range(4, 12))])
    assert lay.nbytes == 3 * 4 * 16**8
    with pytest.raises(ValueError, match="need 48.0 GiB .*only .* is free on cpu"):
        nt.allocate_tables(lay, torch.device("cpu"))
    env = make_env("game2048", num_envs=2, seed=0)  # averaged updates: as many int32 counts
    with pytest.raises(ValueError, match="need 96.0 GiB .*48.0 GiB, and as many int32"):
        NTuple(
            env,
            NTupleConfig(
                num_envs=2, tuples="0,1,2,3,4,5,6,7;8,9,10,11,12,13,14,15;4,5,6,7,8,9,10,11"
            ),
        )


def test_other_envs_and_observations_are_refused():
    with pytest.raises(ValueError, match="exponent observations only"):
        NTuple(make_env("game2048", num_envs=2, obs="onehot"), NTupleConfig(tuples="0,1"))
    with pytest.raises(ValueError, match="2048 with exponent observations only"):
        NTuple(make_env("cartpole", num_envs=2), NTupleConfig(tuples="0,1"))


# -- symmetries, indices, values --------------------------------------------------------------


def test_symmetries_match_the_scalar_reference():
    boards = random_boards(200, seed=1, high=16)
    sym = nt.symmetries(boards)
    assert sym.shape == (8, 200)
    for i, b in enumerate(boards.tolist()):
        want = grid_syms(cells(b))
        got = [cells(x) for x in sym[:, i].tolist()]
        assert got == want
    # the 8 images of a board with 16 distinct cells are distinct (the whole dihedral group)
    distinct = board_from_exponents(torch.arange(16).view(1, 4, 4))
    assert len(set(nt.symmetries(distinct).view(-1).tolist())) == 8


@pytest.mark.parametrize("tuples", ["4x6", "2x4+2x6", "8x6", CUSTOM])
def test_indices_match_the_scalar_reference(tuples):
    lay = nt.layout(tuples)
    boards = torch.cat([random_boards(100, seed=2, high=16), played_boards(4, 25)])
    idx = nt.tuple_indices(boards, lay)
    assert idx.shape == (lay.num_lookups, boards.shape[0])
    for i, b in enumerate(boards.tolist()):
        assert idx[:, i].tolist() == ref_indices(b, lay)


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("tuples", ["4x6", CUSTOM])
def test_values_match_the_scalar_reference_and_are_symmetric(kind, tuples):
    lay = nt.layout(tuples)
    lut = integer_table(lay)
    boards = torch.cat([random_boards(50, seed=3), played_boards(2, 25)])
    v = backend(lay, kind).value(lut, boards)
    assert v.tolist() == [ref_value(lut, b, lay) for b in boards.tolist()]
    # every symmetric image has the same value (exact: whole-number weights)
    images = nt.symmetries(boards)
    for s in range(8):
        assert torch.equal(backend(lay, kind).value(lut, images[s]), v)


def test_afterstates_match_the_reference_engine():
    boards = played_boards(16, 30, seed=4)
    after, reward, legal = afterstates(boards)
    for i, b in enumerate(boards.tolist()):
        for a in range(4):
            new, r = ref.move(to_tiles(b), a)
            assert after[i, a].item() == to_int(new)
            assert reward[i, a].item() == r
            assert legal[i, a].item() == (to_int(new) != b)


@pytest.mark.parametrize("kind", BACKENDS)
def test_action_values_and_best_move(kind):
    lay = nt.layout("2x4+2x6")
    lut = integer_table(lay) / 64
    boards = played_boards(8, 40, seed=5)
    q, after, reward, v = backend(lay, kind).q(lut, boards)
    a_after, a_reward, legal = afterstates(boards)
    assert torch.equal(after, a_after) and torch.equal(reward, a_reward)
    table = lut.tolist()
    for i in range(boards.shape[0]):
        for a in range(4):
            if legal[i, a]:
                expect = torch.tensor(
                    ref_value(table, after[i, a].item(), lay), dtype=torch.float32
                )
                assert abs(v[i, a].item() - expect.item()) <= 1e-3
                assert q[i, a].item() == pytest.approx(
                    reward[i, a].item() + v[i, a].item(), abs=1e-2
                )
            else:
                assert q[i, a].item() == -math.inf and v[i, a].item() == 0.0
    action, b_after, b_reward, b_value = backend(lay, kind).best(lut, boards)
    assert torch.equal(action, q.argmax(1))
    rows = torch.arange(boards.shape[0])
    assert torch.equal(b_after, after[rows, action]) and torch.equal(b_value, v[rows, action])
    assert torch.equal(b_reward, reward[rows, action])


# -- the TD update ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_td_update_by_hand(kind):
    # One 2-tuple on cells 0 and 1; a board holding a single 2 in the top-left corner. Its 8
    # images see (2, empty) twice (identity and transpose: index 1) and (empty, empty) six
    # times (index 0). With w[0] = 1, w[1] = 2: V = 6 * 1 + 2 * 2 = 10.
    lay = nt.layout("0,1")
    board = board_from_exponents(
        torch.tensor([[[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])
    )
    assert sorted(nt.tuple_indices(board, lay).view(-1).tolist()) == [0] * 6 + [1] * 2
    # target 26, alpha 0.5: error 16, each of the 8 lookups moves by 0.5 * 16 / 8 = 1.
    lut = torch.zeros(256)
    lut[0], lut[1] = 1.0, 2.0
    delta = backend(lay, kind).update(lut, board, torch.tensor([26.0]), 0.5)
    assert delta.tolist() == [16.0]
    assert lut[:3].tolist() == [7.0, 4.0, 0.0]  # summed: w[0] += 6 x 1, w[1] += 2 x 1
    lut = torch.zeros(256)
    lut[0], lut[1] = 1.0, 2.0
    counts = torch.zeros(256, dtype=torch.int32)
    backend(lay, kind).update(lut, board, torch.tensor([26.0]), 0.5, counts)
    # averaged: each weight moves by 1 once (w[0] by six sixths, rounded in float32)
    assert lut[:3].tolist() == pytest.approx([2.0, 3.0, 0.0], abs=1e-6)
    assert counts.abs().sum().item() == 0  # left zero for the next call
    # capped at 3: w[0]'s six updates are scaled by 3 / 6, w[1]'s two add up in full
    lut = torch.zeros(256)
    lut[0], lut[1] = 1.0, 2.0
    backend(lay, kind).update(lut, board, torch.tensor([26.0]), 0.5, counts, 3.0)
    assert lut[:3].tolist() == [4.0, 4.0, 0.0]
    assert lut[3:].abs().sum().item() == 0


@pytest.mark.parametrize("kind", BACKENDS)
def test_colliding_updates_add_up(kind):
    # Two different boards that share weights (both hold a 2 in a corner) update in one call:
    # the change of the table is the sum of the changes each makes alone from the same table.
    lay = nt.layout("0,1;4,5")
    e = torch.zeros(2, 4, 4, dtype=torch.int64)
    e[0, 0, 0] = 1
    e[1, 3, 3], e[1, 1, 1] = 1, 2
    boards = board_from_exponents(e)
    idx = nt.tuple_indices(boards, lay)
    assert set(idx[:, 0].tolist()) & set(idx[:, 1].tolist())  # they collide
    lut0 = integer_table(lay, seed=7) / 16
    targets = torch.tensor([40.0, -24.0])
    alone = []
    for i in range(2):
        lut = lut0.clone()
        backend(lay, kind).update(lut, boards[i : i + 1], targets[i : i + 1], 0.25)
        alone.append(lut - lut0)
    lut = lut0.clone()
    backend(lay, kind).update(lut, boards, targets, 0.25)
    assert torch.allclose(lut - lut0, alone[0] + alone[1], atol=1e-5)
    # averaged instead: a weight both boards hit moves by the mean of their two updates
    lut = lut0.clone()
    counts = torch.zeros(lut.shape, dtype=torch.int32)
    backend(lay, kind).update(lut, boards, targets, 0.25, counts)
    hits = torch.zeros(lut.shape).index_add_(0, idx.reshape(-1), torch.ones(idx.numel()))
    mean = (alone[0] + alone[1]) / hits.clamp(min=1)
    assert torch.allclose(lut - lut0, mean, atol=1e-5)
    shared = (hits > 1) & ((alone[0] != 0) & (alone[1] != 0))
    assert bool(shared.any())


@needs_numba
@pytest.mark.parametrize("cap", [1, 3, None])
@pytest.mark.parametrize("stage_tile", [None, 64])
def test_numba_and_torch_paths_are_bit_identical(cap, stage_tile):
    lay = nt.layout("4x6", stages=1 if stage_tile is None else 2)
    stage_exp = None if stage_tile is None else 6
    boards = torch.cat([played_boards(64, 40, seed=8), played_boards(8, 40, seed=8)])  # repeats
    targets = torch.linspace(-50, 500, boards.shape[0])
    luts, deltas = [], []
    for kind in ("torch", "numba"):
        lut = integer_table(lay, seed=9) / 128
        counts = None if cap is None else torch.zeros(lut.shape, dtype=torch.int32)
        bk = backend(lay, kind, stage_exp)
        q = bk.q(lut, boards)
        best = bk.best(lut, boards)
        for _ in range(3):
            deltas.append(bk.update(lut, boards, targets, 0.1, counts, cap or 1.0))
        luts.append((lut, q, best))
    (lut_t, q_t, best_t), (lut_n, q_n, best_n) = luts
    assert all(torch.equal(a, b) for a, b in zip(q_t, q_n))
    assert all(torch.equal(a, b) for a, b in zip(best_t, best_n))
    assert all(torch.equal(a, b) for a, b in zip(deltas[:3], deltas[3:]))
    assert torch.equal(lut_t, lut_n)


@needs_numba
def test_small_batches_run_on_one_thread_with_the_same_results():
    """Below SERIAL_BELOW boards' moves the kernels run on one thread (a parallel launch costs
    more than the work); a board's values do not depend on the batch it is in."""
    import numba

    lay = nt.layout(CUSTOM)
    lut = integer_table(lay, seed=2) / 64
    bk = backend(lay, "numba")
    boards = played_boards(64, 8, seed=4)  # 512 boards
    torch.set_num_threads(2)
    many = min(2, numba.config.NUMBA_NUM_THREADS)
    q_all = bk.q(lut, boards)[0]
    assert numba.get_num_threads() == many
    q_few = bk.q(lut, boards[:8])[0]
    assert numba.get_num_threads() == 1
    assert torch.equal(q_few, q_all[:8])
    assert torch.equal(bk.expectimax2(lut, boards[:3]), bk.expectimax2(lut, boards[:16])[:3])
    assert numba.get_num_threads() == many  # 16 boards x 64 moves: parallel


@needs_numba
def test_the_numba_pool_keeps_torchs_thread_count():
    """Starting numba's OpenMP pool (its first parallel call) set torch's thread count to the
    pool's size, so a one-thread run went on with two; checked in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(1)\n"
        "import numba; from renshu.core import ntuple as nt\n"
        "lay = nt.layout('0,1,2,3'); bk = nt.numba_backend(lay)\n"
        "b = torch.arange(1000, dtype=torch.int64)\n"
        "bk.q(torch.zeros(lay.entries), b); bk.best(torch.zeros(lay.entries), b)\n"
        "print(torch.get_num_threads(), numba.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]


@pytest.mark.skipif(not hasattr(__import__("mmap"), "MADV_HUGEPAGE"), reason="no madvise")
def test_big_tables_on_huge_pages_learn_the_same(monkeypatch):
    """Tables of 16 MiB and more sit on 2 MiB-aligned memory advised for huge pages; a run on
    them learns exactly what a run on ordinary tensors does."""
    config = NTupleConfig(num_envs=64, tuples="0,1,2,3,4,5", init_value=4.0)  # 64 MiB
    runs = []
    for huge in (True, False):
        if not huge:
            monkeypatch.setattr(nt, "huge_page_zeros", lambda n, dtype: None)
        algo = NTuple(make_env("game2048", num_envs=64, seed=1), config, seed=1)
        assert (algo.tables.data_ptr() % nt.HUGE_PAGE == 0) or not huge
        assert algo.counts.dtype == torch.int32 and int(algo.counts.abs().sum()) == 0
        assert float(algo.tables[12345]) == 4.0 / algo.layout.num_lookups
        for _ in range(40):
            algo.learn(algo.collect(0.0), 0.0)
        runs.append(algo)
    assert torch.equal(runs[0].tables, runs[1].tables)
    assert nt.huge_page_zeros(1000, torch.float32) is None  # small tables: ordinary memory


@pytest.mark.parametrize("cap", [1, 4, None])
def test_sync_free_learning_equals_the_compact_path(cap):
    # The accelerator path (every row, weighted 0 or 1) learns what the CPU path (only the rows
    # with an update) learns; run on the CPU here.
    tables = []
    for sync_free in (False, True):
        env = make_env("game2048", num_envs=32, seed=4)
        cfg = NTupleConfig(num_envs=32, tuples="2x4+2x6", kernel="torch", collision_cap=cap)
        algo = NTuple(env, cfg, seed=4)
        algo.sync_free = sync_free
        for _ in range(120):
            algo.learn(algo.collect(0.0), 0.0)
        tables.append(algo.tables)
    assert torch.equal(tables[0], tables[1])


@needs_numba
def test_the_algorithm_learns_the_same_on_both_paths():
    tables = []
    for kind in ("torch", "numba"):
        env = make_env("game2048", num_envs=32, seed=3)
        algo = NTuple(env, NTupleConfig(num_envs=32, tuples="2x4+2x6", kernel=kind), seed=3)
        for _ in range(150):
            algo.learn(algo.collect(0.0), 0.0)
        tables.append(algo.tables)
    assert tables[0].abs().sum() > 0
    assert torch.equal(tables[0], tables[1])


# -- expectimax -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_expectimax_depth_2_matches_brute_force(kind):
    lay = nt.layout("0,1,2,3;4,5,6,7;0,1,4,5")
    lut = integer_table(lay, seed=11) / 8
    bk = backend(lay, kind)
    boards = played_boards(3, 60, seed=12)[-6:]  # mid-game boards (several empty cells)
    q2 = nt.expectimax_q(boards, 2, lambda b: bk.q(lut, b)[0], lambda b: bk.value(lut, b))
    q1 = nt.expectimax_q(boards, 1, lambda b: bk.q(lut, b)[0], lambda b: bk.value(lut, b))
    assert torch.equal(q1, bk.q(lut, boards)[0])
    table = lut.tolist()
    for i, b in enumerate(boards.tolist()):
        want = ref_expectimax(table, b, lay, 2)
        for a in range(4):
            if want[a] == -math.inf:
                assert q2[i, a].item() == -math.inf
            else:
                assert q2[i, a].item() == pytest.approx(want[a], rel=1e-5, abs=1e-2)


@needs_numba
def test_fused_depth_2_kernel_matches_the_tensor_search():
    lay = nt.layout("2x4+2x6")
    lut = integer_table(lay, seed=15) / 64
    bk = backend(lay, "numba")
    boards = played_boards(16, 50, seed=16)[-48:]
    want = nt.expectimax_q(boards, 2, lambda b: bk.q(lut, b)[0], lambda b: bk.value(lut, b))
    got = bk.expectimax2(lut, boards)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    finite = torch.isfinite(want)
    assert torch.allclose(got[finite], want[finite], rtol=1e-5, atol=1e-3)


@needs_numba
@pytest.mark.parametrize("cutoff", [0.0, 0.05, 0.99])
def test_fused_depth_3_kernel_matches_the_tensor_search(cutoff):
    lay = nt.layout("0,1,2,3;0,1,4,5")
    lut = integer_table(lay, seed=13) / 8
    bk = backend(lay, "numba")
    boards = played_boards(3, 80, seed=14)[-6:]
    q_fn, v_fn = (lambda b: bk.q(lut, b)[0]), (lambda b: bk.value(lut, b))
    want = nt.expectimax_q(boards, 3, q_fn, v_fn, cutoff, max_nodes=1 << 16)
    got = bk.expectimax3(lut, boards, cutoff)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    finite = torch.isfinite(want)
    assert torch.allclose(got[finite], want[finite], rtol=1e-5, atol=1e-2)
    if cutoff == 0.99:  # every second chance level cut: depth 2
        assert torch.allclose(got[finite], bk.expectimax2(lut, boards)[finite], rtol=1e-6)


def test_expectimax_depth_3_and_cutoff():
    lay = nt.layout("0,1,2,3;0,1,4,5")
    lut = integer_table(lay, seed=13) / 8
    bk = backend(lay, "torch")
    boards = played_boards(2, 120, seed=14)[-2:]
    q_fn, v_fn = (lambda b: bk.q(lut, b)[0]), (lambda b: bk.value(lut, b))
    q3 = nt.expectimax_q(boards, 3, q_fn, v_fn, max_nodes=1 << 14)  # chunks of few boards
    table = lut.tolist()
    for i, b in enumerate(boards.tolist()):
        want = ref_expectimax(table, b, lay, 3)
        got = [x if x != -math.inf else -math.inf for x in q3[i].tolist()]
        assert got == pytest.approx(want, rel=1e-5, abs=1e-2)
    # a cut-off above every probability but the root's: the second chance level is valued by
    # V, which is depth 2
    q_cut = nt.expectimax_q(boards, 3, q_fn, v_fn, cutoff=0.99)
    assert torch.equal(q_cut, nt.expectimax_q(boards, 2, q_fn, v_fn))


def test_search_through_the_algorithm():
    env = make_env("game2048", num_envs=8, seed=0)
    algo = NTuple(env, NTupleConfig(num_envs=8, tuples="2x4+2x6"))
    for _ in range(50):
        algo.learn(algo.collect(0.0), 0.0)
    obs, mask = algo.obs, algo.mask
    label, q = algo.action_values(obs, mask)
    assert label == "r + V(afterstate)" and q.shape == (8, 4)
    assert torch.equal(torch.isinf(q), ~mask)
    assert torch.equal(algo.search_values(obs, mask, depth=1), q)
    tensor_q2 = algo._search(algo._boards(obs), 2, 0.0).masked_fill(~mask, -math.inf)
    assert torch.allclose(algo.search_values(obs, mask, depth=2), tensor_q2, rtol=1e-5)
    a2 = algo.search_actions(obs, mask, depth=2)
    assert bool(mask[torch.arange(8), a2].all())
    with pytest.raises(ValueError, match="search depth must be an int from 1 to 4"):
        algo.search_actions(obs, mask, depth=0)
    with pytest.raises(ValueError, match="cutoff must lie in"):
        algo.search_actions(obs, mask, depth=2, cutoff=1.5)


# -- the algorithm ----------------------------------------------------------------------------


def test_learning_round_by_hand():
    # Round 1 plays a move in every game and learns nothing (no previous afterstate); round 2
    # moves round 1's afterstates toward r + V of round 2's (first with all-zero tables).
    env = make_env("game2048", num_envs=4, seed=0)
    algo = NTuple(
        env, NTupleConfig(num_envs=4, tuples="0,1,2,3", learning_rate=0.5, kernel="torch")
    )
    b1 = algo.collect(0.0)
    m1 = algo.learn(b1, 0.0)
    assert m1["train/updates"] == 0 and algo.tables.abs().sum() == 0 and algo.env_steps == 4
    b2 = algo.collect(0.0)
    before = algo.tables.clone()
    algo.learn(b2, 0.0)
    expect = before.clone()
    lay = algo.layout
    nt.td_update(
        expect,
        b1.after,
        b2.reward + b2.value,
        0.5,
        lay,
        counts=torch.zeros(expect.shape, dtype=torch.int32),
        cap=8.0,  # the default collision_cap
    )
    assert torch.equal(algo.tables, expect) and algo.env_steps == 8


def test_game_over_moves_the_last_afterstate_toward_zero():
    env = make_env("game2048", num_envs=1, seed=0)
    algo = NTuple(
        env,
        NTupleConfig(num_envs=1, tuples="0,1", init_value=100.0, collision_cap=1, kernel="torch"),
    )
    # a full board that one move leaves full and stuck
    stuck = [[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 4, 8]]
    after = board_from_exponents(
        torch.tensor([[[1, 2, 1, 2], [2, 1, 2, 1], [1, 2, 1, 2], [2, 1, 2, 3]]])
    )
    assert tiles(after).tolist()[0] == stuck
    batch = NTupleBatch(
        after=after, reward=torch.zeros(1), value=torch.full((1,), 100.0),
        terminated=torch.tensor([True]), truncated=torch.tensor([False]),
    )  # fmt: skip
    algo.learn(batch, 0.0)  # no previous afterstate: only V(final afterstate) -> 0
    v = nt.values(algo.tables, after, algo.layout)
    assert v.item() == pytest.approx(100.0 * (1 - 0.1), abs=1e-3)  # one step of alpha 0.1
    assert not bool(algo.pending_valid.any())


def test_learning_rate_schedule_and_batch_concat():
    env = make_env("game2048", num_envs=4, seed=0)
    algo = NTuple(
        env, NTupleConfig(num_envs=4, tuples="0,1", learning_rate=0.2, learning_rate_end=0.0)
    )
    assert algo.learning_rate(0.0) == 0.2 and algo.learning_rate(0.5) == pytest.approx(0.1)
    b = algo.collect(0.0)
    joined = NTupleBatch.concat([b, b])
    assert joined.env_steps == 8 and torch.equal(joined.after[4:], b.after)
    assert set(joined.episodes) == set(b.episodes)


def test_resume_is_exact():
    def make():
        env = make_env("game2048", num_envs=16, seed=5)
        return env, NTuple(env, NTupleConfig(num_envs=16, tuples="2x4+2x6"), seed=5)

    env, algo = make()
    for _ in range(40):
        algo.learn(algo.collect(0.3), 0.3)
    saved = {
        k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in algo.state_dict().items()
    }
    saved_env = env.state_dict()
    saved_env = {**saved_env, "state": {k: v.clone() for k, v in saved_env["state"].items()}}
    for _ in range(40):
        algo.learn(algo.collect(0.6), 0.6)
    env2, algo2 = make()
    algo2.load_state_dict(saved)
    env2.load_state_dict(saved_env)
    for _ in range(40):
        algo2.learn(algo2.collect(0.6), 0.6)
    assert torch.equal(algo.tables, algo2.tables)
    assert torch.equal(algo.obs, algo2.obs) and algo.env_steps == algo2.env_steps == 80 * 16
    # acting state: a copy acts as the learner does
    env3, algo3 = make()
    algo3.load_acting_state(algo.acting_state())
    assert torch.equal(algo3.act(algo.obs, algo.mask), algo.act(algo.obs, algo.mask))
    with pytest.raises(ValueError, match="tables hold"):
        algo3.load_acting_state({"tables": torch.zeros(5)})
