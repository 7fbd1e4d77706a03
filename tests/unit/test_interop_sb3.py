"""renshu's batched games as a Stable-Baselines3 VecEnv (renshu.interop.sb3), and action masks
for sb3-contrib's MaskablePPO on it and on the single-game Gymnasium env. Real SB3 and
sb3-contrib at small budgets."""

import importlib
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from sb3_contrib import MaskablePPO  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_checker import check_env as sb3_check_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper  # noqa: E402

import renshu  # noqa: E402, F401  (registers the Gymnasium ids)
from renshu.envs import game2048 as g  # noqa: E402
from renshu.interop.sb3 import TensorVecEnv, vec_env  # noqa: E402

TOP_ROW = [[2, 4, 8, 16], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_vec_env_api():
    env = vec_env("game2048", num_envs=32, seed=0)
    assert isinstance(env, VecEnv) and env.num_envs == 32
    assert env.observation_space == gym.spaces.Box(0, 15, (4, 4), np.uint8)
    assert env.action_space == gym.spaces.Discrete(4)
    obs = env.reset()
    assert obs.shape == (32, 4, 4) and obs.dtype == np.uint8
    running = np.zeros(32)
    ended = 0
    rng = np.random.default_rng(0)
    for _ in range(400):
        actions = rng.integers(0, 4, size=32)
        before = obs
        obs, rewards, dones, infos = env.step(actions)
        assert rewards.dtype == np.float32 and dones.dtype == np.bool_ and len(infos) == 32
        running += rewards
        for i in np.flatnonzero(dones):
            info = infos[i]
            final = info["terminal_observation"]
            assert final.shape == (4, 4)
            assert not g.legal_moves(g.board_from_exponents(final[None])).any()
            assert info["TimeLimit.truncated"] is False
            assert info["episode"]["r"] == running[i] == info["score"]
            assert info["max_tile"] == 2 ** int(final.max())
            assert np.count_nonzero(obs[i]) == 2  # the next game has started
            running[i] = 0
            ended += 1
        assert all(not infos[i] for i in np.flatnonzero(~dones))
        assert not np.shares_memory(obs, before)
    assert ended > 0
    assert env.get_attr("render_mode") == [None] * 32
    assert env.has_attr("action_masks") and env.env_is_wrapped(Monitor) == [True] * 32
    assert env.env_is_wrapped(gym.wrappers.TimeLimit, indices=[0, 1]) == [False, False]
    with pytest.raises(AttributeError, match="env_method\\('action_masks'\\) only"):
        env.env_method("render")
    env.close()


def test_truncation_is_reported_for_bootstrapping():
    env = vec_env("gridworld", num_envs=4, seed=0, max_episode_steps=3, slip=0.0)
    env.reset()
    for _ in range(3):
        obs, _, dones, infos = env.step(np.zeros(4, dtype=np.int64))  # left: into the wall
    assert dones.all()
    for info in infos:
        assert info["TimeLimit.truncated"] is True and info["episode"]["l"] == 3
        assert info["success"] is False
        np.testing.assert_array_equal(info["terminal_observation"], obs[0])  # still at start


def test_masks_are_the_legal_moves():
    env = vec_env("game2048", num_envs=64, seed=1)
    obs = env.reset()
    rng = np.random.default_rng(1)
    for _ in range(50):
        masks = env.action_masks()
        legal = g.legal_moves(g.board_from_exponents(obs)).numpy()
        np.testing.assert_array_equal(masks, legal)
        np.testing.assert_array_equal(np.stack(env.env_method("action_masks")), legal)
        assert [m.tolist() for m in env.env_method("action_masks", indices=[3])] == [
            legal[3].tolist()
        ]
        obs, *_ = env.step((rng.random(legal.shape) * legal).argmax(1))
    assert not masks.all()


def test_seed_and_board_options():
    def first_obs(seed):
        env = vec_env("game2048", num_envs=8)
        env.seed(seed)
        return env.reset()

    np.testing.assert_array_equal(first_obs(5), first_obs(5))
    assert not np.array_equal(first_obs(5), first_obs(6))
    env = vec_env("game2048", num_envs=3)
    env.set_options({"board": TOP_ROW})
    obs = env.reset()
    np.testing.assert_array_equal(obs[2], np.log2(np.maximum(TOP_ROW, 1)))
    assert env.action_masks().tolist() == [[False, False, False, True]] * 3
    boards = [TOP_ROW, np.array(TOP_ROW) * 2, np.array(TOP_ROW)[::-1]]
    env.set_options([{"board": b} for b in boards])
    obs = env.reset()
    np.testing.assert_array_equal(obs[1], np.log2(np.maximum(boards[1], 1)))
    assert np.count_nonzero(env.reset()) == 6  # options are used once
    env.set_options({"start": 1})
    with pytest.raises(ValueError, match="valid: board"):
        env.reset()


def test_bad_input():
    with pytest.raises(ValueError, match="unknown env option 'colour' for game2048"):
        vec_env("game2048", num_envs=2, colour="red")
    env = vec_env("game2048", num_envs=2)
    env.reset()
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 3\]"):
        env.step(np.array([0, 4]))
    with pytest.raises(ValueError, match="integer array"):
        env.step_async([object(), object()])


def test_missing_sb3_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    monkeypatch.setitem(sys.modules, "stable_baselines3.common.vec_env", None)
    monkeypatch.delitem(sys.modules, "renshu.interop.sb3")
    with pytest.raises(ImportError, match=r"pip install 'renshu\[sb3\]'"):
        importlib.import_module("renshu.interop.sb3")


# -- training with real SB3 and sb3-contrib -----------------------------------------------------


class CountIllegalMoves(gym.Wrapper):
    """Counts the steps whose action was illegal in the board it was taken on."""

    def __init__(self, env):
        super().__init__(env)
        self.illegal = self.steps = 0

    def step(self, action):
        self.illegal += not self.env.unwrapped.action_masks()[int(action)]
        self.steps += 1
        return self.env.step(action)


class CountIllegalVecMoves(VecEnvWrapper):
    """The same count for a VecEnv: each action checked against the mask of its board."""

    def __init__(self, venv):
        super().__init__(venv)
        self.illegal = self.steps = 0

    def step_async(self, actions):
        masks = self.venv.action_masks()
        self.illegal += int((~masks[np.arange(len(actions)), actions]).sum())
        self.steps += len(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        return self.venv.step_wait()

    def reset(self):
        return self.venv.reset()


def test_single_game_env_passes_sb3_checker_and_has_masks():
    env = gym.make("renshu/Game2048-v0").unwrapped
    sb3_check_env(env)
    _, info = env.reset(seed=0)
    np.testing.assert_array_equal(env.action_masks(), info["action_mask"].astype(bool))
    assert env.action_masks().dtype == np.bool_


def test_maskable_ppo_on_the_single_game_env_never_moves_illegally():
    env = CountIllegalMoves(gym.make("renshu/Game2048-v0"))
    model = MaskablePPO("MlpPolicy", env, n_steps=512, batch_size=256, n_epochs=2, seed=0)
    model.learn(2048)
    assert env.steps >= 2048 and env.illegal == 0
    # The count is real: plain PPO, which sees no mask, does make illegal moves.
    plain = CountIllegalMoves(gym.make("renshu/Game2048-v0"))
    PPO("MlpPolicy", plain, n_steps=256, batch_size=256, n_epochs=1, seed=0).learn(256)
    assert plain.illegal > 0


def test_maskable_ppo_on_the_vec_env_never_moves_illegally():
    venv = CountIllegalVecMoves(vec_env("game2048", num_envs=64, seed=0))
    model = MaskablePPO("MlpPolicy", venv, n_steps=64, batch_size=1024, n_epochs=2, seed=0)
    model.learn(8192)
    assert venv.steps >= 8192 and venv.illegal == 0
    assert len(model.ep_info_buffer) > 0  # finished games reached SB3's episode statistics
    # Greedy play with masks stays legal too.
    inner = venv.venv
    obs = inner.reset()
    for _ in range(20):
        masks = inner.action_masks()
        actions, _ = model.predict(obs, action_masks=masks, deterministic=True)
        assert masks[np.arange(64), actions].all()
        obs, *_ = inner.step(actions)


def test_sb3_ppo_learns_cartpole_on_the_vec_env():
    """Bar: SB3 PPO, 16,384 steps on 8 batched CartPoles, then a greedy mean return >= 200
    over 40 episodes of SB3's evaluate_policy (random play: about 22)."""
    env = vec_env("cartpole", num_envs=8, seed=0)
    model = PPO(
        "MlpPolicy", env, n_steps=256, batch_size=256, n_epochs=4, learning_rate=3e-3,
        gamma=0.98, seed=0,
    )  # fmt: skip
    model.learn(16_384)
    lengths = [e["l"] for e in model.ep_info_buffer]
    assert lengths and all(e["r"] == e["l"] for e in model.ep_info_buffer)
    mean, _ = evaluate_policy(model, vec_env("cartpole", num_envs=20, seed=100),
                              n_eval_episodes=40, deterministic=True)  # fmt: skip
    assert mean >= 200, mean


def test_sb3_ppo_runs_on_2048_vec_env_with_onehot_observations():
    env = vec_env("game2048", num_envs=16, seed=0, obs="onehot")
    assert isinstance(env, TensorVecEnv)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=1, seed=0)
    model.learn(1024)
    assert model.num_timesteps >= 1024
    assert torch.isfinite(next(model.policy.parameters())).all()
