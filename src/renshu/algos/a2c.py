"""Synchronous advantage actor-critic (A2C) over batched TensorEnvs.

``collect`` steps ``num_steps x num_envs`` transitions; ``learn`` computes n-step bootstrapped
returns per env along time (bootstrapping on truncation from the final observation's value, not
on termination), and take one gradient step on

    L = -log pi(a|s) * A + vf_coef * (G - V(s))^2 - ent_coef * H,   A = G - V(s) (or GAE)

with RMSprop (or Adam), gradient-norm clipping and linear learning-rate annealing. With
``gae_lambda = 1`` the advantage is the plain n-step return minus the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from renshu.algos.base import Algorithm
from renshu.config import check_fields, check_network
from renshu.core.nets import adam, guarded_step
from renshu.core.policy import (
    action_probabilities,
    build_actor_critic,
    explained_variance,
    load_on_policy_state,
    load_policy_acting_state,
    log_prob_entropy,
    masked_logits,
    on_policy_state,
    policy_acting_state,
    policy_actions,
)
from renshu.core.returns import gae, normalize
from renshu.core.rollout import Rollout, RolloutCollector
from renshu.core.schedules import annealed, set_learning_rate


@dataclass(frozen=True)
class A2CConfig:
    env_multiple: ClassVar[int] = 1  # a Ray worker's share of the envs may be any count

    num_envs: int = 8
    """number of environments stepped in parallel"""
    num_steps: int = 5
    """steps per environment in each rollout (the n of the n-step returns)"""
    learning_rate: float = 7e-4
    """optimizer learning rate"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 over the run's budget"""
    optimizer: str = "rmsprop"
    """rmsprop (alpha 0.99, eps 1e-5) or adam"""
    gamma: float = 0.99
    """discount factor"""
    reward_scale: float = 1.0
    """rewards are multiplied by this for learning (logged returns stay unscaled)"""
    gae_lambda: float = 1.0
    """GAE lambda; 1.0 gives plain n-step returns"""
    norm_adv: bool = False
    """normalise advantages over each rollout"""
    ent_coef: float = 0.01
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient norm clipping threshold"""
    hidden: tuple[int, ...] = (64, 64)
    """hidden layer sizes of the actor and critic torsos"""
    activation: str = "tanh"
    """activation of the hidden layers: tanh or relu"""
    shared_torso: bool = False
    """actor and critic share one torso"""

    def __post_init__(self):
        check_fields(
            self, at_least_1=("num_envs", "num_steps"), at_least_0=("ent_coef", "vf_coef"),
            positive=("learning_rate", "reward_scale", "max_grad_norm"),
            unit=("gamma", "gae_lambda"), choices={"optimizer": ("rmsprop", "adam")},
        )  # fmt: skip
        check_network(self.hidden, self.activation)


class A2C(Algorithm):
    name = "a2c"
    config_class = A2CConfig
    takes_encoder = False

    def __init__(
        self, env, config: A2CConfig, seed: int = 0, *, encoder=None, learner: bool = True,
        network=None,
    ):  # fmt: skip
        if encoder is not None:
            raise ValueError("A2C takes no encoder features; --encoder works with dqn and ppo")
        self.env = env
        self.config = config
        self.device = env.device
        self.generator, self.policy = build_actor_critic(env, config, seed, network=network)
        params = self.params = list(self.policy.parameters())
        if config.optimizer == "rmsprop":
            self.optimizer = torch.optim.RMSprop(
                params, lr=config.learning_rate, alpha=0.99, eps=1e-5
            )
        else:
            self.optimizer = adam(params, config.learning_rate)
        self.collector = RolloutCollector(env, config.num_steps, seed, self.generator)
        self.env_steps = 0

    @property
    def steps_per_update(self) -> int:
        return self.config.num_steps * self.env.num_envs

    def act(self, obs: torch.Tensor, mask: torch.Tensor | None = None, deterministic=True):
        return policy_actions(self.policy, obs, mask, deterministic, self.generator)

    def action_values(self, obs: torch.Tensor, mask: torch.Tensor | None = None):
        return action_probabilities(self.policy, obs, mask)

    def collect(self, progress: float) -> Rollout:
        return self.collector.collect(self.policy)

    def learn(self, ro: Rollout, progress: float) -> dict[str, float]:
        cfg = self.config
        lr = set_learning_rate(self.optimizer, annealed(cfg.learning_rate, cfg.anneal_lr, progress))
        self.env_steps += ro.env_steps
        advantages, returns = gae(
            ro.rewards * cfg.reward_scale, ro.values, ro.terminated, ro.truncated, ro.next_value,
            cfg.gamma, cfg.gae_lambda, ro.final_values,
        )  # fmt: skip

        logits, values = self.policy(ro.obs.flatten(0, 1))
        logp, entropy = log_prob_entropy(
            masked_logits(logits, ro.masks.flatten(0, 1)), ro.actions.flatten()
        )
        adv = advantages.flatten()
        if cfg.norm_adv:
            adv = normalize(adv)
        pg_loss = -(logp * adv).mean()
        v_loss = 0.5 * ((values - returns.flatten()) ** 2).mean()
        ent = entropy.mean()
        loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        skipped = guarded_step(self.optimizer, self.params, cfg.max_grad_norm, loss)
        pg, v, e, bad = torch.stack([pg_loss.detach(), v_loss.detach(), ent.detach(), skipped])
        pg, v, e, bad = pg.item(), v.item(), e.item(), int(bad)
        return {
            "loss/policy": pg,
            "loss/value": v,
            "loss/entropy": e,
            "train/learning_rate": lr,
            "train/explained_variance": explained_variance(ro.values.flatten(), returns.flatten()),
            "train/nonfinite_steps": bad,
        }

    acting_state = policy_acting_state
    load_acting_state = load_policy_acting_state
    state_dict = on_policy_state
    load_state_dict = load_on_policy_state
