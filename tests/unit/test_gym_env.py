"""Gymnasium ids as TensorEnvs (GymEnv), and make_env's fallback to them."""

import gymnasium
import numpy as np
import pytest
import torch

from renshu.envs.base import TensorEnv
from renshu.envs.gym import GymEnv
from renshu.envs.registry import make_env


def _rollout(env, steps: int, seed: int = 0):
    """Random actions; returns per-step outputs and the finished episodes recomputed by hand."""
    gen = torch.Generator().manual_seed(seed)
    obs, info = env.reset(seed=seed)
    running_return = torch.zeros(env.num_envs, dtype=torch.float64)
    running_length = torch.zeros(env.num_envs, dtype=torch.int64)
    trace, finished = [obs], []
    for _ in range(steps):
        actions = torch.randint(0, env.num_actions, (env.num_envs,), generator=gen)
        obs, reward, terminated, truncated, info = env.step(actions)
        running_return += reward.double()
        running_length += 1
        done = info["done"]
        assert torch.equal(done, terminated | truncated)
        for i in done.nonzero().flatten().tolist():
            assert info["episode"]["return"][i].item() == pytest.approx(running_return[i].item())
            assert info["episode"]["length"][i].item() == running_length[i].item()
            finished.append((i, running_length[i].item(), bool(truncated[i])))
        running_return[done] = 0.0
        running_length[done] = 0
        trace.append(torch.cat([obs, reward[:, None], terminated[:, None], truncated[:, None]], 1))
        trace.append(info["final_obs"])
    return trace, finished


def test_cartpole_shapes_dtypes_and_episode_statistics():
    env = GymEnv("CartPole-v1", num_envs=4, seed=0)
    assert isinstance(env, TensorEnv)
    assert env.num_actions == 2 and env.action_space == gymnasium.spaces.Discrete(2)
    assert env.observation_space == gymnasium.make("CartPole-v1").observation_space
    obs, info = env.reset()
    assert obs.shape == (4, 4) and obs.dtype == torch.float32
    assert info["action_mask"].shape == (4, 2) and bool(info["action_mask"].all())
    obs, reward, terminated, truncated, info = env.step(torch.tensor([0, 1, 0, 1]))
    assert reward.dtype == torch.float32 and reward.shape == (4,)
    assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
    assert info["final_obs"].shape == (4, 4) and info["final_obs"].dtype == torch.float32
    assert info["episode"]["length"].dtype == torch.int64
    _, finished = _rollout(env, 120)
    assert len(finished) >= 8  # random CartPole episodes last ~20 steps
    env.close()


def test_auto_reset_returns_final_obs():
    """Pushing one way ends every episode; final_obs is the out-of-bounds state, obs a fresh one."""
    env = GymEnv("CartPole-v1", num_envs=4, seed=1)
    obs, _ = env.reset()
    seen = 0
    for t in range(1, 60):
        prev = obs
        obs, reward, terminated, truncated, info = env.step(torch.ones(4, dtype=torch.int64))
        done = info["done"]
        assert torch.equal(info["final_obs"][~done], obs[~done])
        for i in done.nonzero().flatten().tolist():
            final = info["final_obs"][i]
            assert final[0].abs() > 2.4 or final[2].abs() > 12 * 2 * np.pi / 360
            assert bool((obs[i].abs() <= 0.05).all())
            # final_obs continues the trajectory: the cart moved on from the previous obs
            assert torch.allclose(final[0], prev[i, 0] + 0.02 * prev[i, 1], atol=1e-6)
            assert info["episode"]["length"][i] == t and info["episode"]["return"][i] == t
            seen += 1
        assert bool(terminated[done].all()) and not truncated.any()
        if seen:
            break
    assert seen >= 1
    env.close()


def test_truncation_flags_from_the_time_limit():
    env = GymEnv("CartPole-v1", num_envs=2, seed=2, max_episode_steps=5)
    env.reset()
    for _ in range(4):
        _, _, terminated, truncated, info = env.step(torch.tensor([0, 1]))
        assert not info["done"].any()
    _, _, terminated, truncated, info = env.step(torch.tensor([0, 1]))
    assert truncated.tolist() == [True, True] and terminated.tolist() == [False, False]
    assert info["episode"]["length"].tolist() == [5, 5]
    assert info["episode"]["return"].tolist() == [5.0, 5.0]
    env.close()


def test_sync_and_async_agree_and_seeds_repeat():
    sync = GymEnv("CartPole-v1", num_envs=4, vectorization="sync")
    async_ = GymEnv("CartPole-v1", num_envs=4, vectorization="async")
    try:
        a, finished_a = _rollout(sync, 60, seed=3)
        b, finished_b = _rollout(async_, 60, seed=3)
        c, _ = _rollout(sync, 60, seed=3)
        d, _ = _rollout(sync, 60, seed=4)
    finally:
        sync.close()
        async_.close()
    assert finished_a == finished_b and len(finished_a) > 0
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    assert not torch.equal(a[0], d[0])


def test_make_env_falls_back_to_gymnasium_ids():
    env = make_env("CartPole-v1", num_envs=2, seed=0)
    assert isinstance(env, GymEnv) and env.num_envs == 2
    env.close()


def _to_uint8(env):
    space = gymnasium.spaces.Box(0, 255, (4,), np.uint8)
    return gymnasium.wrappers.TransformObservation(
        env, lambda o: (np.clip(o, -1, 1) * 100 + 127).astype(np.uint8), space
    )


def _to_float64(env):
    space = gymnasium.spaces.Box(-np.inf, np.inf, (4,), np.float64)
    return gymnasium.wrappers.TransformObservation(env, lambda o: o.astype(np.float64), space)


def test_observation_dtypes_and_wrappers():
    env = GymEnv("CartPole-v1", num_envs=2, seed=0, wrappers=_to_uint8)
    obs, _ = env.reset()
    assert obs.dtype == torch.uint8 and obs.shape == (2, 4)
    assert env.observation_space.dtype == np.uint8
    _, _, _, _, info = env.step(torch.tensor([0, 1]))
    assert info["final_obs"].dtype == torch.uint8
    env.close()

    env = GymEnv("CartPole-v1", num_envs=2, seed=0, wrappers=_to_float64)
    obs, _ = env.reset()
    assert obs.dtype == torch.float32
    assert env.observation_space == gymnasium.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    env.close()

    # Discrete observations and gymnasium.make keyword arguments.
    env = GymEnv("FrozenLake-v1", num_envs=2, seed=0, env_kwargs={"is_slippery": False})
    obs, _ = env.reset()
    assert obs.tolist() == [0, 0] and obs.dtype == torch.int64 and env.num_actions == 4
    obs, *_ = env.step(torch.tensor([2, 1]))  # right, down on the 4x4 lake
    assert obs.tolist() == [1, 4]
    env.close()


def test_errors_are_clear():
    with pytest.raises(ValueError, match="unknown Gymnasium id 'CartPole-v9'.*CartPole-v1"):
        GymEnv("CartPole-v9")
    with pytest.raises(ValueError, match="Gymnasium id works") as e:
        make_env("NoSuchGame-v0")
    assert "game2048" in str(e.value)
    with pytest.raises(ValueError, match=r"Pendulum-v1 has action space Box.*Discrete"):
        GymEnv("Pendulum-v1")
    with pytest.raises(ValueError, match="vectorization"):
        GymEnv("CartPole-v1", vectorization="threads")
    env = GymEnv("CartPole-v1", num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.tensor([0, 1]))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        env.step(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.tensor([0]))
    env.close()


def test_atari_without_ale_py_names_the_extra():
    try:
        import ale_py  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"renshu\[atari\]"):
            make_env("ALE/Pong-v5")
    else:
        pytest.skip("ale-py is installed")
