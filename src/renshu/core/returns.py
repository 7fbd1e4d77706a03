"""Returns and advantages as pure functions over ``[T, N]`` rollouts (time first, envs second).

Conventions for a rollout collected from a TensorEnv with auto-reset:

* ``rewards[t]``, ``values[t]`` belong to the observation seen at step ``t``.
* ``terminated[t]`` / ``truncated[t]``: the episode ended *after* the action at step ``t``.
  A terminated episode has no future (bootstrap 0); a truncated one was cut by a time limit and
  bootstraps from ``final_values[t]``, the value of its last real observation
  (``info["final_obs"]``), not from the next row, which already belongs to a new episode.
* ``next_value``: the value of the observation that follows the last step (``[N]``).

The loops run over time only and are vectorised over envs.
"""

from __future__ import annotations

import torch


def _bootstrap(
    values_next: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor | None,
) -> torch.Tensor:
    """The value to bootstrap from after each step.

    0 after termination; ``final_values`` after truncation (0 when they are not given, which
    treats a time limit like a termination); the next row's value otherwise.
    """
    ended = terminated | truncated
    at_end = torch.zeros_like(values_next)
    if final_values is not None:
        at_end = torch.where(terminated, at_end, final_values)
    return torch.where(ended, at_end, values_next)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    lam: float,
    final_values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation. Returns ``(advantages, returns)``, both ``[T, N]``.

    ``delta_t = r_t + gamma * boot_t - V_t`` with ``boot_t`` from :func:`_bootstrap`, and
    ``A_t = delta_t + gamma * lam * A_{t+1}`` where the recursion stops at every episode end
    (terminated or truncated). ``returns = advantages + values`` (the value targets).
    """
    T = rewards.shape[0]
    values_next = torch.cat([values[1:], next_value.unsqueeze(0)], dim=0)
    boot = _bootstrap(values_next, terminated, truncated, final_values)
    deltas = rewards + gamma * boot - values
    carry = (~(terminated | truncated)).to(values.dtype) * (gamma * lam)
    advantages = torch.empty_like(values)
    last = torch.zeros_like(next_value)
    for t in range(T - 1, -1, -1):
        last = torch.addcmul(deltas[t], carry[t], last, out=advantages[t])
    return advantages, advantages + values


def normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit (population) standard deviation."""
    return (x - x.mean()) / (x.std(unbiased=False) + eps)


# ---------------------------------------------------------------------------------------------
# GRPO: group-relative advantages over whole episodes (``[..., N]``, envs last, in groups of
# ``group_size`` consecutive envs), and the k3 estimator of the KL to a reference policy.


def reward_to_go(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """``G_t = r_t + gamma * G_{t+1}`` over ``[T, N]`` rewards of single episodes, ``G_T = 0``.

    Steps after an episode's end must carry reward 0 (they then have ``G = 0`` and add nothing).
    """
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def group_advantages(
    scores: torch.Tensor,
    group_size: int,
    valid: torch.Tensor | None = None,
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(score - group mean) / (group std + eps)`` per group. Returns ``(advantages, kept)``.

    ``scores`` is ``[N]`` (one number per episode, e.g. its return) or ``[T, N]`` (one per step,
    e.g. the reward to go); the envs (last dimension) form groups of ``group_size`` consecutive
    envs, ``N / group_size`` groups. The mean and the (population) standard deviation of a group
    run over all its entries where ``valid`` (default: all). A group whose valid scores are all
    equal carries no signal: it is dropped (``kept[g]`` False, advantages 0), and so is a group
    with no valid entry. Invalid entries get advantage 0. ``group_size = N`` normalises over the
    whole batch.
    """
    n = scores.shape[-1]
    if group_size < 1 or n % group_size:
        raise ValueError(f"group_size {group_size} must divide the number of episodes {n}")
    if valid is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    groups = n // group_size
    # [G_count, members]: the group's entries from every leading dimension, in one row.
    x = scores.reshape(-1, groups, group_size).transpose(0, 1).reshape(groups, -1)
    v = valid.reshape(-1, groups, group_size).transpose(0, 1).reshape(groups, -1)
    w = v.to(scores.dtype)
    count = w.sum(1)
    mean = (x * w).sum(1) / count.clamp(min=1)
    std = (((x - mean[:, None]) ** 2 * w).sum(1) / count.clamp(min=1)).sqrt()
    big = torch.finfo(scores.dtype).max
    spread = x.masked_fill(~v, -big).amax(1) - x.masked_fill(~v, big).amin(1)
    kept = (count > 0) & (spread > 0)
    adv = (x - mean[:, None]) / (std[:, None] + eps)
    adv = torch.where(v & kept[:, None], adv, torch.zeros_like(adv))
    adv = adv.reshape(groups, -1, group_size).transpose(0, 1).reshape(scores.shape)
    return adv, kept


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """The k3 estimator of ``KL(pi || pi_ref)`` per sampled action ``a ~ pi`` (Schulman 2020):

    ``k3 = rho - log(rho) - 1`` with ``rho = pi_ref(a) / pi(a)``: never negative, unbiased for
    ``KL(pi || pi_ref)`` under ``a ~ pi``, and (as a loss over fixed samples) its expected gradient
    is the gradient of ``KL(pi_ref || pi)`` (GRPO's KL penalty, DeepSeekMath eq. 4).
    """
    log_rho = ref_logp - logp
    return log_rho.exp() - log_rho - 1


def q_targets(
    returns: torch.Tensor,
    discounts: torch.Tensor,
    next_q: torch.Tensor,
    next_q_target: torch.Tensor,
    next_mask: torch.Tensor | None = None,
    double: bool = True,
) -> torch.Tensor:
    """Bootstrapped Q-learning targets ``y = returns + discounts * Q_target(s', a*)``, ``[B]``.

    ``a*`` is the best legal next action by the online network's ``next_q`` (Double DQN) or by
    the target network itself (``double=False``: plain ``max_a Q_target``). ``discounts`` is
    ``gamma^m`` for an m-step window, 0 where it ended in a terminal.
    """
    chooser = next_q if double else next_q_target
    if next_mask is not None:
        chooser = chooser.masked_fill(~next_mask, float("-inf"))
    best = chooser.argmax(-1, keepdim=True)
    return returns + discounts * next_q_target.gather(-1, best).squeeze(-1)
