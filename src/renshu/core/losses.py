"""The policy-gradient losses: PPO's clipped surrogate (with its gradient in closed form) and
GRPO's group-relative surrogate, with their statistics as named tuples.

PPO. For a minibatch of ``n`` transitions with logits ``l`` (illegal actions masked), value ``v``,
old log-probabilities, advantages ``A``, old values ``v_old`` and returns ``R``::

    logp = log_softmax(l)           pi = exp(logp)           H = -sum_j pi_j logp_j
    r = exp(logp[a] - logp_old)
    L_pi = mean(max(-A r, -A clip(r, 1 - eps, 1 + eps)))
    L_V = 0.5 mean(max((v - R)^2, (v_old + clip(v - v_old, -eps, eps) - R)^2))   (or unclipped)
    L = L_pi - c_H mean(H) + c_V L_V

Its gradient with respect to the network's outputs is short:

* ``dL/dl_ij = g_i (1[j = a_i] - pi_ij) + (c_H / n) pi_ij (logp_ij + H_i)``, where
  ``g_i = -A_i r_i / n`` when the unclipped term is the larger one (the clip is not holding the
  ratio back) and 0 otherwise;
* ``dL/dv_i = (c_V / n)`` times ``v_i - R_i`` or, when the clipped value error is the larger
  one, ``v_clipped_i - R_i`` if ``|v_i - v_old_i| <= eps`` else 0 (ties split evenly, as
  autograd's ``maximum`` does).

:func:`ppo_loss_and_grad` returns both, so a network takes the gradient of its outputs directly
(``ActorCritic.gradient``: one ``autograd.backward`` from the outputs; the stacked
``TwinMLPActorCritic``: its closed-form backward pass, no graph at all) instead of autograd
recording some forty small nodes of the loss per minibatch. ``tests/unit/test_losses.py``
checks value and gradients against the textbook autograd formulation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch

from renshu.core.policy import masked_logits
from renshu.core.returns import kl_k3


class PPOStats(NamedTuple):
    """Means over a minibatch (0-d tensors, detached)."""

    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clipfrac: torch.Tensor


@dataclass(frozen=True)
class PPOCoefs:
    """The coefficients of PPO's loss (the config fields of the same names)."""

    clip_coef: float
    clip_vloss: bool
    ent_coef: float
    vf_coef: float


@dataclass(frozen=True)
class PPOMinibatch:
    """The rollout rows one PPO gradient step learns from."""

    obs: torch.Tensor  # [n, *obs_shape]
    features: torch.Tensor | None  # [n, D] encoder features, or None
    mask: torch.Tensor | None  # bool [n, A] legal actions, or None (all legal)
    actions: torch.Tensor  # int64 [n]
    old_logprobs: torch.Tensor  # [n]
    advantages: torch.Tensor  # [n], as the surrogate uses them (normalised or not)
    old_values: torch.Tensor  # [n]
    returns: torch.Tensor  # [n]

    def rows(self, index: torch.Tensor | slice) -> PPOMinibatch:
        """The minibatch of rows ``index``."""
        return PPOMinibatch(**{k: _take(v, index) for k, v in vars(self).items()})

    def with_advantages(self, advantages: torch.Tensor) -> PPOMinibatch:
        return dataclasses.replace(self, advantages=advantages)


def _take(x: torch.Tensor | None, index: torch.Tensor | slice) -> torch.Tensor | None:
    return None if x is None else x[index]


def ppo_loss_and_grad(
    logits: torch.Tensor, value: torch.Tensor, mb: PPOMinibatch, coefs: PPOCoefs
) -> tuple[torch.Tensor, PPOStats, torch.Tensor, torch.Tensor]:
    """``(loss, stats, dL/dlogits, dL/dvalue)`` of PPO's loss for network outputs ``logits
    [n, A]`` and ``value [n]`` (no autograd graph; see the module docstring)."""
    n = logits.shape[0]
    clip = coefs.clip_coef
    logits = masked_logits(logits, mb.mask)
    logp = torch.log_softmax(logits, dim=-1)
    pi = logp.exp()
    pi_logp = pi * logp
    entropy = -pi_logp.sum(-1)
    logratio = logp.gather(1, mb.actions.unsqueeze(1)).squeeze(1) - mb.old_logprobs
    ratio = logratio.exp()
    neg_adv = -mb.advantages
    surrogate = neg_adv * ratio
    clipped = neg_adv * ratio.clamp(1 - clip, 1 + clip)
    pg_terms = torch.maximum(surrogate, clipped)
    err = value - mb.returns
    if coefs.clip_vloss:
        delta = value - mb.old_values
        err_clipped = mb.old_values + delta.clamp(-clip, clip) - mb.returns
        sq, sq_clipped = err.square(), err_clipped.square()
        v_terms = torch.maximum(sq, sq_clipped)
        err_clipped = torch.where(delta.abs() <= clip, err_clipped, 0.0)
        d_value = torch.where(
            sq > sq_clipped,
            err,
            torch.where(sq < sq_clipped, err_clipped, 0.5 * (err + err_clipped)),
        )
    else:
        v_terms = err.square()
        d_value = err
    ratio_m1 = ratio - 1
    clip_terms = (ratio_m1.abs() > clip).to(ratio.dtype)
    # Every statistic is a mean over the minibatch: one stacked mean.
    means = torch.stack([pg_terms, v_terms, entropy, ratio_m1 - logratio, clip_terms]).mean(1)
    means[1] *= 0.5  # L_V = 0.5 mean(...)
    loss = means[0] + coefs.vf_coef * means[1] - coefs.ent_coef * means[2]

    # dL/dlogp[a]; where the two surrogate terms tie the clip is inactive (full gradient).
    g = torch.where(surrogate >= clipped, surrogate, 0.0) / n
    grad_logits = -g.unsqueeze(1) * pi
    grad_logits.scatter_add_(1, mb.actions.unsqueeze(1), g.unsqueeze(1))
    if coefs.ent_coef:
        grad_logits += (coefs.ent_coef / n) * (pi_logp + pi * entropy.unsqueeze(1))
    if mb.mask is not None:
        grad_logits.masked_fill_(~mb.mask, 0.0)
    return loss, PPOStats(*means), grad_logits, d_value * (coefs.vf_coef / n)


# ---------------------------------------------------------------------------------------------
# GRPO


class GRPOStats(NamedTuple):
    """Diagnostics of one GRPO minibatch (0-d tensors, detached)."""

    policy_loss: torch.Tensor
    kl_ref: torch.Tensor  # mean k3 estimate of the KL to the reference policy (0 without)
    approx_kl: torch.Tensor  # to the policy that collected
    clipfrac: torch.Tensor


def aggregation_weights(episode: torch.Tensor, mode: str) -> torch.Tensor:
    """Weights that turn per-step losses into the aggregated loss (their weighted sum).

    ``episode`` holds the episode (any integer id) of each step. ``"episode"``: ``1 / (L_i * E)``
    on each step of episode i, i.e. the mean over its ``L_i`` steps, then over the ``E``
    episodes; ``"step"``: ``1 / S`` on each of the ``S`` steps.
    """
    if mode == "step":
        return torch.full(episode.shape, 1.0 / max(1, episode.numel()), device=episode.device)
    if mode != "episode":
        raise ValueError(f"loss aggregation must be 'episode' or 'step', got {mode!r}")
    _, inverse, counts = torch.unique(episode, return_inverse=True, return_counts=True)
    return 1.0 / (counts[inverse].float() * counts.numel())


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    weights: torch.Tensor,
    eps_low: float,
    eps_high: float,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, GRPOStats]:
    """GRPO's loss over a batch of steps (all 1-D, one entry per step) and its diagnostics.

    ``sum(weights * -(min(r A, clip(r, 1 - eps_low, 1 + eps_high) A) - beta * k3))`` with
    ``r = exp(logp - old_logp)`` and ``k3 = kl_k3(logp, ref_logp)`` (left out when ``beta`` is 0
    or ``ref_logp`` is None).
    """
    logratio = logp - old_logp
    ratio = logratio.exp()
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - eps_low, 1 + eps_high) * adv)
    policy_loss = -(weights * surrogate).sum()
    loss = policy_loss
    kl = torch.zeros((), device=logp.device)
    if beta > 0 and ref_logp is not None:
        k3 = kl_k3(logp, ref_logp)
        loss = loss + beta * (weights * k3).sum()
        kl = k3.detach().mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio < 1 - eps_low) | (ratio > 1 + eps_high)).float().mean()
    return loss, GRPOStats(policy_loss.detach(), kl, approx_kl, clipfrac)
