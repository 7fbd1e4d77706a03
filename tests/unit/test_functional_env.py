"""Tests of the FunctionalEnv adapter (renshu.envs.base) around the batched 2048 game.

Every game played here is checked step by step against the scalar reference
(tests/reference_2048.py): rewards, boards (the reference move plus one spawned tile), termination,
action masks, and the finished-episode statistics of auto-reset.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import reference_2048 as ref
from renshu.envs.base import (
    FunctionalEnv,
    TensorEnv,
    state_index,
    state_repeat,
    state_where,
)
from renshu.envs.game2048 import Game2048, board_from_exponents, board_from_tiles, legal_moves

LEFT, RIGHT, UP, DOWN = 0, 1, 2, 3

# Moving left merges 4+4 (reward 8) and leaves one empty cell, (3, 3); whatever lands there, no
# move is left afterwards.
MERGE_INTO_GAME_OVER = [[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 8], [4, 4, 16, 32]]


def board(rows: list[list[int]]) -> torch.Tensor:
    return board_from_tiles([rows])


def make_env(n=8, seed=0, **kwargs) -> FunctionalEnv:
    game_kwargs = {k: kwargs.pop(k) for k in ("obs", "invalid_move") if k in kwargs}
    return FunctionalEnv(Game2048(**game_kwargs), num_envs=n, seed=seed, **kwargs)


def obs_tiles(obs: torch.Tensor) -> np.ndarray:
    """Exponent observations ``[n, 4, 4]`` -> tile values (0 for empty)."""
    e = obs.numpy().astype(np.int64)
    return np.where(e > 0, 1 << e, 0)


def random_legal(mask: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.multinomial(mask.float(), 1, generator=g).squeeze(1)


def assert_fresh_board(t: np.ndarray) -> None:
    """A board just after init: exactly two tiles, each a 2 or a 4."""
    nonzero = t[t > 0]
    assert len(nonzero) == 2, t
    assert set(nonzero.tolist()) <= {2, 4}, t


def assert_move_plus_one_spawn(got: np.ndarray, expected: list[list[int]]) -> None:
    diff = got != np.array(expected)
    assert diff.sum() == 1, (got, expected)
    assert np.array(expected)[diff][0] == 0 and got[diff][0] in (2, 4), (got, expected)


# ---------------------------------------------------------------------------------------------
# reset / step contract.


def test_reset_contract():
    env = make_env(n=8, seed=0)
    assert isinstance(env, TensorEnv)
    assert env.num_envs == 8 and env.num_actions == 4
    assert env.device == torch.device("cpu")
    assert env.action_space == gym.spaces.Discrete(4)
    assert env.observation_space == env.game.observation_space
    obs, info = env.reset()
    assert obs.shape == (8, 4, 4) and obs.dtype == torch.uint8
    assert "action_mask" in info
    mask = info["action_mask"]
    assert mask.shape == (8, 4) and mask.dtype == torch.bool
    for t in obs_tiles(obs):
        assert_fresh_board(t)
    assert mask.tolist() == [ref.legal(t) for t in obs_tiles(obs).tolist()]
    assert all(env.observation_space.contains(o) for o in obs.numpy())


def test_step_contract():
    env = make_env(n=5, seed=1)
    _, info = env.reset()
    g = torch.Generator().manual_seed(0)
    obs, reward, terminated, truncated, info = env.step(random_legal(info["action_mask"], g))
    assert obs.shape == (5, 4, 4) and obs.dtype == torch.uint8
    assert reward.shape == (5,) and reward.dtype == torch.float32
    assert terminated.shape == (5,) and terminated.dtype == torch.bool
    assert truncated.shape == (5,) and truncated.dtype == torch.bool
    assert set(info) >= {"action_mask", "final_obs", "done", "episode"}
    assert info["action_mask"].shape == (5, 4) and info["action_mask"].dtype == torch.bool
    assert info["final_obs"].shape == (5, 4, 4) and info["final_obs"].dtype == torch.uint8
    assert info["done"].dtype == torch.bool
    assert set(info["episode"]) >= {"return", "length", "score", "max_tile"}
    for v in info["episode"].values():
        assert v.shape == (5,)
    # Nothing ended after one step of a fresh game.
    assert not info["done"].any()
    assert info["final_obs"].equal(obs)


@pytest.mark.parametrize("mode", ["exponent", "onehot", "log2", "raw"])
def test_observation_modes_shapes_and_dtypes(mode):
    env = make_env(n=6, seed=3, obs=mode)
    space = env.game.observation_space
    assert env.observation_space is space
    obs, info = env.reset()
    dtype = getattr(torch, np.dtype(space.dtype).name)
    assert obs.shape == (6, *space.shape) and obs.dtype == dtype
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        obs, _, _, _, info = env.step(random_legal(info["action_mask"], g))
        assert obs.shape == (6, *space.shape) and obs.dtype == dtype
        assert info["final_obs"].shape == obs.shape and info["final_obs"].dtype == dtype
        assert all(space.contains(o) for o in obs.numpy())


def test_observation_modes_agree_on_the_same_games():
    """Same seed and actions in every mode: the same games (the obs mode only changes the view)."""
    envs = {m: make_env(n=16, seed=9, obs=m) for m in ("exponent", "onehot", "log2", "raw")}
    first = {m: e.reset() for m, e in envs.items()}
    masks = [first[m][1]["action_mask"] for m in envs]
    obs = {m: first[m][0] for m in envs}
    g = torch.Generator().manual_seed(1)
    for step in range(40):
        for m in masks[1:]:
            assert m.equal(masks[0])
        e = obs["exponent"]
        assert obs["onehot"].argmax(dim=1).to(torch.uint8).equal(e)
        assert (obs["onehot"].sum(dim=1) == 1).all()
        assert obs["log2"].equal(e.float())
        raw = obs["raw"].double() * 2048
        want = torch.where(e > 0, 2.0 ** e.double(), torch.zeros((), dtype=torch.float64))
        assert raw.equal(want)
        if step:
            assert e.count_nonzero() > 2 * 16  # the boards fill up: real play, not reset boards
        a = random_legal(masks[0], g)
        masks, obs = [], {}
        for m, env in envs.items():
            o, _, _, _, info = env.step(a)
            obs[m] = o
            masks.append(info["action_mask"])


# ---------------------------------------------------------------------------------------------
# Whole games against the reference: rewards, boards, termination, auto-reset statistics.


# FunctionalEnv auto-resets in one of two ways: on CPU it re-initialises only the finished rows;
# on accelerators (``sync_free``) it selects between a full batch of fresh games and the old ones.
# Both are run here on CPU by setting the attribute, so the accelerator path is tested too.
AUTO_RESET_PATHS = pytest.mark.parametrize("sync_free", [False, True], ids=["rows", "full-batch"])


@AUTO_RESET_PATHS
def test_random_play_matches_reference_and_auto_resets(sync_free):
    n, steps = 32, 400
    env = make_env(n=n, seed=2024)
    assert env.sync_free is False  # the default on CPU
    env.sync_free = sync_free
    obs, info = env.reset()
    g = torch.Generator().manual_seed(5)
    ret = np.zeros(n)
    length = np.zeros(n, dtype=np.int64)
    finished = 0
    for _ in range(steps):
        before = obs_tiles(obs).tolist()
        a = random_legal(info["action_mask"], g)
        obs, reward, terminated, truncated, info = env.step(a)
        now = obs_tiles(obs)
        final = obs_tiles(info["final_obs"])
        done = info["done"].numpy()
        assert not truncated.any()
        assert np.array_equal(done, terminated.numpy())
        ep = {k: v.numpy() for k, v in info["episode"].items()}
        a_list, rewards, terms = a.tolist(), reward.tolist(), terminated.tolist()
        masks = info["action_mask"].tolist()
        for i in range(n):
            moved, r = ref.move(before[i], a_list[i])
            assert rewards[i] == r
            assert_move_plus_one_spawn(final[i], moved)  # a legal move always changes the board
            legal_final = ref.legal(final[i].tolist())
            assert terms[i] == (not any(legal_final))
            ret[i] += r
            length[i] += 1
            if done[i]:
                assert ep["return"][i] == ret[i]
                assert ep["length"][i] == length[i]
                assert ep["score"][i] == ret[i]
                assert ep["max_tile"][i] == final[i].max()
                assert_fresh_board(now[i])
                assert masks[i] == ref.legal(now[i].tolist())
                ret[i], length[i] = 0, 0
                finished += 1
            else:
                assert np.array_equal(now[i], final[i])
                assert masks[i] == legal_final
    assert finished >= 60, finished  # random play ends a game every ~130 steps (98 here)


@AUTO_RESET_PATHS
def test_auto_reset_on_a_hand_made_terminal_move(sync_free):
    game = Game2048()
    env = FunctionalEnv(game, num_envs=3, seed=0)
    env.sync_free = sync_free
    env.reset()
    # Env 0 and 2 are one move from the end; env 1 keeps its fresh game.
    boards = board_from_tiles([MERGE_INTO_GAME_OVER] * 3)
    kept = env.state
    env.state = state_where(torch.tensor([True, False, True]), game.from_boards(boards), kept)
    kept_obs = game.observe(kept)[1]
    a = torch.tensor([LEFT, int(kept.legal[1].nonzero()[0, 0]), LEFT])
    obs, reward, terminated, truncated, info = env.step(a)
    assert terminated.tolist() == [True, False, True]
    assert truncated.tolist() == [False, False, False]
    assert info["done"].tolist() == [True, False, True]
    moved, r = ref.move(MERGE_INTO_GAME_OVER, LEFT)
    assert r == 8 and reward[0].item() == 8 and reward[2].item() == 8
    final = obs_tiles(info["final_obs"])
    now = obs_tiles(obs)
    for i in (0, 2):
        assert_move_plus_one_spawn(final[i], moved)
        assert ref.game_over(final[i].tolist())
        assert_fresh_board(now[i])
        assert info["action_mask"][i].tolist() == ref.legal(now[i].tolist())
        assert info["episode"]["return"][i].item() == 8
        assert info["episode"]["length"][i].item() == 1
        assert info["episode"]["score"][i].item() == 8
        assert info["episode"]["max_tile"][i].item() == 32
    assert not np.array_equal(now[1], obs_tiles(kept_obs[None])[0])  # env 1 moved on
    assert info["episode"]["length"][1].item() == 1  # ...and is not done (stats still counting)

    # The next episode's statistics start from zero: one more step, then end env 0 again.
    g = torch.Generator().manual_seed(0)
    obs, reward, _, _, info = env.step(random_legal(info["action_mask"], g))
    assert not info["done"].any()
    first_reward = reward[0].item()
    env.state = state_where(torch.tensor([True, False, False]), game.from_boards(boards), env.state)
    a = random_legal(info["action_mask"], g)
    a[0] = LEFT
    _, _, terminated, _, info = env.step(a)
    assert terminated[0]
    assert info["episode"]["length"][0].item() == 2
    assert info["episode"]["return"][0].item() == first_reward + 8


@AUTO_RESET_PATHS
@pytest.mark.parametrize("invalid_move", ["mask", "noop"])
def test_truncation_by_max_episode_steps(invalid_move, sync_free):
    n, limit = 16, 5
    env = make_env(n=n, seed=4, max_episode_steps=limit, invalid_move=invalid_move)
    env.sync_free = sync_free
    obs, info = env.reset()
    g = torch.Generator().manual_seed(2)
    ret = np.zeros(n)
    for t in range(1, 3 * limit + 1):
        before = obs_tiles(obs).tolist()
        a = random_legal(legal_moves(board_from_exponents(obs)), g)  # moves that change the board
        obs, reward, terminated, truncated, info = env.step(a)
        ret += reward.numpy()
        assert not terminated.any()  # no game ends within 5 moves of a fresh board
        at_limit = t % limit == 0
        assert truncated.tolist() == [at_limit] * n
        assert info["done"].tolist() == [at_limit] * n
        final = obs_tiles(info["final_obs"])
        for i in range(n):
            assert_move_plus_one_spawn(final[i], ref.move(before[i], int(a[i]))[0])
        if at_limit:
            assert info["episode"]["length"].tolist() == [limit] * n
            assert np.array_equal(info["episode"]["return"].numpy(), ret)
            assert np.array_equal(info["episode"]["score"].numpy(), ret)
            for o in obs_tiles(obs):
                assert_fresh_board(o)
            ret[:] = 0
        else:
            assert np.array_equal(obs_tiles(obs), final)


# ---------------------------------------------------------------------------------------------
# Non-changing moves: a step with reward 0 in both modes ("mask" masks them, "noop" allows them).


@pytest.mark.parametrize("invalid_move", ["mask", "noop"])
def test_non_changing_move_is_a_counted_noop(invalid_move):
    n, limit = 64, 3
    env = make_env(n=n, seed=8, max_episode_steps=limit, invalid_move=invalid_move)
    obs, info = env.reset()
    legal = legal_moves(board_from_exponents(obs))
    if invalid_move == "noop":
        assert info["action_mask"].all()
    else:
        assert info["action_mask"].equal(legal)
    has_noop = ~legal.all(dim=1)
    assert has_noop.sum() >= 4  # most fresh boards can move every way; some cannot
    # Envs with a non-changing move take it; the others take a changing one.
    a = torch.where(has_noop, (~legal).float().argmax(dim=1), legal.float().argmax(dim=1))
    start = obs.clone()
    for t in range(1, limit + 1):
        obs, reward, terminated, truncated, info = env.step(a)
        assert not terminated.any()
        if t < limit:
            assert obs[has_noop].equal(start[has_noop])  # the board did not change
            assert not obs[~has_noop].equal(start[~has_noop])
        else:
            assert info["final_obs"][has_noop].equal(start[has_noop])
        assert (reward[has_noop] == 0).all()
        if invalid_move == "noop":
            assert info["action_mask"].all()
        else:
            assert info["action_mask"].equal(legal_moves(board_from_exponents(obs)))
    # The no-op steps counted: the episodes were truncated at the step limit with return 0.
    assert truncated.all()
    assert info["episode"]["length"].tolist() == [limit] * n
    assert (info["episode"]["return"][has_noop] == 0).all()


# ---------------------------------------------------------------------------------------------
# Seeding.


def _play(seed: int, steps: int = 200, n: int = 16, action_seed: int = 0):
    env = make_env(n=n, seed=seed)
    obs, info = env.reset()
    g = torch.Generator().manual_seed(action_seed)
    history = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(random_legal(info["action_mask"], g))
        history += [obs, reward, terminated, truncated, info["action_mask"], info["final_obs"]]
    return history


def test_same_seed_same_games():
    a, b = _play(123), _play(123)
    assert len(a) == len(b) == 1 + 6 * 200
    for x, y in zip(a, b, strict=True):
        assert x.equal(y)
    c = _play(124)
    assert not a[0].equal(c[0])  # different first boards
    assert sum(not x.equal(y) for x, y in zip(a, c, strict=True)) > 500


def test_reset_seed_reseeds():
    env = make_env(n=32, seed=None)
    o1, _ = env.reset(seed=7)
    env.step(torch.zeros(32, dtype=torch.int64))
    o2, _ = env.reset(seed=7)
    o3, _ = env.reset(seed=8)
    assert o1.equal(o2)
    assert not o1.equal(o3)
    # A constructor seed is the same as reset(seed=...).
    o4, _ = make_env(n=32, seed=7).reset()
    assert o4.equal(o1)
    # np.int64 seeds are whole numbers too.
    o5, _ = env.reset(seed=np.int64(7))
    assert o5.equal(o1)


# ---------------------------------------------------------------------------------------------
# Bad input.


@pytest.fixture
def env3():
    env = make_env(n=3, seed=0)
    env.reset()
    return env


@pytest.mark.parametrize(
    "actions, match",
    [
        (torch.zeros(4, dtype=torch.int64), r"shape \(3,\)"),
        (torch.zeros(2, dtype=torch.int64), r"shape \(3,\)"),
        (torch.zeros(3, 1, dtype=torch.int64), r"shape \(3,\)"),
        (torch.tensor(0), r"shape \(3,\)"),
        (torch.zeros(3), r"integer dtype"),
        (torch.zeros(3, dtype=torch.float64), r"integer dtype"),
        (np.zeros(3, dtype=np.float32), r"integer dtype"),
        (torch.zeros(3, dtype=torch.bool), r"integer dtype"),
        (torch.tensor([0, 4, 1]), r"\[0, 3\].*env 1 got 4"),
        (torch.tensor([0, 1, -1]), r"\[0, 3\].*env 2 got -1"),
        ("abc", r"integer"),
    ],
)
def test_bad_actions_raise_value_error(env3, actions, match):
    with pytest.raises(ValueError, match=match):
        env3.step(actions)


@pytest.mark.parametrize(
    "container",
    [list, np.array, torch.tensor, lambda a: torch.tensor(a, dtype=torch.uint8)],
    ids=["list", "numpy", "int64", "uint8"],
)
def test_good_action_containers_are_accepted(container):
    """Any integer container works and means the same move (right and down included)."""
    game = Game2048()
    env = FunctionalEnv(game, num_envs=4, seed=0)
    env.reset()
    start = [[0, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    env.state = game.from_boards(board(start).repeat(4))
    obs, reward, *_ = env.step(container([LEFT, RIGHT, UP, DOWN]))
    assert obs.shape == (4, 4, 4)
    t = obs_tiles(obs)
    for i, (r, c) in enumerate([(1, 0), (1, 3), (0, 1), (3, 1)]):
        assert t[i, r, c] == 2, (i, t[i])


@pytest.mark.parametrize("seed", ["abc", 1.5, True])
def test_bad_seed_type_raises_type_error(seed):
    with pytest.raises(TypeError, match="seed must be an int or None"):
        make_env(n=2, seed=seed)
    env = make_env(n=2, seed=0)
    with pytest.raises(TypeError, match="seed must be an int or None"):
        env.reset(seed=seed)


def test_negative_seed_raises_value_error():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        make_env(n=2, seed=-1)


@pytest.mark.parametrize("num_envs", [0, -3, 2.0, "4", True])
def test_bad_num_envs(num_envs):
    with pytest.raises(ValueError, match="num_envs must be a positive int"):
        FunctionalEnv(Game2048(), num_envs=num_envs)


def test_bad_max_episode_steps():
    for bad in (0, -3, 2.5, "abc", True):
        with pytest.raises(ValueError, match="max_episode_steps"):
            FunctionalEnv(Game2048(), num_envs=2, max_episode_steps=bad)


def test_unknown_obs_and_invalid_move_list_valid_values():
    with pytest.raises(ValueError) as e:
        make_env(obs="pixels")
    for valid in ("exponent", "onehot", "log2", "raw", "pixels"):
        assert valid in str(e.value)
    with pytest.raises(ValueError) as e:
        make_env(invalid_move="skip")
    for valid in ("mask", "noop", "skip"):
        assert valid in str(e.value)


def test_step_before_reset_raises():
    env = make_env(n=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, dtype=torch.int64))
    env.reset()
    env.close()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, dtype=torch.int64))


# ---------------------------------------------------------------------------------------------
# State helpers (how GRPO groups and search fork games).


def test_state_helpers_fork_identical_games():
    game = Game2048()
    g = torch.Generator().manual_seed(0)
    state = game.init(3, g)
    rep = state_repeat(state, 4)
    assert rep.board.shape == (12,) and rep.legal.shape == (12, 4)
    assert rep.board.tolist() == [b for b in state.board.tolist() for _ in range(4)]
    assert state_index(rep, 5).board.tolist() == [state.board[1].item()]
    assert state_index(rep, slice(8, 12)).board.tolist() == [state.board[2].item()] * 4
    picked = state_where(torch.tensor([True, False, True]), state, game.init(3, g))
    assert picked.board[0] == state.board[0] and picked.board[2] == state.board[2]
    assert picked.board[1] != state.board[1]


# ---------------------------------------------------------------------------------------------
# Checkpoints: state_dict / load_state_dict continue the very same games.


def test_state_dict_round_trip_continues_the_same_games(tmp_path):
    n = 16
    env = make_env(n=n, seed=31)
    _, info = env.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(150):  # long enough that some games have ended and restarted
        _, _, _, _, info = env.step(random_legal(info["action_mask"], g))
    path = tmp_path / "env.pt"
    torch.save(env.state_dict(), path)
    mask = info["action_mask"]
    actions = []
    history = []
    for _ in range(150):
        a = random_legal(mask, g)
        actions.append(a)
        obs, reward, terminated, truncated, info = env.step(a)
        mask = info["action_mask"]
        history.append((obs, reward, terminated, info["episode"]["return"], info["done"]))
    assert any(h[4].any() for h in history)  # episodes end after the checkpoint too

    other = make_env(n=n, seed=999)  # a different seed, never reset: the checkpoint decides all
    other.load_state_dict(torch.load(path, weights_only=True))
    for a, (obs, reward, terminated, ret, done) in zip(actions, history, strict=True):
        o, r, t, _, info = other.step(a)
        assert o.equal(obs) and r.equal(reward) and t.equal(terminated)
        assert info["done"].equal(done)
        assert info["episode"]["return"][done].equal(ret[done])


# ---------------------------------------------------------------------------------------------
# CUDA (skipped where there is none): the same games as on CPU.


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_env_matches_reference():
    n = 64
    env = make_env(n=n, seed=5, device="cuda")
    assert env.sync_free is True
    obs, info = env.reset()
    assert obs.device.type == "cuda" and info["action_mask"].device.type == "cuda"
    g = torch.Generator().manual_seed(0)
    finished = 0
    for _ in range(300):
        before = obs_tiles(obs.cpu()).tolist()
        a = random_legal(info["action_mask"].cpu(), g)
        obs, reward, terminated, truncated, info = env.step(a.cuda())
        final = obs_tiles(info["final_obs"].cpu())
        now = obs_tiles(obs.cpu())
        rewards, done = reward.cpu().tolist(), info["done"].cpu().tolist()
        for i in range(n):
            moved, r = ref.move(before[i], int(a[i]))
            assert rewards[i] == r
            assert_move_plus_one_spawn(final[i], moved)
            if done[i]:
                assert_fresh_board(now[i])
                finished += 1
            else:
                assert np.array_equal(now[i], final[i])
        assert info["action_mask"].cpu().tolist() == [ref.legal(t) for t in now.tolist()]
    assert finished > 0
