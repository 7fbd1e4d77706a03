"""Discrete actor-critic policies with action masks, and sampling from an explicit generator."""

from __future__ import annotations

import functools

import gymnasium as gym
import torch
from torch import nn

from renshu.core.nets import MLPTorso, layer_init, make_torso
from renshu.core.twin_mlp import TwinMLPActorCritic

# Logit given to illegal actions: far below any real logit, yet finite so that
# probability * log-probability stays 0 (not NaN) in the entropy.
MASKED_LOGIT = -1e8


def masked_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return logits
    return logits.masked_fill(~mask, MASKED_LOGIT)


def sample(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Categorical sample per row by the Gumbel-max trick (reproducible with ``generator``)."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device)
    gumbel = -torch.log(-torch.log(u.clamp_(1e-20, 1.0)))
    return (logits + gumbel).argmax(dim=-1)


def log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Log-probability of ``actions`` under each row's distribution."""
    return torch.log_softmax(logits, dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def log_prob_entropy(
    logits: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``actions`` and the entropy of each row's distribution."""
    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1), entropy


class ActorCritic(nn.Module):
    """Policy logits and state value, with separate or shared torsos.

    ``feature_dim > 0``: each torso also takes encoder features of that size next to the
    observation (:class:`~renshu.core.nets.FeatureTorso`); pass them as ``features``.
    ``network``: a user's torso factory (:class:`~renshu.core.nets.CustomTorso`), called once
    per torso.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        num_actions: int,
        hidden: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        shared_torso: bool = False,
        feature_dim: int = 0,
        network=None,
    ):
        super().__init__()
        torso = functools.partial(make_torso, observation_space, hidden, activation, feature_dim,
                                  network=network)  # fmt: skip
        self.actor_torso = torso()
        self.critic_torso = self.actor_torso if shared_torso else torso()
        self.shared = shared_torso
        self.feature_dim = feature_dim
        self.actor_head = layer_init(nn.Linear(self.actor_torso.out_dim, num_actions), gain=0.01)
        self.critic_head = layer_init(nn.Linear(self.critic_torso.out_dim, 1), gain=1.0)

    bf16 = False  # forward passes under bfloat16 autocast (float32 logits and values out)

    def _torso(self, torso: nn.Module, obs: torch.Tensor, features: torch.Tensor | None):
        return torso(obs, features) if self.feature_dim else torso(obs)

    def _autocast(self, obs: torch.Tensor):
        return torch.autocast(obs.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def forward(
        self, obs: torch.Tensor, features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [B, A], value [B])``."""
        with self._autocast(obs):
            h = self._torso(self.actor_torso, obs, features)
            c = h if self.shared else self._torso(self.critic_torso, obs, features)
            return self.actor_head(h).float(), self.critic_head(c).squeeze(-1).float()

    def value(self, obs: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        with self._autocast(obs):
            h = self._torso(self.critic_torso, obs, features)
            return self.critic_head(h).squeeze(-1).float()

    def logits(self, obs: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        with self._autocast(obs):
            return self.actor_head(self._torso(self.actor_torso, obs, features)).float()

    def gradient(self, obs: torch.Tensor, features: torch.Tensor | None, loss_and_grad):
        """Set (not accumulate) the parameters' gradients of a loss of the outputs.

        ``loss_and_grad(logits, value) -> (loss, stats, dL/dlogits, dL/dvalue)`` computes the
        loss and its gradient with respect to the outputs (e.g.
        :func:`~renshu.core.losses.ppo_loss_and_grad`); one ``autograd.backward`` from the
        outputs takes it through the network. Returns ``(loss, stats)``.
        """
        logits, value = self(obs, features)
        loss, stats, grad_logits, grad_value = loss_and_grad(logits.detach(), value.detach())
        self.zero_grad(set_to_none=True)
        torch.autograd.backward((logits, value), (grad_logits, grad_value))
        return loss, stats


def build_actor_critic(
    env, config, seed: int, feature_dim: int = 0, network=None
) -> tuple[torch.Generator, ActorCritic]:
    """The sampling generator and the network of an on-policy algorithm, both from ``seed``.

    ``config`` has ``hidden``, ``activation`` and ``shared_torso``; ``feature_dim``: the size of
    the encoder features the network takes (0: none). Separate MLP torsos on a flat observation
    become a :class:`~renshu.core.twin_mlp.TwinMLPActorCritic`: the same network (same
    initialisation), run as one stacked network.
    """
    generator = torch.Generator(device=env.device).manual_seed(seed)
    torch.manual_seed(seed)  # network initialisation
    policy = ActorCritic(
        env.observation_space, env.num_actions, config.hidden, config.activation,
        config.shared_torso, feature_dim, network,
    )  # fmt: skip
    if not (config.shared_torso or feature_dim) and isinstance(policy.actor_torso, MLPTorso):
        policy = TwinMLPActorCritic(policy)  # the same network, stacked (core/twin_mlp.py)
    return generator, policy.to(env.device)


@torch.no_grad()
def policy_actions(
    policy: ActorCritic,
    obs: torch.Tensor,
    mask: torch.Tensor | None,
    deterministic: bool,
    generator: torch.Generator | None,
    features: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy (argmax) or sampled actions of ``policy``; illegal actions are never chosen."""
    logits = policy.logits(obs) if features is None else policy.logits(obs, features)
    logits = masked_logits(logits, mask)
    return logits.argmax(-1) if deterministic else sample(logits, generator)


@torch.no_grad()
def action_probabilities(
    policy: ActorCritic,
    obs: torch.Tensor,
    mask: torch.Tensor | None,
    features: torch.Tensor | None = None,
) -> tuple[str, torch.Tensor]:
    """What an animation overlay shows for a policy: its action probabilities."""
    logits = policy.logits(obs) if features is None else policy.logits(obs, features)
    logits = masked_logits(logits, mask)
    return "action probabilities", torch.softmax(logits, -1)


def on_policy_state(algo) -> dict:
    """Checkpoint state shared by the on-policy algorithms (PPO, A2C)."""
    return {
        "policy": algo.policy.state_dict(),
        "optimizer": algo.optimizer.state_dict(),
        "generator": algo.generator.get_state(),
        "collector": algo.collector.state_dict(),
        "env_steps": algo.env_steps,
    }


def policy_acting_state(algo) -> dict:
    """What a collecting copy of a policy-gradient algorithm needs: the policy's weights."""
    return {"policy": algo.policy.state_dict()}


def load_policy_acting_state(algo, state: dict) -> None:
    algo.policy.load_state_dict(state["policy"])


def load_on_policy_state(algo, state: dict) -> None:
    algo.policy.load_state_dict(state["policy"])
    algo.optimizer.load_state_dict(state["optimizer"])
    algo.generator.set_state(state["generator"])
    algo.collector.load_state_dict(state["collector"])
    algo.env_steps = int(state["env_steps"])


def explained_variance(pred: torch.Tensor, target: torch.Tensor) -> float:
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - pred).var() / var)
