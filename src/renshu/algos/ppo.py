"""Proximal Policy Optimization (clipped surrogate) over batched TensorEnvs.

``collect`` steps ``num_steps x num_envs`` transitions with the current policy. ``learn``
computes GAE(lambda) advantages per env along time (bootstrapping on truncation from the final
observation's value, not on termination), then runs ``update_epochs`` passes of shuffled
minibatches minimising

    L = -min(r A, clip(r, 1 - eps, 1 + eps) A) + vf_coef * L_V - ent_coef * H

with ``r = pi(a|s) / pi_old(a|s)``, optional value clipping, gradient-norm clipping, linear
learning-rate annealing and an optional early stop when the approximate KL exceeds
``target_kl``. Illegal actions (``info["action_mask"]``) get a logit of -1e8, so they are never
sampled and carry no gradient. The loss and its gradient with respect to the network's outputs
come from :func:`renshu.core.losses.ppo_loss_and_grad`; the network takes that gradient through
its own ``gradient`` method (autograd for ``ActorCritic``, a closed-form pass without a graph for
the stacked ``TwinMLPActorCritic`` that ``build_actor_critic`` picks for vector observations).

With an ``encoder`` (a frozen pretrained model, :mod:`renshu.encoders`), the collector computes
its features once per env step and keeps them (float16) in the rollout; actor and critic take
them next to the observation (:class:`~renshu.core.nets.FeatureTorso`). The minibatch epochs
read them from the rollout: the encoder never runs while learning.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch

from renshu.algos.base import Algorithm
from renshu.config import check, check_fields, check_network
from renshu.core.losses import PPOCoefs, PPOMinibatch, PPOStats, ppo_loss_and_grad
from renshu.core.nets import adam, guarded_step, use_bf16_autocast
from renshu.core.policy import (
    ActorCritic,
    action_probabilities,
    build_actor_critic,
    explained_variance,
    load_on_policy_state,
    load_policy_acting_state,
    on_policy_state,
    policy_acting_state,
    policy_actions,
)
from renshu.core.returns import gae, normalize
from renshu.core.rollout import Rollout, RolloutCollector, encode_features
from renshu.core.schedules import annealed, set_learning_rate
from renshu.encoders.base import Encoder, stateless


@dataclass(frozen=True)
class PPOConfig:
    env_multiple: ClassVar[int] = 1  # a Ray worker's share of the envs may be any count

    num_envs: int = 8
    """number of environments stepped in parallel"""
    num_steps: int = 128
    """steps per environment in each rollout"""
    learning_rate: float = 2.5e-4
    """Adam learning rate"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 over the run's budget"""
    gamma: float = 0.99
    """discount factor"""
    reward_scale: float = 1.0
    """rewards are multiplied by this for learning (logged returns stay unscaled)"""
    clip_rewards: bool = False
    """learn from sign(reward) (Atari); logged returns stay unclipped"""
    gae_lambda: float = 0.95
    """lambda of generalised advantage estimation"""
    num_minibatches: int = 4
    """minibatches per epoch (minibatch size = num_envs * num_steps / num_minibatches)"""
    update_epochs: int = 4
    """passes over each rollout"""
    norm_adv: bool = True
    """normalise advantages within each minibatch"""
    clip_coef: float = 0.2
    """surrogate clipping epsilon"""
    clip_vloss: bool = True
    """clip the value loss around the old values"""
    ent_coef: float = 0.01
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient norm clipping threshold"""
    target_kl: float | None = None
    """stop the epochs early when the approximate KL exceeds this (None: never)"""
    hidden: tuple[int, ...] = (64, 64)
    """hidden layer sizes of the actor and critic torsos"""
    activation: str = "tanh"
    """activation of the hidden layers: tanh or relu"""
    shared_torso: bool = False
    """actor and critic share one torso"""
    bf16: str = "off"
    """bfloat16 autocast of the network's passes: on, off, or auto (on CPUs with AMX or
    AVX-512 BF16 and CUDA devices with bfloat16, for torsos other than small vector MLPs)"""

    def __post_init__(self):
        check_fields(
            self, at_least_1=("num_envs", "num_steps", "num_minibatches", "update_epochs"),
            at_least_0=("ent_coef", "vf_coef"),
            positive=("learning_rate", "reward_scale", "clip_coef", "max_grad_norm"),
            unit=("gamma", "gae_lambda"), choices={"bf16": ("auto", "on", "off")},
        )  # fmt: skip
        check(
            self.num_envs * self.num_steps % self.num_minibatches == 0,
            "num_minibatches",
            f"must divide num_envs * num_steps = {self.num_envs * self.num_steps}",
            self.num_minibatches,
        )
        check(
            self.target_kl is None or self.target_kl > 0, "target_kl", "must be > 0", self.target_kl
        )
        check_network(self.hidden, self.activation)


class PPO(Algorithm):
    name = "ppo"
    config_class = PPOConfig
    takes_encoder = True

    def __init__(
        self,
        env,
        config: PPOConfig,
        seed: int = 0,
        *,
        encoder: Encoder | None = None,
        learner: bool = True,
        network=None,
    ):
        """``network``: a torso factory ``network(in_features) -> nn.Module`` for the actor and
        the critic (:class:`~renshu.core.nets.CustomTorso`; None: renshu's from ``hidden``)."""
        self.env = env
        self.config = config
        self.device = env.device
        self.encoder = encoder
        feature_dim = 0 if encoder is None else encoder.out_dim
        self.generator, self.policy = build_actor_critic(env, config, seed, feature_dim, network)
        if isinstance(self.policy, ActorCritic):  # (the stacked twin runs float32 only)
            self.policy.bf16 = use_bf16_autocast(config.bf16, self.device, self.policy.actor_torso)
        self.params = list(self.policy.parameters())
        self.optimizer = adam(self.params, config.learning_rate)
        self.collector = RolloutCollector(env, config.num_steps, seed, self.generator, encoder)
        self.coefs = PPOCoefs(config.clip_coef, config.clip_vloss, config.ent_coef,
                              config.vf_coef)  # fmt: skip
        self.env_steps = 0

    @property
    def steps_per_update(self) -> int:
        return self.config.num_steps * self.env.num_envs

    def features(self, obs: torch.Tensor) -> torch.Tensor | None:
        """The encoder's features of ``obs`` for acting outside training (evaluation,
        recording): encoded afresh, no every-k reuse. None without an encoder."""
        return None if self.encoder is None else encode_features(stateless(self.encoder), obs)

    def act(self, obs: torch.Tensor, mask: torch.Tensor | None = None, deterministic=True):
        features = self.features(obs)
        return policy_actions(self.policy, obs, mask, deterministic, self.generator, features)

    def action_values(self, obs: torch.Tensor, mask: torch.Tensor | None = None):
        return action_probabilities(self.policy, obs, mask, self.features(obs))

    def collect(self, progress: float) -> Rollout:
        return self.collector.collect(self.policy)

    def learn(self, ro: Rollout, progress: float) -> dict[str, float]:
        cfg = self.config
        lr = set_learning_rate(self.optimizer, annealed(cfg.learning_rate, cfg.anneal_lr, progress))
        self.env_steps += ro.env_steps
        rewards = ro.rewards.sign() if cfg.clip_rewards else ro.rewards
        advantages, returns = gae(
            rewards * cfg.reward_scale, ro.values, ro.terminated, ro.truncated, ro.next_value,
            cfg.gamma, cfg.gae_lambda, ro.final_values,
        )  # fmt: skip
        masks = ro.masks.flatten(0, 1)
        whole = PPOMinibatch(
            obs=ro.obs.flatten(0, 1),
            features=ro.features.flatten(0, 1) if self.encoder is not None else None,
            # Without illegal actions anywhere in the rollout, the loss skips the masking.
            mask=None if bool(masks.all()) else masks,
            actions=ro.actions.flatten(),
            old_logprobs=ro.logprobs.flatten(),
            advantages=advantages.flatten(),
            old_values=ro.values.flatten(),
            returns=returns.flatten(),
        )
        batch = whole.actions.shape[0]
        mb_size = batch // cfg.num_minibatches
        # One minibatch is the whole rollout: the same in any order, with the same normalised
        # advantages every epoch.
        single = cfg.num_minibatches == 1
        if single and cfg.norm_adv:
            whole = whole.with_advantages(normalize(whole.advantages))

        sums = torch.zeros(len(PPOStats._fields), device=self.device)
        skipped = torch.zeros((), device=self.device)  # steps skipped for a non-finite loss
        epochs = steps = 0
        for _ in range(cfg.update_epochs):
            epochs += 1
            if single:
                minibatches = [whole]
            else:
                perm = torch.randperm(batch, generator=self.generator, device=self.device)
                minibatches = [whole.rows(perm[i : i + mb_size]) for i in range(0, batch, mb_size)]
            for mb in minibatches:
                if cfg.norm_adv and not single:
                    mb = mb.with_advantages(normalize(mb.advantages))
                loss_and_grad = functools.partial(ppo_loss_and_grad, mb=mb, coefs=self.coefs)
                loss, stats = self.policy.gradient(mb.obs, mb.features, loss_and_grad)
                skipped += guarded_step(self.optimizer, self.params, cfg.max_grad_norm, loss)
                sums += torch.stack(stats)
                steps += 1
            if cfg.target_kl is not None and float(stats.approx_kl) > cfg.target_kl:
                break

        means = PPOStats(*(sums / steps).tolist())
        return {
            "loss/policy": means.policy_loss,
            "loss/value": means.value_loss,
            "loss/entropy": means.entropy,
            "train/approx_kl": means.approx_kl,
            "train/clipfrac": means.clipfrac,
            "train/epochs": epochs,
            "train/learning_rate": lr,
            "train/explained_variance": explained_variance(whole.old_values, whole.returns),
            "train/nonfinite_steps": int(skipped),
        }

    acting_state = policy_acting_state
    load_acting_state = load_policy_acting_state
    state_dict = on_policy_state
    load_state_dict = load_on_policy_state
