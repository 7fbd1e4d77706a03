"""Native CartPole against Gymnasium's CartPole-v1, step for step."""

import gymnasium
import numpy as np
import pytest
import torch

from renshu.envs.base import state_index
from renshu.envs.cartpole import THETA_THRESHOLD, X_THRESHOLD, CartPole, CartPoleState
from renshu.envs.registry import make_env


def _gym_cartpole():
    env = gymnasium.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    return env


def _gym_step(env, state: np.ndarray, action: int) -> tuple[np.ndarray, float, bool]:
    env.state = np.array(state, dtype=np.float64)
    env.steps_beyond_terminated = None
    obs, reward, terminated, truncated, _ = env.step(int(action))
    assert not truncated
    return obs, reward, terminated


def _random_states(n: int, seed: int) -> np.ndarray:
    """States spread over (and a little beyond) the region episodes visit."""
    rng = np.random.default_rng(seed)
    high = np.array([X_THRESHOLD * 1.05, 3.0, THETA_THRESHOLD * 1.1, 3.5])
    return rng.uniform(-high, high, size=(n, 4)).astype(np.float32)


def test_one_step_matches_gymnasium_from_random_states():
    game, gym_env = CartPole(), _gym_cartpole()
    states = _random_states(3000, seed=1)
    actions = np.random.default_rng(2).integers(0, 2, size=len(states))
    new, reward, terminated = game.step(
        game.from_observations(states), torch.as_tensor(actions), torch.Generator()
    )
    obs = game.observe(new).numpy()
    assert obs.dtype == np.float32 and obs.shape == (3000, 4)
    expected = [_gym_step(gym_env, s, a) for s, a in zip(states, actions, strict=True)]
    gym_obs = np.stack([e[0] for e in expected])
    np.testing.assert_allclose(obs, gym_obs, rtol=0, atol=1e-5)
    assert np.abs(obs - gym_obs).max() < 2e-6  # float32 rounding only
    assert terminated.numpy().tolist() == [e[2] for e in expected]
    assert 300 < terminated.sum() < 2700  # both outcomes are well represented
    assert reward.dtype == torch.float32 and bool((reward == 1.0).all())
    assert all(e[1] == 1.0 for e in expected)


def test_termination_at_the_exact_thresholds():
    """A float32 state just inside / just outside a threshold ends exactly as in Gymnasium."""
    game, gym_env = CartPole(), _gym_cartpole()
    x32 = np.float32(X_THRESHOLD)  # 2.4000000953...: just outside in float64
    below = np.nextafter(x32, np.float32(0))  # 2.3999998569...: inside
    t32 = np.float32(THETA_THRESHOLD)
    t_near = [np.nextafter(t32, np.float32(0)), t32, np.nextafter(t32, np.float32(1))]
    # x_dot = theta_dot = 0 keeps x / theta where they are after one step.
    states = np.array(
        [[s * v, 0, 0, 0] for v in (below, x32) for s in (1, -1)]
        + [[0, 0, s * v, 0] for v in t_near for s in (1, -1)],
        dtype=np.float32,
    )
    actions = np.zeros(len(states), dtype=np.int64)
    _, _, terminated = game.step(
        game.from_observations(states), torch.as_tensor(actions), torch.Generator()
    )
    expected = [_gym_step(gym_env, s, 0)[2] for s in states]
    assert expected[:4] == [False, False, True, True]
    assert terminated.tolist() == expected


def test_trajectories_match_gymnasium_step_by_step():
    """200-step trajectories (random actions, auto-reset): gym restarted from the native state."""
    env = make_env("cartpole", num_envs=8, seed=3)
    gym_env = _gym_cartpole()
    obs, _ = env.reset()
    rng = torch.Generator().manual_seed(4)
    episodes = 0
    for _ in range(200):
        actions = torch.randint(0, 2, (8,), generator=rng)
        states = torch.stack(
            [env.state.x, env.state.x_dot, env.state.theta, env.state.theta_dot], 1
        ).numpy()
        np.testing.assert_array_equal(states, obs.numpy())
        obs, reward, terminated, truncated, info = env.step(actions)
        expected = [_gym_step(gym_env, s, a) for s, a in zip(states, actions.tolist(), strict=True)]
        gym_obs = np.stack([e[0] for e in expected])
        np.testing.assert_allclose(info["final_obs"].numpy(), gym_obs, rtol=0, atol=1e-5)
        assert terminated.tolist() == [e[2] for e in expected]
        assert not truncated.any()
        episodes += int(terminated.sum())
    assert episodes > 20  # random play ends episodes after ~20 steps: resets were exercised


def test_float64_state_follows_gymnasium_over_whole_episodes():
    """With a float64 state the native game and Gymnasium run free side by side."""
    game, gym_env = CartPole(dtype=torch.float64), _gym_cartpole()
    gen = torch.Generator().manual_seed(5)
    rng = np.random.default_rng(6)
    for _ in range(5):
        state = game.init(1, gen)
        gym_env.state = np.array(
            [float(v[0]) for v in (state.x, state.x_dot, state.theta, state.theta_dot)]
        )
        gym_env.steps_beyond_terminated = None
        for t in range(500):
            a = int(rng.integers(0, 2)) if t % 4 else int(state.theta[0] > 0)
            state, _, terminated = game.step(state, torch.tensor([a]), gen)
            gym_obs, _, gym_terminated, _, _ = gym_env.step(a)
            np.testing.assert_allclose(game.observe(state).numpy()[0], gym_obs, rtol=0, atol=1e-5)
            assert bool(terminated[0]) == gym_terminated
            if gym_terminated:
                break
        assert t > 5


def test_truncation_at_500_steps_through_the_registry():
    env = make_env("cartpole", num_envs=2, seed=0)
    assert env.max_episode_steps == 500
    env.reset()
    # Put the cart back at rest, pole upright, before every step: only the step limit can end it.
    for t in range(1, 501):
        env.state = CartPoleState(torch.zeros(2, 4))
        obs, reward, terminated, truncated, info = env.step(torch.tensor([0, 1]))
        if t < 500:
            assert not truncated.any() and not info["done"].any()
    assert truncated.tolist() == [True, True] and terminated.tolist() == [False, False]
    assert info["episode"]["length"].tolist() == [500, 500]
    assert info["episode"]["return"].tolist() == [500.0, 500.0]
    assert bool((obs.abs() <= 0.05).all())  # auto-reset to a fresh start


def test_seeded_determinism_and_reset_distribution():
    def run(seed):
        env = make_env("cartpole", num_envs=64, seed=seed)
        out = [env.reset()[0]]
        gen = torch.Generator().manual_seed(0)
        for _ in range(50):
            out.append(env.step(torch.randint(0, 2, (64,), generator=gen))[0])
        return torch.stack(out)

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a, b) and not torch.equal(a, c)

    state = CartPole().init(20_000, torch.Generator().manual_seed(0))
    obs = CartPole().observe(state)
    assert obs.shape == (20_000, 4) and obs.dtype == torch.float32
    assert bool((obs >= -0.05).all()) and bool((obs <= 0.05).all())
    assert torch.allclose(obs.mean(0), torch.zeros(4), atol=2e-3)
    assert torch.allclose(obs.std(0), torch.full((4,), 0.1 / 12**0.5), atol=2e-3)


def test_spaces_masks_and_rendering():
    game = CartPole()
    gym_space = gymnasium.make("CartPole-v1").observation_space
    assert game.observation_space == gym_space
    assert game.num_actions == 2
    state = game.init(3, torch.Generator().manual_seed(0))
    mask = game.legal_actions(state)
    assert mask.shape == (3, 2) and mask.dtype == torch.bool and bool(mask.all())
    assert game.episode_extras(state) == {}
    frame = game.render_rgb(state_index(state, 1), header="step 3")
    assert frame.dtype == np.uint8 and frame.shape == (300, 400, 3)
    assert (frame != 255).any() and (frame == 255).any()


def test_make_cartpole_refuses_options():
    with pytest.raises(ValueError, match="unknown env option 'obs' for cartpole") as e:
        make_env("cartpole", obs="onehot")
    assert "Valid options: max_episode_steps" in str(e.value)  # the one option every env has
