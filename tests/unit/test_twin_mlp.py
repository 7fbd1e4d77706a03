"""TwinMLPActorCritic is ActorCritic's network, stacked: same outputs, same gradients."""

import copy
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from renshu.algos.base import update
from renshu.core.policy import ActorCritic, build_actor_critic
from renshu.core.twin_mlp import TwinMLPActorCritic
from renshu.envs import make_env


def _pair(activation="tanh", hidden=(64, 64), obs_shape=(4,), actions=3, seed=0):
    torch.manual_seed(seed)
    space = gym.spaces.Box(-1, 1, obs_shape, np.float32)
    reference = ActorCritic(space, actions, hidden, activation)
    return reference, TwinMLPActorCritic(reference)


def _flat_grad(reference: ActorCritic) -> torch.Tensor:
    """The reference's gradients in the twin's flat layout (a twin built from the grads)."""
    grads = copy.deepcopy(reference)
    with torch.no_grad():
        for p, q in zip(grads.parameters(), reference.parameters()):
            p.copy_(q.grad)
    return TwinMLPActorCritic(grads).flat.detach()


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("hidden", [(64, 64), (32,), (16, 24, 8)])
def test_outputs_and_gradients_match_actor_critic(activation, hidden):
    reference, twin = _pair(activation, hidden)
    obs = torch.randn(50, 4)
    ref_logits, ref_value = reference(obs)
    logits, value = twin(obs)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=1e-6)
    assert logits.shape == (50, 3) and value.shape == (50,)

    g_logits, g_value = torch.randn_like(logits), torch.randn_like(value)
    ((ref_logits * g_logits).sum() + (ref_value * g_value).sum()).backward()
    ((logits * g_logits).sum() + (value * g_value).sum()).backward()
    torch.testing.assert_close(twin.flat.grad, _flat_grad(reference), rtol=1e-5, atol=1e-6)


def test_image_like_observations_are_flattened_like_mlp_torso():
    reference, twin = _pair(obs_shape=(2, 3))
    obs = torch.randn(7, 2, 3)
    for a, b in zip(twin(obs), reference(obs)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_two_uses_in_one_graph_accumulate_both_gradients():
    """The backward pass reuses a gradient buffer; two nodes of one graph must not clash."""
    reference, twin = _pair()
    o1, o2 = torch.randn(9, 4), torch.randn(5, 4)

    def loss(net):
        l1, v1 = net(o1)
        l2, v2 = net(o2)
        return l1.square().sum() + v1.sum() + l2.sum() * 3 - v2.square().sum()

    loss(reference).backward()
    loss(twin).backward()
    torch.testing.assert_close(twin.flat.grad, _flat_grad(reference), rtol=1e-5, atol=1e-6)


def test_no_grad_logits_and_value_agree_with_forward():
    _, twin = _pair()
    obs = torch.randn(11, 4)
    logits, value = twin(obs)
    with torch.no_grad():
        torch.testing.assert_close(twin.logits(obs), logits.detach())
        torch.testing.assert_close(twin.value(obs), value.detach())
    with pytest.raises(ValueError, match="no encoder features"):
        twin(obs, torch.zeros(11, 3))


def test_weights_written_in_place_or_moved_are_seen():
    """Views of the flat parameter are cached; an optimizer step, ``load_state_dict`` and
    ``.double()`` must all show in the outputs."""
    _, twin = _pair()
    _, other = _pair(seed=1)
    obs = torch.randn(6, 4)
    before = twin.logits(obs).detach()
    opt = torch.optim.Adam(twin.parameters(), lr=0.1, fused=True)
    twin(obs)[0].sum().backward()
    opt.step()
    after_step = twin.logits(obs).detach()
    assert not torch.allclose(before, after_step)

    twin.load_state_dict(other.state_dict())
    torch.testing.assert_close(twin.logits(obs), other.logits(obs))

    twin.double()
    logits, value = twin(obs.double())
    assert logits.dtype == torch.float64
    torch.testing.assert_close(logits.float(), other.logits(obs), rtol=1e-5, atol=1e-6)
    value.sum().backward()  # the backward pass runs in float64 too
    assert twin.flat.grad.dtype == torch.float64


def test_build_actor_critic_picks_the_twin_only_where_it_applies():
    config = SimpleNamespace(hidden=(64, 64), activation="tanh", shared_torso=False)
    cartpole = make_env("cartpole", num_envs=2, seed=0)
    _, policy = build_actor_critic(cartpole, config, seed=3)
    assert isinstance(policy, TwinMLPActorCritic)
    assert len(list(policy.parameters())) == 1

    # Same seed, same initialisation as the plain network.
    torch.manual_seed(3)
    reference = ActorCritic(cartpole.observation_space, 2, (64, 64), "tanh")
    obs = torch.randn(4, 4)
    torch.testing.assert_close(policy.logits(obs), reference.logits(obs))

    shared = SimpleNamespace(hidden=(64, 64), activation="tanh", shared_torso=True)
    assert isinstance(build_actor_critic(cartpole, shared, seed=0)[1], ActorCritic)
    board = make_env("game2048", num_envs=2, seed=0)
    assert isinstance(build_actor_critic(board, config, seed=0)[1], ActorCritic)


@pytest.mark.parametrize("minibatches", [1, 4])
def test_ppo_update_without_autograd_equals_the_autograd_path(monkeypatch, minibatches):
    """PPO's gradient step on the stacked network builds no graph; the same PPO on the plain
    ActorCritic (autograd from the outputs) must reach the same weights and statistics."""
    from renshu.algos.ppo import PPO, PPOConfig
    from renshu.core import policy as policy_module

    config = PPOConfig(
        num_envs=4, num_steps=16, num_minibatches=minibatches, update_epochs=3,
        ent_coef=0.01, learning_rate=1e-2,
    )  # fmt: skip

    def run():
        algo = PPO(make_env("cartpole", num_envs=4, seed=0), config, seed=0)
        metrics = [update(algo, 0.1 * i)[1] for i in range(3)]
        return algo.policy, metrics

    twin, direct_metrics = run()
    assert isinstance(twin, TwinMLPActorCritic)
    monkeypatch.setattr(policy_module, "TwinMLPActorCritic", lambda actor_critic: actor_critic)
    plain, autograd_metrics = run()
    monkeypatch.undo()
    assert isinstance(plain, ActorCritic)
    direct_flat = twin.flat.detach()
    torch.testing.assert_close(direct_flat, TwinMLPActorCritic(plain).flat.detach(),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    for a, b in zip(direct_metrics, autograd_metrics):
        for key in ("loss/policy", "loss/value", "loss/entropy", "train/approx_kl"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-7)
    initial = PPO(make_env("cartpole", num_envs=4, seed=0), config, seed=0).policy.flat
    assert (direct_flat - initial.detach()).abs().max() > 1e-3  # the updates did move them
