"""2048 games that start from given boards: Game2048.from_tiles, the single-game Gymnasium env's
reset(options={"board": ...}) and the vector env's, with bad boards refused."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import renshu  # noqa: F401  (registers the Gymnasium ids)
from renshu.envs import game2048 as g
from renshu.envs.game2048_gym import Game2048Env

# Only "down" is legal on a full top row; the full chequerboard is game over.
TOP_ROW = [[2, 4, 8, 16], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
GAME_OVER = [[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 4, 8]]


def random_tiles(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.integers(1, 16, size=(n, 4, 4)) * (rng.random((n, 4, 4)) < 0.6)
    e[:, 0, 0] = np.maximum(e[:, 0, 0], 1)  # at least one tile
    return np.where(e > 0, 1 << e, 0)


def test_from_tiles_round_trip_and_legal_moves():
    game = g.Game2048()
    tiles = random_tiles(500, seed=0)
    state = game.from_tiles(tiles)
    np.testing.assert_array_equal(g.tiles(state.board).numpy(), tiles)
    np.testing.assert_array_equal(state.legal.numpy(), g.legal_moves(state.board).numpy())
    assert state.score.tolist() == [0] * 500
    np.testing.assert_array_equal(game.observe(state).numpy(), np.log2(np.maximum(tiles, 1)))
    # The known boards: one legal move; none.
    state = game.from_tiles([TOP_ROW, GAME_OVER])
    assert state.legal.tolist() == [[False, False, False, True], [False, False, False, False]]
    state = game.from_tiles([GAME_OVER], score=1234)
    assert state.score.tolist() == [1234]


def test_games_from_tiles_step_like_any_other():
    game = g.Game2048()
    state = game.from_tiles(np.array([TOP_ROW] * 64))
    gen = torch.Generator().manual_seed(0)
    state, reward, terminated = game.step(state, torch.full((64,), 3), gen)  # down
    moved, merge = g.move(g.board_from_tiles(np.array([TOP_ROW] * 64)), torch.full((64,), 3))
    # The moved row sits at the bottom, plus exactly one new 2 or 4 elsewhere.
    after = g.tiles(state.board).numpy()
    np.testing.assert_array_equal(after[:, 3], np.array([[2, 4, 8, 16]] * 64))
    new = after[:, :3].reshape(64, -1)
    assert ((new > 0).sum(1) == 1).all() and set(np.unique(new)) <= {0, 2, 4}
    assert reward.tolist() == merge.tolist() == [0.0] * 64
    assert not terminated.any()


@pytest.mark.parametrize(
    "tiles, message",
    [
        ([[[3, 0, 0, 0]] + [[0] * 4] * 3], r"tiles\[0, 0, 0\] = 3 is not 0 \(empty\) or a power"),
        ([[[2, 1, 0, 0]] + [[0] * 4] * 3], r"tiles\[0, 0, 1\] = 1 is not 0"),
        ([[[2, 0, 0, 0]] + [[0] * 4] * 2 + [[0, 0, 0, 65536]]], r"= 65536 is above 32768"),
        ([[[2, 0, 0, 0]] + [[0, -2, 0, 0]] + [[0] * 4] * 2], r"tiles\[0, 1, 1\] = -2 is not 0"),
        ([[[2.5, 0, 0, 0]] + [[0] * 4] * 3], "whole numbers"),
        (np.zeros((4, 4), dtype=np.int64), r"shape \[n, 4, 4\], got \[4, 4\]"),
        (np.full((2, 4, 5), 2), r"shape \[n, 4, 4\], got \[2, 4, 5\]"),
        (np.full((2, 16), 2), r"shape \[n, 4, 4\], got \[2, 16\]"),
        (np.zeros((2, 4, 4), dtype=np.int64), "at least one tile .board 0."),
        (np.ones((1, 4, 4), dtype=bool), "integers, got dtype torch.bool"),
        ([["a"] * 4] * 4, "array of integers"),
    ],
)
def test_bad_boards_are_refused(tiles, message):
    with pytest.raises(ValueError, match=message):
        g.Game2048().from_tiles(tiles)


def test_largest_tile_is_accepted():
    state = g.Game2048().from_tiles([[[32768, 32768, 0, 0]] + [[0] * 4] * 3])
    assert g.tiles(state.board)[0, 0].tolist() == [32768, 32768, 0, 0]
    assert state.legal[0].tolist() == [False, True, False, True]  # two 32768s do not merge


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_from_tiles_on_cuda():
    state = g.Game2048().from_tiles(random_tiles(8, seed=1), device="cuda")
    assert state.board.device.type == "cuda" and state.legal.device.type == "cuda"


# -- one game through Gymnasium ---------------------------------------------------------------


def test_gym_reset_from_a_board():
    env = gym.make("renshu/Game2048-v0")
    obs, info = env.reset(seed=0, options={"board": TOP_ROW})
    np.testing.assert_array_equal(info["board"], TOP_ROW)
    np.testing.assert_array_equal(obs, np.log2(np.maximum(TOP_ROW, 1)).astype(np.uint8))
    assert info["action_mask"].tolist() == [0, 0, 0, 1]
    assert env.unwrapped.action_masks().tolist() == [False, False, False, True]
    assert info["score"] == 0 and info["max_tile"] == 16
    obs, reward, terminated, _, info = env.step(3)
    assert info["board"][3].tolist() == [2, 4, 8, 16] and not terminated
    # A plain reset afterwards starts a fresh random game again.
    _, info = env.reset()
    assert np.count_nonzero(info["board"]) == 2


def test_gym_reset_from_a_finished_board_ends_at_once():
    env = gym.make("renshu/Game2048-v0")
    _, info = env.reset(seed=0, options={"board": np.array(GAME_OVER)})
    assert info["action_mask"].tolist() == [0, 0, 0, 0]
    _, reward, terminated, truncated, _ = env.step(0)
    assert (reward, terminated, truncated) == (0.0, True, False)


def test_gym_same_board_and_seed_same_game():
    a, b = Game2048Env(), Game2048Env()
    board = random_tiles(1, seed=5)[0]
    a.reset(seed=9, options={"board": board})
    b.reset(seed=9, options={"board": board.tolist()})
    for t in range(60):
        ra, rb = a.step(t % 4), b.step(t % 4)
        np.testing.assert_array_equal(ra[0], rb[0])
        assert ra[1:3] == rb[1:3]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"board": [[3, 0, 0, 0]] + [[0] * 4] * 3}, "is not 0 .empty. or a power of two"),
        ({"board": [TOP_ROW]}, r"shape \[4, 4\], got \[1, 4, 4\]"),
        ({"board": np.zeros((4, 4), dtype=int)}, "at least one tile"),
        ({"boards": TOP_ROW}, r"unknown reset option\(s\) \['boards'\].*valid: board"),
    ],
)
def test_gym_bad_reset_options(options, message):
    env = gym.make("renshu/Game2048-v0")
    with pytest.raises(ValueError, match=message):
        env.reset(seed=0, options=options)


# -- the vector env ---------------------------------------------------------------------------


def test_vector_env_starts_every_game_from_one_board_or_from_one_each():
    envs = gym.make_vec("renshu/Game2048-v0", num_envs=6, vectorization_mode="vector_entry_point")
    obs, info = envs.reset(seed=0, options={"board": TOP_ROW})
    np.testing.assert_array_equal(obs, np.broadcast_to(np.log2(np.maximum(TOP_ROW, 1)), (6, 4, 4)))
    assert info["action_mask"].tolist() == [[0, 0, 0, 1]] * 6
    boards = random_tiles(6, seed=3)
    obs, info = envs.reset(seed=0, options={"board": boards})
    np.testing.assert_array_equal(obs, np.log2(np.maximum(boards, 1)))
    legal = g.legal_moves(g.board_from_tiles(boards)).numpy()
    np.testing.assert_array_equal(info["action_mask"], legal.astype(np.int8))
    with pytest.raises(ValueError, match=r"shape \[4, 4\] or \[6, 4, 4\], got \[5, 4, 4\]"):
        envs.reset(options={"board": boards[:5]})
    with pytest.raises(ValueError, match="above 32768"):
        envs.reset(options={"board": np.full((4, 4), 65536)})


def test_vector_env_game_over_board_ends_then_starts_fresh_games():
    envs = gym.make_vec("renshu/Game2048-v0", num_envs=4, vectorization_mode="vector_entry_point")
    envs.reset(seed=1, options={"board": GAME_OVER})
    obs, reward, terminated, truncated, info = envs.step(np.zeros(4, dtype=np.int64))
    assert terminated.tolist() == [True] * 4 and reward.tolist() == [0.0] * 4
    expected = np.log2(np.array(GAME_OVER)).astype(np.uint8)
    for final in info["final_obs"]:
        np.testing.assert_array_equal(final, expected)
    assert info["final_info"]["max_tile"].tolist() == [8] * 4
    assert info["final_info"]["episode"]["l"].tolist() == [1] * 4
    assert ((obs > 0).reshape(4, -1).sum(1) == 2).all()  # fresh games: two tiles each
