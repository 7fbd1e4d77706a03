"""Group Relative Policy Optimization (GRPO): a clipped policy gradient without a critic.

GRPO (DeepSeekMath, DeepSeek-R1) judges each episode against the other episodes of its group
instead of against a learned value. ``collect`` plays the groups (1), ``learn`` does 2 and 3:

1. **Groups.** The ``group_size * num_groups`` envs are reset so that each block of
   ``group_size`` envs starts from one identical state (``group_start="same"``: a native game's
   initial state repeated, or Gymnasium copies reset with the same seed), or from independent
   random states (``"random"``, what the simplified CartPole versions do). Every env then plays
   exactly one episode with the current policy; the batch steps until all have ended (or
   ``max_rollout_steps``), and steps after an env's episode ended are masked out.
2. **Advantages.** ``reward="outcome"``: the episode return R_i, the same advantage on every
   step of the episode; ``"return_to_go"``: the discounted return from each step. Either is
   standardised within its group, ``A = (x - mean) / (std + 1e-8)`` (population std over the
   group's episodes, or over all steps of the group's episodes), or over the whole batch
   (``adv_norm="batch"``). A group whose scores are all equal holds no signal and is dropped.
3. **Learning.** ``update_epochs`` passes over the kept steps (``num_minibatches`` minibatches of
   whole groups each), one batched forward per minibatch, minimising

       L = -agg[ min(r A, clip(r, 1 - eps_low, 1 + eps_high) A) - beta * k3(pi, pi_ref) ]

   with ``r = pi(a|s) / pi_old(a|s)`` on the log-probabilities stored at collection, and
   ``k3`` the KL estimator to a frozen reference policy (the initial one, or refreshed every
   ``ref_refresh`` updates). ``agg`` is ``loss_aggregation``: ``"episode"`` averages over each
   episode's steps and then over episodes (every episode weighs the same, so a step of a short
   episode weighs more than a step of a long one), ``"step"`` averages over all steps.

There is no value network, no GAE and no bootstrapping; ``env_steps`` counts the steps of the
episodes played (the masked steps after an episode's end are not counted).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import nn

from renshu.algos.base import Algorithm
from renshu.config import check, check_fields, check_network
from renshu.core.losses import GRPOStats, aggregation_weights, grpo_loss
from renshu.core.nets import adam, guarded_step, layer_init, make_torso
from renshu.core.policy import (
    action_probabilities,
    load_policy_acting_state,
    log_prob,
    masked_logits,
    policy_acting_state,
    policy_actions,
    sample,
)
from renshu.core.returns import group_advantages, reward_to_go
from renshu.core.schedules import annealed, set_learning_rate

ADV_EPS = 1e-8


@dataclass(frozen=True)
class GRPOConfig:
    group_size: int = 8
    """episodes per group, compared with each other (>= 2)"""
    num_groups: int = 4
    """groups per update (the envs stepped in parallel are group_size * num_groups)"""
    group_start: str = "same"
    """same: a group's episodes start from one identical state; random: from independent states"""
    reward: str = "outcome"
    """outcome: the episode return on every step; return_to_go: the discounted return from
    each step"""
    gamma: float = 1.0
    """discount of reward=return_to_go"""
    adv_norm: str = "group"
    """standardise advantages within each group, or over the whole batch (batch)"""
    learning_rate: float = 1e-3
    """Adam learning rate"""
    anneal_lr: bool = False
    """anneal the learning rate linearly to 0 over the run's budget"""
    update_epochs: int = 4
    """passes over each batch of episodes, all against the log-probabilities of collection"""
    num_minibatches: int = 1
    """minibatches (of whole groups) per pass; must divide num_groups"""
    clip_eps: float = 0.2
    """clipping epsilon of the importance ratio (the lower one when clip_eps_high is set)"""
    clip_eps_high: float | None = None
    """upper clipping epsilon (None: clip_eps)"""
    beta: float = 0.0
    """coefficient of the KL penalty to the reference policy (k3 estimator; DeepSeek-R1: 0.001)"""
    ref_refresh: int = 0
    """copy the policy into the reference policy every this many updates (0: keep the initial)"""
    loss_aggregation: str = "episode"
    """episode: mean over each episode's steps, then over episodes; step: mean over all steps"""
    max_grad_norm: float = 1.0
    """gradient norm clipping threshold"""
    max_rollout_steps: int = 10_000
    """longest a collection runs; episodes still going then end there (their return so far)"""
    hidden: tuple[int, ...] = (64, 64)
    """hidden layer sizes of the policy network"""
    activation: str = "tanh"
    """activation of the hidden layers: tanh or relu"""

    @property
    def num_envs(self) -> int:
        """Environments stepped in parallel: one per episode of a batch."""
        return self.group_size * self.num_groups

    @property
    def env_multiple(self) -> int:
        """A Ray worker's share of the envs holds whole groups."""
        return self.group_size

    def __post_init__(self):
        check(self.group_size >= 2, "group_size", "must be >= 2 (a group compares episodes)",
              self.group_size)  # fmt: skip
        check_fields(
            self, at_least_1=("num_groups", "update_epochs", "num_minibatches",
                              "max_rollout_steps"),
            at_least_0=("ref_refresh",), positive=("learning_rate", "max_grad_norm"),
            unit=("gamma",),
            choices={"group_start": ("same", "random"), "reward": ("outcome", "return_to_go"),
                     "adv_norm": ("group", "batch"), "loss_aggregation": ("episode", "step")},
        )  # fmt: skip
        check(
            self.num_groups % self.num_minibatches == 0,
            "num_minibatches",
            f"must divide num_groups = {self.num_groups}",
            self.num_minibatches,
        )
        check(0 < self.clip_eps < 1, "clip_eps", "must lie in (0, 1)", self.clip_eps)
        check(
            self.clip_eps_high is None or self.clip_eps_high > 0,
            "clip_eps_high",
            "must be > 0 (or None)",
            self.clip_eps_high,
        )
        check(math.isfinite(self.beta) and self.beta >= 0, "beta", "must be >= 0", self.beta)
        check_network(self.hidden, self.activation)


class PolicyNet(nn.Module):
    """Action logits only (GRPO has no critic)."""

    def __init__(self, observation_space, num_actions: int, hidden, activation: str):
        super().__init__()
        self.torso = make_torso(observation_space, hidden, activation)
        self.head = layer_init(nn.Linear(self.torso.out_dim, num_actions), gain=0.01)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.torso(obs))

    forward = logits


@dataclass
class Episodes:
    """One batch of episodes, one per env, stored as ``[T, N]`` (time first)."""

    obs: torch.Tensor  # [T, N, *obs_shape]
    masks: torch.Tensor  # bool [T, N, A]
    actions: torch.Tensor  # int64 [T, N]
    logprobs: torch.Tensor  # [T, N] under the policy that acted
    rewards: torch.Tensor  # [T, N], 0 after the episode's end
    valid: torch.Tensor  # bool [T, N]: the step belongs to the env's episode
    finished: torch.Tensor  # bool [N]: the episode ended (not cut by max_rollout_steps)
    stats: dict[str, torch.Tensor]  # the env's finished-episode statistics, [N] each

    @property
    def env_steps(self) -> int:
        """The steps of the episodes played (not the masked steps after an episode's end)."""
        return int(self.valid.sum())

    @property
    def episodes(self) -> dict[str, torch.Tensor]:
        return {k: v[self.finished] for k, v in self.stats.items()}

    @classmethod
    def concat(cls, parts: Sequence[Episodes]) -> Episodes:
        """Batches of consecutive env slices joined along the env axis; the shorter ones are
        padded along time with steps that are not ``valid``."""
        if len(parts) == 1:
            return parts[0]
        length = max(p.obs.shape[0] for p in parts)
        fills = {"masks": True, "valid": False}
        joined = {}
        for name in ("obs", "masks", "actions", "logprobs", "rewards", "valid"):
            padded = [_pad_time(vars(p)[name], length, fills.get(name, 0)) for p in parts]
            joined[name] = torch.cat(padded, dim=1)
        joined["finished"] = torch.cat([p.finished for p in parts])
        joined["stats"] = {k: torch.cat([p.stats[k] for p in parts]) for k in parts[0].stats}
        return cls(**joined)


def _pad_time(x: torch.Tensor, length: int, fill: float | bool = 0) -> torch.Tensor:
    """``x`` [T, ...] padded along time to ``length`` with ``fill``."""
    if x.shape[0] == length:
        return x
    pad = torch.full((length - x.shape[0], *x.shape[1:]), fill, dtype=x.dtype, device=x.device)
    return torch.cat([x, pad])


@dataclass(frozen=True)
class GRPOMinibatch:
    """The kept steps of a batch, flat (one row per step), as learning reads them."""

    obs: torch.Tensor
    masks: torch.Tensor
    actions: torch.Tensor
    old_logprobs: torch.Tensor
    advantages: torch.Tensor
    ref_logprobs: torch.Tensor | None  # under the reference policy (beta > 0), else None
    episode: torch.Tensor  # int64: the episode (env index) of each step

    def rows(self, index: torch.Tensor | slice) -> GRPOMinibatch:
        ref = None if self.ref_logprobs is None else self.ref_logprobs[index]
        return GRPOMinibatch(
            self.obs[index], self.masks[index], self.actions[index], self.old_logprobs[index],
            self.advantages[index], ref, self.episode[index],
        )  # fmt: skip


class GRPO(Algorithm):
    name = "grpo"
    config_class = GRPOConfig
    takes_encoder = False

    def __init__(
        self, env, config: GRPOConfig, seed: int = 0, *, encoder=None, learner: bool = True
    ):
        if encoder is not None:
            raise ValueError("GRPO takes no encoder features; --encoder works with dqn and ppo")
        if env.num_envs % config.group_size:
            raise ValueError(
                f"GRPO plays one episode per env in groups of group_size = {config.group_size}; "
                f"the env has num_envs = {env.num_envs} (a run makes group_size * num_groups = "
                f"{config.num_envs})"
            )
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"GRPO needs a discrete action space; {env!r} has {env.action_space}")
        if config.group_start == "same" and not env.supports_groups:
            raise ValueError(
                f"{env!r} cannot start a group's episodes from one state; use group_start='random'"
            )
        self.env = env
        self.config = config
        self.device = env.device
        self.generator = torch.Generator(device=env.device).manual_seed(seed)
        torch.manual_seed(seed)  # network initialisation
        self.policy = PolicyNet(
            env.observation_space, env.num_actions, config.hidden, config.activation
        ).to(env.device)
        self.params = list(self.policy.parameters())
        self.ref_policy = self._frozen_copy() if config.beta > 0 else None
        self.optimizer = adam(self.params, config.learning_rate)
        self.env_steps = 0
        self.updates = 0
        if config.group_start == "same":
            # Fail now, not in the first update, if the env cannot form same-start groups.
            env.reset_groups(config.group_size, seed=self._draw_seed())

    @property
    def steps_per_update(self) -> int:
        """The fewest env steps an update takes (one per episode); most take many more."""
        return self.config.num_envs

    def act(self, obs: torch.Tensor, mask: torch.Tensor | None = None, deterministic=True):
        return policy_actions(self.policy, obs, mask, deterministic, self.generator)

    def action_values(self, obs: torch.Tensor, mask: torch.Tensor | None = None):
        return action_probabilities(self.policy, obs, mask)

    def _frozen_copy(self) -> nn.Module:
        ref = copy.deepcopy(self.policy)
        ref.requires_grad_(False)
        return ref

    def _draw_seed(self) -> int:
        return int(torch.randint(2**31 - 1, (), generator=self.generator, device=self.device))

    # -- collection ---------------------------------------------------------------------------

    def reset_batch(self) -> tuple[torch.Tensor, dict]:
        """Reset the env for a new batch of groups (same-start or random-start)."""
        seed = self._draw_seed()
        if self.config.group_start == "same":
            return self.env.reset_groups(self.config.group_size, seed=seed)
        return self.env.reset(seed=seed)

    @torch.no_grad()
    def collect(self, progress: float = 0.0) -> Episodes:
        """Play one episode per env with the current policy, all envs stepped together."""
        env, cfg = self.env, self.config
        obs, info = self.reset_batch()
        mask = info["action_mask"]
        n, dev = env.num_envs, self.device
        alive = torch.ones(n, dtype=torch.bool, device=dev)
        stats: dict[str, torch.Tensor] = {}
        names = ("obs", "masks", "actions", "logprobs", "rewards", "valid")
        buf: dict[str, list[torch.Tensor]] = {k: [] for k in names}
        check_every = 1 if dev.type == "cpu" else 16  # host syncs: free on CPU, rarer elsewhere
        for t in range(cfg.max_rollout_steps):
            logits = masked_logits(self.policy.logits(obs), mask)
            action = sample(logits, self.generator)
            logp = log_prob(logits, action)
            buf["obs"].append(obs)
            buf["masks"].append(mask)
            buf["actions"].append(action)
            buf["logprobs"].append(logp)
            buf["valid"].append(alive)
            obs, reward, _, _, info = env.step(action)
            mask = info["action_mask"]
            buf["rewards"].append(reward * alive)
            ended = info["done"] & alive
            for key, value in info["episode"].items():
                if key not in stats:
                    stats[key] = torch.zeros_like(value)
                stats[key] = torch.where(ended, value, stats[key])
            alive = alive & ~info["done"]
            if (t + 1) % check_every == 0 and not bool(alive.any()):
                break
        out = {k: torch.stack(v) for k, v in buf.items()}
        return Episodes(
            out["obs"], out["masks"], out["actions"], out["logprobs"], out["rewards"],
            out["valid"], ~alive, stats,
        )  # fmt: skip

    # -- advantages ---------------------------------------------------------------------------

    def advantages(self, ep: Episodes) -> tuple[torch.Tensor, torch.Tensor]:
        """``(advantages [T, N], kept [N])``: zero on invalid steps and dropped groups."""
        cfg = self.config
        size = cfg.group_size if cfg.adv_norm == "group" else ep.rewards.shape[1]
        if cfg.reward == "outcome":
            adv, kept = group_advantages(ep.rewards.sum(0), size, eps=ADV_EPS)
            adv = adv.unsqueeze(0) * ep.valid
        else:
            scores = reward_to_go(ep.rewards, cfg.gamma)
            adv, kept = group_advantages(scores, size, ep.valid, eps=ADV_EPS)
        return adv, kept.repeat_interleave(size)

    # -- learning -----------------------------------------------------------------------------

    def kept_steps(self, ep: Episodes) -> tuple[GRPOMinibatch, torch.Tensor]:
        """The kept steps, episode by episode ([N, T] order), and whether each group is kept."""
        adv, kept = self.advantages(ep)
        steps = (ep.valid & kept).t()
        env_of_step = torch.arange(steps.shape[0], device=self.device)[:, None].expand_as(steps)
        b_obs = ep.obs.transpose(0, 1)[steps]
        b_masks = ep.masks.transpose(0, 1)[steps]
        b_actions = ep.actions.t()[steps]
        b_ref = None
        if self.config.beta > 0 and b_actions.numel():
            with torch.no_grad():
                ref_logits = masked_logits(self.ref_policy.logits(b_obs), b_masks)
                b_ref = log_prob(ref_logits, b_actions)
        mb = GRPOMinibatch(
            b_obs, b_masks, b_actions, ep.logprobs.t()[steps], adv.t()[steps], b_ref,
            env_of_step[steps],
        )  # fmt: skip
        return mb, kept

    def learn(self, ep: Episodes, progress: float) -> dict[str, float]:
        cfg = self.config
        lr = set_learning_rate(self.optimizer, annealed(cfg.learning_rate, cfg.anneal_lr, progress))
        lengths = ep.valid.sum(0)
        self.env_steps += int(lengths.sum())
        batch, kept = self.kept_steps(ep)
        groups = ep.rewards.shape[1] // cfg.group_size
        group_of_step = batch.episode // cfg.group_size

        sums = torch.zeros(len(GRPOStats._fields), device=self.device)
        count = torch.zeros((), device=self.device)
        skipped = torch.zeros((), device=self.device)
        if batch.actions.numel():
            per_mb = max(1, groups // cfg.num_minibatches)
            for _ in range(cfg.update_epochs):
                order = torch.randperm(groups, generator=self.generator, device=self.device)
                for start in range(0, groups, per_mb):
                    if per_mb >= groups:
                        mb = batch  # one minibatch: every kept step, no copy
                    else:
                        chosen = torch.zeros(groups, dtype=torch.bool, device=self.device)
                        chosen[order[start : start + per_mb]] = True
                        idx = chosen[group_of_step].nonzero().squeeze(1)
                        if idx.numel() == 0:
                            continue
                        mb = batch.rows(idx)
                    loss, stats = self._loss(mb)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    skipped += guarded_step(self.optimizer, self.params, cfg.max_grad_norm, loss)
                    sums += torch.stack(stats)
                    count += 1
        means = GRPOStats(*(sums / count.clamp(min=1)).tolist())

        self.updates += 1
        if self.ref_policy is not None and cfg.ref_refresh and self.updates % cfg.ref_refresh == 0:
            self.ref_policy.load_state_dict(self.policy.state_dict())

        metrics = {
            "loss/policy": means.policy_loss,
            "train/approx_kl": means.approx_kl,
            "train/clipfrac": means.clipfrac,
            "train/groups_kept": float(kept.float().mean()),
            "train/episode_length": float(lengths.float().mean()),
            "train/return_mean": float(ep.rewards.sum(0).mean()),
            "train/learning_rate": lr,
            "train/nonfinite_steps": int(skipped),
        }
        if cfg.beta > 0:
            metrics["train/kl_ref"] = means.kl_ref
        return metrics

    def _loss(self, mb: GRPOMinibatch) -> tuple[torch.Tensor, GRPOStats]:
        """GRPO's loss on the steps of ``mb`` (whole groups)."""
        cfg = self.config
        logits = masked_logits(self.policy.logits(mb.obs), mb.masks)
        logp = log_prob(logits, mb.actions)
        weights = aggregation_weights(mb.episode, cfg.loss_aggregation)
        eps_high = cfg.clip_eps if cfg.clip_eps_high is None else cfg.clip_eps_high
        return grpo_loss(
            logp, mb.old_logprobs, mb.advantages, weights, cfg.clip_eps, eps_high, cfg.beta,
            mb.ref_logprobs,
        )  # fmt: skip

    # -- checkpoints --------------------------------------------------------------------------

    acting_state = policy_acting_state
    load_acting_state = load_policy_acting_state

    def state_dict(self) -> dict:
        state = {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "env_steps": self.env_steps,
            "updates": self.updates,
        }
        if self.ref_policy is not None:
            state["ref_policy"] = self.ref_policy.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.env_steps = int(state["env_steps"])
        self.updates = int(state["updates"])
        if self.ref_policy is not None:
            self.ref_policy.load_state_dict(state["ref_policy"])
