"""On-policy rollout collection from a TensorEnv into preallocated ``[T, N]`` tensors."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from renshu.core.policy import ActorCritic, log_prob_entropy, masked_logits, sample


@dataclass
class Rollout:
    obs: torch.Tensor  # [T, N, *obs_shape] as the env returns them
    actions: torch.Tensor  # int64 [T, N]
    logprobs: torch.Tensor  # [T, N] under the policy that acted
    values: torch.Tensor  # [T, N]
    rewards: torch.Tensor  # [T, N]
    terminated: torch.Tensor  # bool [T, N]
    truncated: torch.Tensor  # bool [T, N]
    masks: torch.Tensor  # bool [T, N, A]: legal actions of obs[t]
    final_values: torch.Tensor  # [T, N]: V(final obs) where truncated, else 0
    next_value: torch.Tensor  # [N]
    episodes: dict[str, torch.Tensor] = field(default_factory=dict)  # finished episodes' stats


class RolloutCollector:
    """Steps ``env`` with ``policy`` for ``num_steps`` and keeps the env's latest obs/mask.

    Its state (current obs and mask) is part of a checkpoint so a resumed run continues exactly.
    """

    def __init__(self, env, num_steps: int, seed: int | None, generator: torch.Generator):
        self.env = env
        self.num_steps = num_steps
        self.generator = generator
        self.obs, info = env.reset(seed=seed)
        self.mask = info["action_mask"]

    @torch.no_grad()
    def collect(self, policy: ActorCritic) -> Rollout:
        env, T, N = self.env, self.num_steps, self.env.num_envs
        dev = env.device
        obs_buf = torch.empty((T, *self.obs.shape), dtype=self.obs.dtype, device=dev)
        final_obs_buf = torch.empty_like(obs_buf)
        masks = torch.empty((T, *self.mask.shape), dtype=torch.bool, device=dev)
        actions = torch.empty((T, N), dtype=torch.int64, device=dev)
        logprobs = torch.empty((T, N), device=dev)
        values = torch.empty((T, N), device=dev)
        rewards = torch.empty((T, N), device=dev)
        terminated = torch.empty((T, N), dtype=torch.bool, device=dev)
        truncated = torch.empty((T, N), dtype=torch.bool, device=dev)
        done = torch.empty((T, N), dtype=torch.bool, device=dev)
        stats: dict[str, torch.Tensor] = {}

        for t in range(T):
            obs_buf[t] = self.obs
            masks[t] = self.mask
            logits, value = policy(self.obs)
            logits = masked_logits(logits, self.mask)
            action = sample(logits, self.generator)
            logprobs[t], _ = log_prob_entropy(logits, action)
            values[t] = value
            actions[t] = action
            self.obs, reward, term, trunc, info = env.step(action)
            self.mask = info["action_mask"]
            rewards[t] = reward
            # A lost life (Atari) ends the return for learning; the game itself goes on.
            terminated[t] = term | info["life_loss"] if "life_loss" in info else term
            truncated[t] = trunc
            done[t] = info["done"]
            final_obs_buf[t] = info["final_obs"]
            for key, value in info["episode"].items():
                if key not in stats:
                    stats[key] = torch.empty((T, N), dtype=value.dtype, device=dev)
                stats[key][t] = value

        next_value = policy.value(self.obs)
        # V(final obs) only where an episode was cut by the time limit (one host sync per rollout).
        final_values = torch.zeros((T, N), device=dev)
        cut = truncated & ~terminated
        if bool(cut.any()):
            final_values[cut] = policy.value(final_obs_buf[cut])
        episodes = {key: buf[done] for key, buf in stats.items()}
        return Rollout(
            obs_buf, actions, logprobs, values, rewards, terminated, truncated, masks,
            final_values, next_value, episodes,
        )  # fmt: skip

    def state_dict(self) -> dict:
        return {"obs": self.obs, "mask": self.mask}

    def load_state_dict(self, state: dict) -> None:
        self.obs = state["obs"].to(self.env.device)
        self.mask = state["mask"].to(self.env.device)
