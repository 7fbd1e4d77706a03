"""On-policy rollout collection from a TensorEnv into preallocated ``[T, N]`` tensors.

With an encoder, the collector runs it once per env step, on the observations the step
returned (and, once per rollout, on the final observations of episodes cut by the time limit),
and keeps the features as float16 next to the observations; the policy never runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch

from renshu.core.policy import ActorCritic, log_prob, masked_logits, sample
from renshu.encoders.base import Encoder, encoder_state, load_encoder_state, stateless

FEATURE_DTYPE = torch.float16  # how encoder features are kept in rollouts and replay buffers


@torch.no_grad()
def encode_features(
    encoder: Encoder, obs: torch.Tensor, done: torch.Tensor | None = None
) -> torch.Tensor:
    """The encoder's features of ``obs`` as kept for learning (float16, on ``obs.device``)."""
    return encoder.encode(obs, done=done).to(obs.device, FEATURE_DTYPE)


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
    # float16 [T, N, D]: encoder features of obs[t]; D = 0 without an encoder.
    features: torch.Tensor = field(default_factory=lambda: torch.empty(0, 0, 0))

    @property
    def env_steps(self) -> int:
        return self.actions.numel()

    @classmethod
    def concat(cls, parts: Sequence[Rollout]) -> Rollout:
        """Rollouts of consecutive env slices (same ``T``) joined along the env axis."""
        if len(parts) == 1:
            return parts[0]
        joined = {}
        for f in fields(cls):
            values = [vars(p)[f.name] for p in parts]
            if f.name == "episodes":
                joined[f.name] = {k: torch.cat([v[k] for v in values]) for k in values[0]}
            else:  # next_value is [N]; every other field is [T, N, ...]
                joined[f.name] = torch.cat(values, dim=0 if f.name == "next_value" else 1)
        return cls(**joined)


class RolloutCollector:
    """Steps ``env`` with ``policy`` for ``num_steps`` and keeps the env's latest obs/mask
    (and, with an ``encoder``, their features).

    Its state (current obs and mask) is part of a checkpoint so a resumed run continues exactly.
    """

    def __init__(
        self,
        env,
        num_steps: int,
        seed: int | None,
        generator: torch.Generator,
        encoder: Encoder | None = None,
    ):
        self.env = env
        self.num_steps = num_steps
        self.generator = generator
        self.encoder = encoder
        self.seed = seed
        # The env is reset by the first collection (a learner whose workers collect never
        # steps its own env).
        self.obs = self.mask = self.features = None

    def _start(self) -> None:
        self.obs, info = self.env.reset(seed=self.seed)
        self.mask = info["action_mask"]
        if self.encoder is not None:
            self.features = encode_features(self.encoder, self.obs)

    @torch.no_grad()
    def collect(self, policy: ActorCritic) -> Rollout:
        if self.obs is None:
            self._start()
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
        dim = 0 if self.encoder is None else self.features.shape[-1]
        features = torch.empty((T, N, dim), dtype=FEATURE_DTYPE, device=dev)
        stats: dict[str, torch.Tensor] = {}

        for t in range(T):
            obs_buf[t] = self.obs
            masks[t] = self.mask
            if self.encoder is not None:
                features[t] = self.features
            logits, value = policy(self.obs, self.features)
            logits = masked_logits(logits, self.mask)
            action = sample(logits, self.generator)
            logprobs[t] = log_prob(logits, action)
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
            if self.encoder is not None:  # once per env step, on the obs the step returned
                self.features = encode_features(self.encoder, self.obs, info["done"])
            for key, value in info["episode"].items():
                if key not in stats:
                    stats[key] = torch.empty((T, N), dtype=value.dtype, device=dev)
                stats[key][t] = value

        next_value = policy.value(self.obs, self.features)
        # V(final obs) only where an episode was cut by the time limit (one host sync per rollout).
        final_values = torch.zeros((T, N), device=dev)
        cut = truncated & ~terminated
        if bool(cut.any()):
            final_obs = final_obs_buf[cut]
            final_features = None
            if self.encoder is not None:  # these rows are not the env batch: no every-k reuse
                final_features = encode_features(stateless(self.encoder), final_obs)
            final_values[cut] = policy.value(final_obs, final_features)
        episodes = {key: buf[done] for key, buf in stats.items()}
        return Rollout(
            obs_buf, actions, logprobs, values, rewards, terminated, truncated, masks,
            final_values, next_value, episodes, features,
        )  # fmt: skip

    def state_dict(self) -> dict:
        if self.obs is None:  # nothing collected here yet: the env starts fresh on loading
            return {}
        state = {"obs": self.obs, "mask": self.mask}
        if self.encoder is not None:
            state["features"] = self.features
            state["encoder"] = encoder_state(self.encoder)
        return state

    def load_state_dict(self, state: dict) -> None:
        if not state:
            self.obs = self.mask = self.features = None
            return
        self.obs = state["obs"].to(self.env.device)
        self.mask = state["mask"].to(self.env.device)
        if self.encoder is not None:
            if "features" not in state:
                raise ValueError("the checkpoint was saved without an encoder")
            self.features = state["features"].to(self.env.device)
            load_encoder_state(self.encoder, state["encoder"])
