"""FunctionalEnv's CPU auto-reset from a pool of games initialised ahead, and
``reset(seed, state=...)``: episodes that start from given games."""

from __future__ import annotations

import pytest
import torch

from renshu.envs.base import POOL_MIN, FunctionalEnv
from renshu.envs.cartpole import CartPole
from renshu.envs.game2048 import Game2048, board_from_tiles, tiles


def _random_steps(env, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        a = torch.randint(0, env.num_actions, (env.num_envs,), generator=g)
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, info["done"]))
    return out


def test_new_games_come_from_the_pool_in_order_and_it_refills():
    env = FunctionalEnv(Game2048(), num_envs=8, seed=0)
    env.reset()
    assert env._pool is None  # made when the first games end
    ended = 0
    while env._pool is None or ended <= POOL_MIN:  # past one refill
        pool = env._pool
        start = env._pool_next
        _, _, _, _, info = env.step(torch.randint(0, 4, (8,)))
        done = info["done"].nonzero().squeeze(1)
        ended += done.numel()
        if done.numel() and env._pool is pool:  # drawn from the same pool: the next rows
            rows = env._pool.board[start : start + done.numel()]
            assert torch.equal(env.state.board[done], rows)
    assert env._pool_obs.shape[0] == POOL_MIN  # 8 envs: the smallest pool


def test_a_resumed_env_draws_the_same_new_games():
    env = FunctionalEnv(Game2048(), num_envs=16, seed=3)
    env.reset()
    _random_steps(env, 120)
    saved = env.state_dict()
    assert saved["pool"] is not None and saved["pool"]["board"].shape[0] < POOL_MIN
    # only the games not drawn yet, in their own storage
    assert saved["pool"]["board"].untyped_storage().nbytes() == saved["pool"]["board"].nbytes
    after = _random_steps(env, 200, seed=1)
    other = FunctionalEnv(Game2048(), num_envs=16, seed=99)
    other.load_state_dict(saved)
    again = _random_steps(other, 200, seed=1)
    assert sum(int(d.sum()) for _, _, d in after) > 0
    for (o1, r1, d1), (o2, r2, d2) in zip(after, again, strict=True):
        assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(d1, d2)


def test_a_state_saved_before_the_pool_loads_and_plays_on():
    env = FunctionalEnv(Game2048(), num_envs=8, seed=1)
    env.reset()
    _random_steps(env, 50)
    saved = env.state_dict()
    del saved["pool"]
    other = FunctionalEnv(Game2048(), num_envs=8, seed=2)
    other.load_state_dict(saved)
    assert torch.equal(other.state.board, env.state.board)
    assert sum(int(d.sum()) for _, _, d in _random_steps(other, 300)) > 0  # a new pool is made


def test_reset_from_a_given_state():
    game = Game2048()
    board = [[2, 4, 8, 16], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]]
    env = FunctionalEnv(game, num_envs=3, seed=0)
    start = game.from_tiles([board] * 3)
    obs, info = env.reset(seed=5, state=start)
    assert torch.equal(tiles(env.state.board), torch.tensor([board] * 3))
    assert torch.equal(obs, game.observe(start))
    assert torch.equal(info["action_mask"], game.legal_actions(start))
    assert env.episode_length.tolist() == [0, 0, 0] and env.episode_return.tolist() == [0] * 3
    # The seed drives what follows: the same seed and state give the same games.
    first = _random_steps(env, 20)
    env.reset(seed=5, state=start)
    for (o1, r1, _), (o2, r2, _) in zip(first, _random_steps(env, 20), strict=True):
        assert torch.equal(o1, o2) and torch.equal(r1, r2)


@pytest.mark.parametrize(
    "state, match",
    [
        (lambda g: g.from_tiles([[[2] + [0] * 3] + [[0] * 4] * 3] * 2), "has 2 rows; .*num_envs=3"),
        (lambda g: CartPole().init(3, torch.Generator()), "must be a State2048"),
        (lambda g: {"board": board_from_tiles([[[2, 0, 0, 0]] + [[0] * 4] * 3] * 3)}, "State2048"),
    ],
)
def test_reset_refuses_a_state_that_does_not_fit(state, match):
    game = Game2048()
    env = FunctionalEnv(game, num_envs=3, seed=0)
    env.reset()
    before = env.state
    with pytest.raises(ValueError, match=match):
        env.reset(state=state(game))
    assert env.state is before  # nothing changed
