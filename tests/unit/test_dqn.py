"""DQN pieces: epsilon schedule, target updates, dueling head, action masks, bad input."""

import os

import pytest
import torch

from renshu.algos.base import update
from renshu.algos.dqn import DQN, DQNConfig, QNetwork
from renshu.cli import main
from renshu.core.schedules import annealed, linear
from renshu.envs.registry import make_env


def test_linear_epsilon_schedule():
    assert linear(1.0, 0.05, 0.0, fraction=0.1) == 1.0
    assert linear(1.0, 0.05, 0.05, fraction=0.1) == pytest.approx(0.525)
    assert linear(1.0, 0.05, 0.1, fraction=0.1) == pytest.approx(0.05)
    assert linear(1.0, 0.05, 0.7, fraction=0.1) == pytest.approx(0.05)
    assert linear(1.0, 0.05, 0.0, fraction=0.0) == 0.05
    assert annealed(3e-3, True, 0.25) == pytest.approx(2.25e-3)
    assert annealed(3e-3, False, 0.25) == 3e-3
    algo = _dqn(exploration_fraction=0.1, exploration_final_eps=0.05)
    assert algo.exploration(0.05) == pytest.approx(0.525)


def _dqn(**kw):
    values = dict(num_envs=4, hidden=(16,), learning_starts=0, batch_size=8, buffer_size=256)
    values.update(kw)
    env = make_env(kw.pop("env", "cartpole"), num_envs=values["num_envs"], seed=0)
    values.pop("env", None)
    return DQN(env, DQNConfig(**values), seed=0)


def _flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_hard_target_update_every_n_env_steps():
    algo = _dqn(train_freq=8, gradient_steps=1, target_update_interval=24)
    copies = []
    for _ in range(6):  # 8 env steps per update: the target follows at 24 and 48
        before = _flat(algo.target)
        update(algo, 0.0)
        changed = not torch.equal(before, _flat(algo.target))
        copies.append(changed)
    assert copies == [False, False, True, False, False, True]
    # Right after a copy the target equals the online network as it was at that env step;
    # the gradient step that followed in the same update moved the online one on.
    assert not torch.equal(_flat(algo.target), _flat(algo.q))


def test_polyak_target_update():
    algo = _dqn(tau=0.25)
    with torch.no_grad():
        for p in algo.q.parameters():
            p.fill_(1.0)
        for p in algo.target.parameters():
            p.fill_(0.0)
    algo._update_target()
    assert torch.allclose(_flat(algo.target), torch.full_like(_flat(algo.target), 0.25))


def test_dueling_head_splits_value_and_advantage():
    env = make_env("cartpole", num_envs=1)
    net = QNetwork(env.observation_space, 2, (16,), "relu", dueling=True)
    obs = torch.randn(5, 4)
    q = net(obs)
    h = net.torso(obs)
    # Q = V + A - mean(A): the mean over actions is the value stream.
    torch.testing.assert_close(q.mean(-1), net.value(h).squeeze(-1))


def test_exploration_and_greedy_actions_respect_the_action_mask():
    algo = _dqn(env="game2048", num_envs=64, learning_starts=0)
    env = algo.env
    obs, info = env.reset(seed=3)
    for eps_progress in (0.0, 1.0):  # epsilon 1 (all random), then 0.05
        algo.epsilon = algo.exploration(eps_progress)
        for _ in range(30):
            mask = info["action_mask"]
            for deterministic in (True, False):
                a = algo.act(obs, mask, deterministic=deterministic)
                assert bool(mask.gather(1, a.unsqueeze(1)).all())
            obs, _, _, _, info = env.step(algo.act(obs, mask, deterministic=False))
    # The training collector too: every stored action was legal where it was taken.
    for _ in range(4):
        update(algo, 0.0)
    buf = algo.buffer
    rows = buf.size
    legal = buf.data["mask"][:rows].gather(2, buf.actions[:rows].unsqueeze(2))
    assert bool(legal.all())


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="tau"):
        DQNConfig(tau=0.0)
    with pytest.raises(ValueError, match="n_step"):
        DQNConfig(n_step=0)


def test_cli_refuses_a_buffer_that_cannot_fit(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(
        ["train", "dqn", "cartpole", "--buffer-size", str(10**13), "--run-dir", str(run),
         "--no-progress"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "needs" in err and "GB" in err and "--buffer-size" in err
    assert not run.exists()  # refused before anything was written


def test_bf16_autocast_choice_and_float32_q_values():
    import gymnasium as gym
    import numpy as np

    from renshu.core.nets import NatureCNN, make_torso, use_bf16_autocast

    image = gym.spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8)
    vector = gym.spaces.Box(-1, 1, (4,), dtype=np.float32)
    mlp, cnn = make_torso(vector), NatureCNN(4)
    cpu = torch.device("cpu")
    assert use_bf16_autocast("on", cpu, mlp) and not use_bf16_autocast("off", cpu, cnn)
    assert not use_bf16_autocast("auto", cpu, mlp)  # small MLPs stay float32
    flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
    native = "amx_tile" in flags or "avx512_bf16" in flags
    assert use_bf16_autocast("auto", cpu, cnn) == native
    assert DQNConfig().bf16 == "off"  # opt-in
    net = QNetwork(image, 4, (16,), "relu", dueling=True)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    reference = net(obs)
    net.bf16 = True
    q = net(obs)
    assert q.dtype == torch.float32
    torch.testing.assert_close(q, reference, atol=0.05, rtol=0.05)  # bfloat16's ~3 digits
    with pytest.raises(ValueError, match="bf16"):
        DQNConfig(bf16="yes")
