"""TwinMLPActorCritic is ActorCritic's network, stacked: same outputs, same gradients."""

import copy
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from renshu.core.nets import FusedAdam
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
    opt = FusedAdam(twin.parameters(), lr=0.1)
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


def test_fused_adam_equals_torch_adam():
    """FusedAdam's direct kernel call: the same weights, moments and step counts as
    ``torch.optim.Adam(fused=True)``, with gradient scaling and skipped (found_inf) steps."""
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt_ours = FusedAdam(ours, lr=1e-2)
    opt_theirs = torch.optim.Adam(theirs, lr=1e-2, eps=1e-5, fused=True)
    for i in range(12):
        for p, q in zip(ours, theirs):
            g = torch.randn_like(p)
            p.grad, q.grad = g.clone(), g.clone()
        for opt in (opt_ours, opt_theirs):
            opt.grad_scale = torch.tensor(1.0 + i % 3)
            opt.found_inf = torch.tensor(float(i % 5 == 0))
            opt.step()
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt_ours.state[p][key], opt_theirs.state[q][key])
    assert float(opt_ours.state[ours[0]]["step"]) == 12 - 3  # steps 0, 5 and 10 were skipped
    # Its state_dict is torch's: it loads into a plain Adam.
    fresh = torch.optim.Adam([torch.nn.Parameter(p.detach().clone()) for p in ours], fused=True)
    fresh.load_state_dict(opt_ours.state_dict())


@pytest.mark.parametrize("minibatches", [1, 4])
def test_ppo_update_without_autograd_equals_the_autograd_path(monkeypatch, minibatches):
    """PPO feeds the stacked network its outputs' gradient directly; forcing the autograd
    path (loss.backward()) on the same network must give the same weights and statistics."""
    from renshu.algos import ppo as ppo_module
    from renshu.algos.ppo import PPO, PPOConfig

    config = PPOConfig(
        num_envs=4, num_steps=16, num_minibatches=minibatches, update_epochs=3,
        ent_coef=0.01, learning_rate=1e-2,
    )  # fmt: skip

    def run():
        algo = PPO(make_env("cartpole", num_envs=4, seed=0), config, seed=0)
        metrics = [algo.update() for _ in range(3)]
        return algo.policy.flat.detach().clone(), metrics

    direct_flat, direct_metrics = run()
    monkeypatch.setattr(ppo_module, "TwinMLPActorCritic", type("NotTheTwin", (), {}))
    autograd_flat, autograd_metrics = run()
    torch.testing.assert_close(direct_flat, autograd_flat, rtol=1e-5, atol=1e-6)
    for a, b in zip(direct_metrics, autograd_metrics):
        for key in ("loss/policy", "loss/value", "loss/entropy", "train/approx_kl"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-7)
    initial = PPO(make_env("cartpole", num_envs=4, seed=0), config, seed=0).policy.flat
    assert (direct_flat - initial.detach()).abs().max() > 1e-3  # the updates did move them


def test_state_saved_from_actor_critic_loads_and_training_continues_the_same():
    """Runs saved before the twin existed kept ActorCritic's parameters and a 12-parameter
    Adam state: both convert, and the next Adam step matches the one ActorCritic would take."""
    from renshu.core.twin_mlp import twin_optimizer_state

    reference, _ = _pair(hidden=(16, 8))
    ref_opt = torch.optim.Adam(reference.parameters(), lr=1e-2, eps=1e-5, fused=True)
    obs = torch.randn(32, 4)

    def loss_of(net):
        logits, value = net(obs)
        return logits.square().mean() + (value - 1).square().mean()

    for _ in range(3):
        ref_opt.zero_grad()
        loss_of(reference).backward()
        ref_opt.step()

    _, twin = _pair(hidden=(16, 8), seed=7)  # other weights, about to be replaced
    opt = FusedAdam(twin.parameters(), lr=1e-2)
    twin.load_state_dict(reference.state_dict())
    opt.load_state_dict(twin_optimizer_state(ref_opt.state_dict()))
    torch.testing.assert_close(twin.logits(obs), reference.logits(obs))
    assert float(opt.state[twin.flat]["step"]) == 3

    ref_opt.zero_grad()
    loss_of(reference).backward()
    ref_opt.step()
    loss_of(twin).backward()
    opt.step()
    torch.testing.assert_close(twin.flat.detach(), TwinMLPActorCritic(reference).flat.detach())


def test_cartpole_env_state_saved_as_four_fields_loads():
    env = make_env("cartpole", num_envs=3, seed=0)
    env.reset(seed=1)
    saved = env.state_dict()
    s = saved["state"].pop("s")
    saved["state"].update(x=s[:, 0], x_dot=s[:, 1], theta=s[:, 2], theta_dot=s[:, 3])
    other = make_env("cartpole", num_envs=3, seed=5)
    other.load_state_dict(saved)
    assert torch.equal(other.state.s, s)
