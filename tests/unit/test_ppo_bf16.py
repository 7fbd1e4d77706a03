"""PPO's bfloat16 option: float32 outputs close to the float32 network's, where it applies."""

import pytest
import torch

from renshu.algos.base import update
from renshu.algos.ppo import PPO, PPOConfig
from renshu.core.twin_mlp import TwinMLPActorCritic
from renshu.envs.registry import make_env


def _ppo(env_name: str, bf16: str) -> PPO:
    config = PPOConfig(num_envs=8, num_steps=16, num_minibatches=2, update_epochs=2,
                       hidden=(64, 64), shared_torso=True, bf16=bf16)  # fmt: skip
    return PPO(make_env(env_name, num_envs=8, seed=0), config, seed=0)


def test_bf16_passes_give_float32_outputs_close_to_float32():
    plain, half = _ppo("game2048", "off"), _ppo("game2048", "on")
    assert not plain.policy.bf16 and half.policy.bf16
    obs, _ = make_env("game2048", num_envs=64, seed=1).reset(seed=1)
    logits, value = plain.policy(obs)
    logits16, value16 = half.policy(obs)  # the same weights (same seed)
    assert logits16.dtype == value16.dtype == torch.float32
    torch.testing.assert_close(logits16, logits, atol=0.02, rtol=0.05)  # bfloat16's ~3 digits
    torch.testing.assert_close(value16, value, atol=0.02, rtol=0.05)
    torch.testing.assert_close(half.policy.value(obs), value16)
    torch.testing.assert_close(half.policy.logits(obs), logits16)
    for _ in range(2):  # learning runs through the bfloat16 passes
        _, metrics = update(half, 0.0)
    assert metrics["train/nonfinite_steps"] == 0 and metrics["loss/value"] > 0


def test_auto_leaves_small_vector_mlps_float32():
    ppo = _ppo("cartpole", "auto")
    assert not ppo.policy.bf16
    separate = PPO(make_env("cartpole", num_envs=8, seed=0),
                   PPOConfig(num_envs=8, num_steps=16, bf16="on"), seed=0)  # fmt: skip
    assert isinstance(separate.policy, TwinMLPActorCritic)  # the stacked twin: float32 only
    with pytest.raises(ValueError, match="bf16"):
        PPOConfig(bf16="yes")
