"""Atari through ale-py: DeepMind preprocessing, frames stored once in replay, real scores logged,
and a short DQN run end to end (the CI smoke test)."""

import csv
import json

import pytest
import torch

from renshu.algos.base import update

pytest.importorskip("ale_py")

from renshu.algos.dqn import DQN, DQNConfig  # noqa: E402
from renshu.core.buffers import ReplayBuffer  # noqa: E402
from renshu.envs.atari import AtariEnv, rom_for  # noqa: E402
from renshu.envs.registry import make_env  # noqa: E402
from renshu.runner import RunSpec, start_run  # noqa: E402


def test_unknown_game_lists_close_matches():
    with pytest.raises(ValueError, match="'ALE/Breakout-v5'"):
        rom_for("ALE/Breakot-v5")
    assert rom_for("ALE/MontezumaRevenge-v5") == "montezuma_revenge"


def test_observations_and_life_loss():
    env = make_env("ALE/Breakout-v5", num_envs=2, seed=0)
    assert isinstance(env, AtariEnv)
    obs, info = env.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == torch.uint8
    assert env.action_meanings == ("NOOP", "FIRE", "RIGHT", "LEFT")
    # The stack starts with zeros before the first frame; the newest frame is the game screen.
    assert int(obs[:, -1].max()) > 0
    g = torch.Generator().manual_seed(0)
    lost = 0
    for _ in range(400):
        obs, _, terminated, _, info = env.step(torch.randint(4, (2,), generator=g))
        assert obs.shape == (2, 4, 84, 84)
        lost += int(info["life_loss"].sum())
        # Life losses are reported on their own; game over is terminated, not a life loss.
        assert not bool((info["life_loss"] & terminated).any())
    assert lost >= 2
    env.close()


def _stream(env, steps, seed):
    """Random play: per step (obs before, action, reward, terminated, done, final obs)."""
    g = torch.Generator().manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(steps):
        action = torch.randint(env.num_actions, (env.num_envs,), generator=g)
        nxt, reward, terminated, _, info = env.step(action)
        out.append((obs, action, reward, terminated, info["done"], info["final_obs"], nxt))
        obs = nxt
    return out


def test_replay_stores_each_frame_once_and_rebuilds_the_stacks():
    # Short games (time limit 60 steps) so the ring holds episode starts and time-limit cuts.
    env = AtariEnv("ALE/Breakout-v5", num_envs=2, seed=1, max_episode_steps=60)
    stream = _stream(env, 150, seed=1)
    env.close()
    parts = {"obs": ((4, 84, 84), torch.uint8), "mask": ((4,), torch.bool)}
    buf = ReplayBuffer(200, 2, parts, frame_stack=4, max_episode_steps=60)
    ones = torch.ones(2, 4, dtype=torch.bool)
    for obs, action, reward, terminated, done, final, _ in stream:
        buf.add({"obs": obs, "mask": ones}, action, reward, terminated, done,
                {"obs": final, "mask": ones})  # fmt: skip
    # One uint8 84x84 frame per slot: not obs and next obs, not 4 copies.
    assert tuple(buf.data["obs"].shape) == (100, 2, 84, 84)
    assert buf.data["obs"].dtype == torch.uint8
    # Every sampled stack and next stack equals what the env returned. The ring holds the last
    # 100 steps (50..149); with frame stacks the oldest 3 rows lack history and are not drawn.
    b = buf.sample(2000, torch.Generator().manual_seed(0))
    # Ring rows 50..99 hold steps 50..99; rows 0..49 were overwritten by steps 100..149.
    t = torch.where(b.indices // 2 < 50, b.indices // 2 + 100, b.indices // 2)
    env_ids = b.indices % 2
    cuts = 0
    for i in range(2000):
        step, e = int(t[i]), int(env_ids[i])
        obs, action, _, terminated, done, final, nxt = stream[step]
        assert torch.equal(b.obs["obs"][i], obs[e])
        assert int(b.actions[i]) == int(action[e])
        if bool(terminated[e]):
            assert float(b.discounts[i]) == 0.0
        elif bool(done[e]):  # cut by the time limit: bootstrap from the final stack
            assert torch.equal(b.next_obs["obs"][i], final[e])
            cuts += 1
        else:
            assert torch.equal(b.next_obs["obs"][i], nxt[e])
    assert cuts > 0
    assert set(t.tolist()) == set(range(53, 149))


class RawRewards:
    """A pass-through TensorEnv that sums the game's own rewards per episode."""

    def __init__(self, env):
        self.env = env
        self.running = torch.zeros(env.num_envs)
        self.finished: list[float] = []

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, seed=None):
        self.running.zero_()
        return self.env.reset(seed=seed)

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.running += reward
        for i in info["done"].nonzero().flatten().tolist():
            self.finished.append(float(self.running[i]))
            self.running[i] = 0.0
        return obs, reward, terminated, truncated, info


def test_dqn_learns_from_clipped_rewards_but_logs_the_game_score():
    env = RawRewards(AtariEnv("ALE/Breakout-v5", num_envs=4, seed=2, max_episode_steps=150))
    cfg = DQNConfig(
        num_envs=4, buffer_size=2_000, learning_starts=400, train_freq=16, gradient_steps=1,
        batch_size=16, clip_rewards=True, target_update_interval=200,
    )  # fmt: skip
    algo = DQN(env, cfg, seed=0)
    logged = []
    while algo.env_steps < 1_200:
        batch, metrics = update(algo, 0.0)
        logged += batch.episodes.get("return", torch.zeros(0)).tolist()
    assert "loss/td" in metrics and torch.isfinite(torch.tensor(metrics["loss/td"]))
    assert len(logged) >= 4 and logged == env.finished
    assert sum(logged) > 0  # random Breakout play scores a few points
    stored = algo.buffer.rewards[: algo.buffer.size]
    assert set(stored.unique().tolist()) <= {-1.0, 0.0, 1.0}  # learning sees sign(reward)
    env.close()


def test_dqn_breakout_run_end_to_end(tmp_path):
    """CI smoke test: a few thousand DQN steps on Breakout through the runner."""
    spec = RunSpec(
        algo="dqn", env="ALE/Breakout-v5", env_options={"max_episode_steps": 200}, seed=0,
        steps=2_000, eval_every=10**9, eval_episodes=2, animation=True, threads=2,
    )  # fmt: skip
    values = dict(
        num_envs=4, buffer_size=4_000, learning_starts=1_000, train_freq=32, gradient_steps=1,
        batch_size=16,
    )  # fmt: skip
    run_dir, summary = start_run(spec, values, run_dir=tmp_path / "breakout", progress=False)
    assert summary["env_steps"] >= 2_000
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo_config"]["clip_rewards"] is True  # the Atari preset
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert any(r.get("loss/td") for r in rows)
    episodes = list(csv.DictReader((run_dir / "episodes.csv").open()))
    assert episodes and all(float(e["return"]) >= 0 for e in episodes)
    assert (run_dir / "episode.gif").stat().st_size > 0
    assert (run_dir / "learning_curve.png").exists()
    assert (run_dir / "checkpoints" / "latest.pt").exists()
    assert summary["last_eval"]["episodes"] == 2


def test_ppo_breakout_runs(tmp_path):
    """`renshu train ppo ALE/Breakout-v5` works too: two updates, life losses end the GAE."""
    spec = RunSpec(
        algo="ppo", env="ALE/Breakout-v5", env_options={"max_episode_steps": 100}, seed=0,
        steps=256, eval_every=10**9, eval_episodes=1, animation=False, threads=2,
    )  # fmt: skip
    values = dict(num_envs=2, num_steps=64, num_minibatches=2, update_epochs=1)
    run_dir, summary = start_run(spec, values, run_dir=tmp_path / "ppo", progress=False)
    assert summary["env_steps"] == 256 and summary["status"] == "finished"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo_config"]["clip_rewards"] is True
    assert config["algo_config"]["shared_torso"] is True
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert len(rows) == 2 and all(r["loss/policy"] for r in rows)
