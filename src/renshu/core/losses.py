"""PPO's loss as one autograd node, with its gradient in closed form.

For a minibatch of ``n`` transitions with logits ``l`` (illegal actions masked), value ``v``,
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

Written out by hand this is a few tensor ops, where autograd records and replays some forty
small nodes per minibatch; on a CPU, where a 64x64 network's minibatch costs little more than
the ops' overhead, that is about a sixth of a PPO gradient step. ``tests/unit/test_losses.py``
checks the value and every parameter's gradient against the plain autograd formulation.
"""

from __future__ import annotations

import torch

from renshu.core.policy import masked_logits


def ppo_loss_and_grad(
    logits: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    actions: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip_coef: float,
    clip_vloss: bool,
    ent_coef: float,
    vf_coef: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, stats, dL/dlogits, dL/dvalue)`` with no autograd graph: what :func:`ppo_loss`
    computes, for a network that takes its outputs' gradient directly
    (:meth:`~renshu.core.twin_mlp.TwinMLPActorCritic.backward`). Arguments as there."""
    n = logits.shape[0]
    logits = masked_logits(logits, mask)
    logp = torch.log_softmax(logits, dim=-1)
    pi = logp.exp()
    pi_logp = pi * logp
    entropy = -pi_logp.sum(-1)
    logratio = logp.gather(1, actions.unsqueeze(1)).squeeze(1) - old_logprobs
    ratio = logratio.exp()
    neg_adv = -advantages
    surrogate = neg_adv * ratio
    clipped = neg_adv * ratio.clamp(1 - clip_coef, 1 + clip_coef)
    pg_terms = torch.maximum(surrogate, clipped)
    err = value - returns
    if clip_vloss:
        delta = value - old_values
        err_clipped = old_values + delta.clamp(-clip_coef, clip_coef) - returns
        sq, sq_clipped = err.square(), err_clipped.square()
        v_terms = torch.maximum(sq, sq_clipped)
        err_clipped = torch.where(delta.abs() <= clip_coef, err_clipped, 0.0)
        d_value = torch.where(
            sq > sq_clipped,
            err,
            torch.where(sq < sq_clipped, err_clipped, 0.5 * (err + err_clipped)),
        )
    else:
        v_terms = err.square()
        d_value = err
    ratio_m1 = ratio - 1
    clip_terms = (ratio_m1.abs() > clip_coef).to(ratio.dtype)
    # Every statistic is a mean over the minibatch: one stacked mean.
    stats = torch.stack([pg_terms, v_terms, entropy, ratio_m1 - logratio, clip_terms]).mean(1)
    stats[1] *= 0.5  # L_V = 0.5 mean(...)
    loss = stats[0] + vf_coef * stats[1] - ent_coef * stats[2]

    # dL/dlogp[a]; where the two surrogate terms tie the clip is inactive (full gradient).
    g = torch.where(surrogate >= clipped, surrogate, 0.0) / n
    grad_logits = -g.unsqueeze(1) * pi
    grad_logits.scatter_add_(1, actions.unsqueeze(1), g.unsqueeze(1))
    if ent_coef:
        grad_logits += (ent_coef / n) * (pi_logp + pi * entropy.unsqueeze(1))
    if mask is not None:
        grad_logits.masked_fill_(~mask, 0.0)
    return loss, stats, grad_logits, d_value * (vf_coef / n)


class _ClippedSurrogate(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, logits, value, mask, actions, old_logprobs, advantages, old_values, returns,
        clip_coef, clip_vloss, ent_coef, vf_coef,
    ):  # fmt: skip
        loss, stats, grad_logits, grad_value = ppo_loss_and_grad(
            logits, value, mask, actions, old_logprobs, advantages, old_values, returns,
            clip_coef, clip_vloss, ent_coef, vf_coef,
        )  # fmt: skip
        ctx.save_for_backward(grad_logits, grad_value)
        ctx.mark_non_differentiable(stats)
        return loss, stats

    @staticmethod
    def backward(ctx, grad_loss, _grad_stats):
        grad_logits, grad_value = ctx.saved_tensors
        return (grad_logits * grad_loss, grad_value * grad_loss) + (None,) * 10


def ppo_loss(
    logits: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    actions: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip_coef: float,
    clip_vloss: bool,
    ent_coef: float,
    vf_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's loss (differentiable in ``logits [n, A]`` and ``value [n]``) and, detached, its
    statistics ``[policy loss, value loss, entropy, approx KL, clip fraction]``.

    ``mask``: legal actions (bool ``[n, A]``) or None; ``advantages`` as the surrogate uses them
    (normalised or not). See the module docstring for the formulas.
    """
    return _ClippedSurrogate.apply(
        logits, value, mask, actions, old_logprobs, advantages, old_values, returns,
        clip_coef, clip_vloss, ent_coef, vf_coef,
    )  # fmt: skip
