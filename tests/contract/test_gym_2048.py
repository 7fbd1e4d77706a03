"""renshu/Game2048-v0 is a real Gymnasium env that follows the batched game's rules."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import renshu  # noqa: F401  (registers the Gymnasium ids)
from renshu.envs import game2048 as g
from renshu.envs.game2048_gym import Game2048Env, legal_mask, move_board


@pytest.mark.parametrize("obs", ["exponent", "onehot", "log2", "raw"])
def test_passes_gymnasium_checker(obs):
    env = gym.make("renshu/Game2048-v0", obs=obs)
    check_env(env.unwrapped, skip_render_check=True)
    o, _ = env.reset(seed=0)
    assert env.observation_space.contains(o)


def test_info_keys_and_values():
    env = gym.make("renshu/Game2048-v0")
    obs, info = env.reset(seed=3)
    for key in ("board", "score", "max_tile", "action_mask"):
        assert key in info
    assert info["board"].shape == (4, 4)
    assert np.count_nonzero(info["board"]) == 2
    assert set(np.unique(info["board"])) <= {0, 2, 4}
    assert info["score"] == 0
    assert info["max_tile"] == info["board"].max()
    np.testing.assert_array_equal(2 ** obs.astype(np.int64) * (obs > 0), info["board"])
    total = 0.0
    for _ in range(50):
        action = int(np.flatnonzero(info["action_mask"])[0])
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        assert info["score"] == total
        assert info["max_tile"] == info["board"].max()
        if terminated:
            break


def test_scalar_path_matches_batched_game():
    rng = np.random.default_rng(0)
    exps = rng.integers(0, 12, size=(3000, 4, 4)) * (rng.random((3000, 4, 4)) < 0.7)
    boards = g.board_from_exponents(torch.as_tensor(exps))
    legal = g.legal_moves(boards)
    for action in range(4):
        moved, reward = g.move(boards, torch.full((3000,), action))
        for i in range(0, 3000, 7):
            b = int(boards[i]) & ((1 << 64) - 1)
            new, r = move_board(b, action)
            assert new == int(moved[i]) & ((1 << 64) - 1)
            assert r == reward[i].item()
            assert legal_mask(b)[action] == legal[i, action].item()


def test_illegal_move_is_noop_and_game_ends():
    env = Game2048Env()
    env.reset(seed=1)
    env.board = int(g.board_from_tiles([[2, 4, 8, 16], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    env._legal = legal_mask(env.board)
    before = env.board
    _, reward, terminated, _, info = env.step(0)  # left changes nothing
    assert (reward, terminated, env.board) == (0.0, False, before)
    assert info["action_mask"].tolist() == [0, 0, 0, 1]  # a full top row can only go down
    full = [[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 4, 8]]
    env.board = int(g.board_from_tiles(full))
    env._legal = legal_mask(env.board)
    _, _, terminated, _, _ = env.step(0)
    assert terminated


def test_same_seed_same_game_and_bad_action():
    a, b = Game2048Env(), Game2048Env()
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    for t in range(100):
        action = t % 4
        ra = a.step(action)
        rb = b.step(action)
        np.testing.assert_array_equal(ra[0], rb[0])
        assert ra[1:3] == rb[1:3]
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        a.step(4)


def test_make_vec_steps_a_batch():
    envs = gym.make_vec("renshu/Game2048-v0", num_envs=3)
    obs, info = envs.reset(seed=0)
    assert obs.shape == (3, 4, 4) and info["action_mask"].shape == (3, 4)
    obs, reward, terminated, truncated, info = envs.step(np.array([0, 1, 2]))
    assert obs.shape == (3, 4, 4) and reward.shape == (3,)
    envs.close()


def test_render_modes():
    env = Game2048Env(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    env = Game2048Env(render_mode="ansi")
    env.reset(seed=0)
    assert "score 0" in env.render()
    with pytest.raises(ValueError, match="render_mode"):
        Game2048Env(render_mode="human")
