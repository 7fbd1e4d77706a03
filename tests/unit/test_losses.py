"""PPO's loss and its closed-form gradient against the loss written plainly with autograd, and
the log-probability helpers against torch.distributions."""

import pytest
import torch
from torch import nn

from renshu.core.losses import PPOCoefs, PPOMinibatch, ppo_loss_and_grad
from renshu.core.policy import log_prob, log_prob_entropy, masked_logits

N, A, CLIP = 64, 4, 0.2


def _reference(logits, value, mask, actions, old_logp, adv, old_values, returns, clip_vloss,
               ent_coef, vf_coef):  # fmt: skip
    """PPO's loss the textbook way; autograd differentiates it."""
    if mask is not None:
        logits = logits.masked_fill(~mask, -1e8)
    logp_all = torch.log_softmax(logits, -1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    logratio = logp_all.gather(-1, actions[:, None]).squeeze(-1) - old_logp
    ratio = logratio.exp()
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - CLIP, 1 + CLIP)).mean()
    if clip_vloss:
        v_clipped = old_values + (value - old_values).clamp(-CLIP, CLIP)
        v = 0.5 * torch.max((value - returns) ** 2, (v_clipped - returns) ** 2).mean()
    else:
        v = 0.5 * ((value - returns) ** 2).mean()
    ent = entropy.mean()
    kl = ((ratio - 1) - logratio).mean()
    clipfrac = ((ratio - 1).abs() > CLIP).float().mean()
    return pg - ent_coef * ent + vf_coef * v, torch.stack([pg, v, ent, kl, clipfrac]).detach()


def _case(seed: int, masked: bool):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, A + 1))
    obs = torch.randn(N, 6, generator=g)
    mask = torch.rand(N, A, generator=g) > 0.3 if masked else None
    if mask is not None:
        mask[:, 0] = True  # at least one legal action per row
    with torch.no_grad():
        out = net(obs)
        logits = out[:, :A] if mask is None else out[:, :A].masked_fill(~mask, -1e8)
        probs = torch.softmax(logits, -1)
    actions = torch.multinomial(probs, 1, generator=g).squeeze(1)
    old_logp = probs.log().gather(1, actions[:, None]).squeeze(1)
    # Old log-probabilities off by up to +-0.6: ratios well inside and well outside the clip.
    old_logp = old_logp + (torch.rand(N, generator=g) - 0.5) * 1.2
    adv = torch.randn(N, generator=g)  # both signs
    old_values = out[:, A] + torch.randn(N, generator=g) * 0.3  # some value errors clip
    returns = torch.randn(N, generator=g)
    return net, obs, (mask, actions, old_logp, adv, old_values, returns)


def _closed_form(logits, value, mask, actions, old_logp, adv, old_values, returns, clip_vloss,
                 ent_coef, vf_coef):  # fmt: skip
    """renshu's loss, with its output gradients taken through the graph of the outputs (what
    ``ActorCritic.gradient`` does)."""
    mb = PPOMinibatch(None, None, mask, actions, old_logp, adv, old_values, returns)
    coefs = PPOCoefs(CLIP, clip_vloss, ent_coef, vf_coef)
    loss, stats, g_logits, g_value = ppo_loss_and_grad(logits.detach(), value.detach(), mb, coefs)
    torch.autograd.backward((logits, value), (g_logits, g_value))
    return loss, torch.stack(stats)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("clip_vloss", [True, False])
@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
def test_ppo_loss_value_stats_and_gradients_equal_autograd(masked, clip_vloss, ent_coef):
    net, obs, (mask, actions, old_logp, adv, old_values, returns) = _case(3, masked)
    args = (mask, actions, old_logp, adv, old_values, returns)

    out = net(obs)
    ref_loss, ref_stats = _reference(out[:, :A], out[:, A], *args, clip_vloss, ent_coef, 0.5)
    ref_grads = torch.autograd.grad(ref_loss, list(net.parameters()))

    out = net(obs)
    net.zero_grad(set_to_none=True)
    loss, stats = _closed_form(out[:, :A], out[:, A], *args, clip_vloss, ent_coef, 0.5)
    grads = [p.grad for p in net.parameters()]

    # The case exercises what it is meant to: clipped and unclipped ratios, clipped values.
    ratio_clipfrac = float(ref_stats[4])
    assert 0.2 < ratio_clipfrac < 0.9
    assert not loss.requires_grad and not stats.requires_grad
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(stats, ref_stats, rtol=1e-6, atol=1e-6)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_ppo_loss_gradient_is_zero_on_illegal_logits():
    _, _, (mask, actions, old_logp, adv, old_values, returns) = _case(5, masked=True)
    logits = torch.randn(N, A, requires_grad=True)
    value = torch.randn(N, requires_grad=True)
    _closed_form(logits, value, mask, actions, old_logp, adv, old_values, returns, True, 0.01,
                 0.5)  # fmt: skip
    assert logits.grad[~mask].abs().max() == 0
    assert logits.grad[mask].abs().max() > 0
    ref_logits = logits.detach().clone().requires_grad_()
    ref_value = value.detach().clone().requires_grad_()
    ref, _ = _reference(ref_logits, ref_value, mask, actions, old_logp, adv, old_values, returns,
                        True, 0.01, 0.5)  # fmt: skip
    ref.backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(value.grad, ref_value.grad, rtol=1e-5, atol=1e-7)


def test_log_prob_and_entropy_equal_torch_categorical_with_masked_actions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(32, A, generator=g)
    mask = torch.rand(32, A, generator=g) > 0.4
    mask[:, 1] = True
    masked = masked_logits(logits, mask)
    dist = torch.distributions.Categorical(logits=logits.masked_fill(~mask, float("-inf")))
    actions = dist.sample()
    logp, entropy = log_prob_entropy(masked, actions)
    torch.testing.assert_close(log_prob(masked, actions), dist.log_prob(actions))
    torch.testing.assert_close(logp, dist.log_prob(actions))
    torch.testing.assert_close(entropy, dist.entropy())
