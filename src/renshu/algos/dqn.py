"""Deep Q-learning over batched TensorEnvs: Double DQN by default, with dueling heads, n-step
returns and prioritized replay as options.

One ``update()`` = ``train_freq`` env steps (``train_freq / num_envs`` steps of all envs at once)
with an epsilon-greedy policy whose epsilon falls linearly from ``exploration_initial_eps`` to
``exploration_final_eps`` over the first ``exploration_fraction`` of the run's budget (random
actions until ``learning_starts``), each transition written to the replay buffer; then
``gradient_steps`` minibatch steps on the Huber loss of

    y = R_n + gamma^m * Q_target(s', argmax_a Q(s', a))     (Double DQN; plain: max_a Q_target)

where ``R_n`` sums up to ``n_step`` rewards along the env's own time axis, cut at a terminal
(no bootstrap) or an episode cut by the time limit (bootstrap from its final observation). The
target network follows the online one every ``target_update_interval`` env steps: a copy, or a
Polyak step of ``tau``. Illegal actions (``info["action_mask"]``, 2048) are never explored, never
chosen greedily and never bootstrapped from. With ``prioritized`` the buffer samples slots in
proportion to ``(|td| + eps)^alpha`` and the loss is weighted by importance weights whose
exponent beta rises linearly from ``per_beta`` to 1 over the run.

With an ``encoder`` (a frozen pretrained model, :mod:`renshu.encoders`) the Q-network is the
original design: its torso on the raw observation next to the (normalised) encoder features,
then an MLP (:class:`~renshu.core.nets.FeatureTorso`). The collector computes the features once
per env step and stores them as float16 in the replay buffer next to the observation (for an
episode cut by the time limit, also those of its final observation); a gradient step reads them
from there, so the encoder never runs while learning.

Atari (``info["life_loss"]``): a lost life ends the n-step window and the bootstrap, as in the
DeepMind setting, while the game itself goes on; ``clip_rewards`` learns from sign(reward)
while the logged return stays the game score.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from renshu.config import check, check_network
from renshu.core.buffers import ReplayBuffer
from renshu.core.nets import adam, guarded_step, make_torso, use_bf16_autocast
from renshu.core.policy import masked_logits
from renshu.core.returns import q_targets
from renshu.core.rollout import FEATURE_DTYPE, encode_features
from renshu.encoders.base import Encoder, encoder_state, load_encoder_state, stateless
from renshu.envs.base import random_legal_actions


@dataclass(frozen=True)
class DQNConfig:
    num_envs: int = 8
    """number of environments stepped in parallel"""
    buffer_size: int = 100_000
    """replay buffer capacity in transitions"""
    batch_size: int = 64
    """transitions per gradient step"""
    learning_rate: float = 1e-4
    """Adam learning rate"""
    adam_eps: float = 1e-5
    """Adam epsilon"""
    gamma: float = 0.99
    """discount factor"""
    learning_starts: int = 1_000
    """env steps of random play before learning starts"""
    train_freq: int = 4
    """env steps (summed over envs) between training rounds"""
    gradient_steps: int = 1
    """gradient steps per training round"""
    target_update_interval: int = 1_000
    """env steps between target-network updates"""
    tau: float = 1.0
    """target update: 1 copies the online network, < 1 is a Polyak step of that size"""
    exploration_initial_eps: float = 1.0
    """epsilon at the start"""
    exploration_final_eps: float = 0.05
    """epsilon after the exploration phase"""
    exploration_fraction: float = 0.1
    """fraction of the run's budget over which epsilon falls"""
    max_grad_norm: float = 10.0
    """gradient norm clipping threshold"""
    double: bool = True
    """Double DQN targets (the online network picks the next action, the target rates it)"""
    dueling: bool = False
    """dueling head: Q = V + A - mean(A)"""
    n_step: int = 1
    """steps summed in each return before bootstrapping"""
    prioritized: bool = False
    """proportional prioritized replay"""
    per_alpha: float = 0.6
    """prioritization exponent"""
    per_beta: float = 0.4
    """initial importance-weight exponent (rises linearly to 1 over the run)"""
    per_eps: float = 1e-6
    """added to |td error| before prioritizing"""
    clip_rewards: bool = False
    """learn from sign(reward) (Atari); logged returns stay unclipped"""
    reward_scale: float = 1.0
    """rewards are multiplied by this for learning (after clipping)"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the Q-network's MLP torso (image observations use the Nature CNN)"""
    activation: str = "relu"
    """activation of the hidden layers: tanh or relu"""
    checkpoint_buffer: bool = True
    """save the replay buffer in checkpoints (exact resume); false keeps checkpoints small"""
    bf16: str = "off"
    """bfloat16 autocast of the Q-network's passes: on, off, or auto (image observations on
    CPUs with AMX or CUDA devices with bfloat16). Faster on such hardware; off by default
    because learning parity with float32 is not verified yet (docs/dqn.md)"""

    def __post_init__(self):
        for name in ("num_envs", "buffer_size", "batch_size", "train_freq", "n_step"):
            check(getattr(self, name) >= 1, name, "must be >= 1", getattr(self, name))
        for name in ("learning_starts", "gradient_steps"):
            check(getattr(self, name) >= 0, name, "must be >= 0", getattr(self, name))
        check(
            self.target_update_interval >= 1,
            "target_update_interval",
            "must be >= 1",
            self.target_update_interval,
        )
        check(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            "learning_rate",
            "must be > 0 and finite",
            self.learning_rate,
        )
        check(0 <= self.gamma <= 1, "gamma", "must lie in [0, 1]", self.gamma)
        check(0 < self.tau <= 1, "tau", "must lie in (0, 1]", self.tau)
        for name in ("exploration_initial_eps", "exploration_final_eps", "exploration_fraction"):
            v = getattr(self, name)
            check(0 <= v <= 1, name, "must lie in [0, 1]", v)
        check(self.max_grad_norm > 0, "max_grad_norm", "must be > 0", self.max_grad_norm)
        check(self.per_alpha >= 0, "per_alpha", "must be >= 0", self.per_alpha)
        check(0 <= self.per_beta <= 1, "per_beta", "must lie in [0, 1]", self.per_beta)
        check(self.per_eps > 0, "per_eps", "must be > 0", self.per_eps)
        check(self.reward_scale > 0, "reward_scale", "must be > 0", self.reward_scale)
        check(self.adam_eps > 0, "adam_eps", "must be > 0", self.adam_eps)
        check(self.bf16 in ("auto", "on", "off"), "bf16", "auto, on or off", self.bf16)
        check_network(self.hidden, self.activation)


class QNetwork(nn.Module):
    """Q-values ``[B, A]`` from a torso chosen by the observation space; optionally dueling.

    ``feature_dim > 0``: the torso also takes encoder features of that size (``features``)."""

    def __init__(
        self, observation_space, num_actions: int, hidden, activation, dueling: bool,
        feature_dim: int = 0,
    ):  # fmt: skip
        super().__init__()
        self.torso = make_torso(observation_space, tuple(hidden), activation, feature_dim)
        self.feature_dim = feature_dim
        self.dueling = dueling
        if dueling:
            self.value = nn.Linear(self.torso.out_dim, 1)
            self.advantage = nn.Linear(self.torso.out_dim, num_actions)
        else:
            self.head = nn.Linear(self.torso.out_dim, num_actions)

    bf16 = False  # forward passes under bfloat16 autocast (float32 Q-values out)

    def forward(self, obs: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(obs.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            h = self.torso(obs, features) if self.feature_dim else self.torso(obs)
            if not self.dueling:
                return self.head(h).float()
            a = self.advantage(h)
            return (self.value(h) + a - a.mean(-1, keepdim=True)).float()


def _q(net: QNetwork, parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """Q-values of a batch's observation parts (with the stored encoder features, if any)."""
    return net(parts["obs"], parts.get("feat"))


def _torch_dtype(space) -> torch.dtype:
    dtype = np.dtype(space.dtype)
    if dtype == np.float64:
        return torch.float32
    return torch.from_numpy(np.zeros((), dtype=dtype)).dtype


def linear_schedule(start: float, end: float, fraction: float, progress: float) -> float:
    """``start`` -> ``end`` linearly over the first ``fraction`` of progress, then ``end``."""
    if fraction <= 0:
        return end
    return start + (end - start) * min(1.0, progress / fraction)


class DQN:
    config_class = DQNConfig

    def __init__(self, env, config: DQNConfig, seed: int = 0, encoder: Encoder | None = None):
        self.env = env
        self.config = config
        self.device = env.device
        self.encoder = encoder
        cfg, N = config, env.num_envs
        feature_dim = 0 if encoder is None else encoder.out_dim
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        torch.manual_seed(seed)  # network initialisation
        self.q = QNetwork(
            env.observation_space, env.num_actions, cfg.hidden, cfg.activation, cfg.dueling,
            feature_dim,
        ).to(self.device)  # fmt: skip
        self.q.bf16 = use_bf16_autocast(cfg.bf16, self.device, env.observation_space)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = adam(self.q.parameters(), cfg.learning_rate, eps=cfg.adam_eps)
        parts = {
            "obs": (tuple(env.observation_space.shape), _torch_dtype(env.observation_space)),
            "mask": ((env.num_actions,), torch.bool),
        }
        if encoder is not None:
            parts["feat"] = ((feature_dim,), FEATURE_DTYPE)
        self.buffer = ReplayBuffer(
            cfg.buffer_size, N, parts, self.device, n_step=cfg.n_step, gamma=cfg.gamma,
            frame_stack=getattr(env, "frame_stack", None),
            frame_padding=getattr(env, "frame_padding", "zeros"),
            prioritized=cfg.prioritized, alpha=cfg.per_alpha, eps=cfg.per_eps,
            max_episode_steps=getattr(env, "max_episode_steps", None),
        )  # fmt: skip
        self.vector_steps = max(1, round(cfg.train_freq / N))
        self.obs, info = env.reset(seed=seed)
        self.mask = info["action_mask"]
        self.feat = None if encoder is None else encode_features(encoder, self.obs)
        self.all_legal = torch.ones(N, env.num_actions, dtype=torch.bool, device=self.device)
        self.progress = 0.0  # fraction of the run's budget used, set by the runner
        self.env_steps = 0
        self.added = 0  # transitions written to this buffer (resets when a resume drops it)
        self.grad_steps = 0

    @property
    def steps_per_update(self) -> int:
        return self.vector_steps * self.env.num_envs

    @property
    def epsilon(self) -> float:
        cfg = self.config
        return linear_schedule(
            cfg.exploration_initial_eps, cfg.exploration_final_eps,
            cfg.exploration_fraction, self.progress,
        )  # fmt: skip

    def features(self, obs: torch.Tensor) -> torch.Tensor | None:
        """The encoder's features of ``obs`` for acting outside training (evaluation,
        recording): encoded afresh, no every-k reuse. None without an encoder."""
        return None if self.encoder is None else encode_features(stateless(self.encoder), obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, mask: torch.Tensor | None = None, deterministic=True):
        q = self.q(obs, self.features(obs))
        greedy = masked_logits(q, mask).argmax(-1)
        if deterministic:
            return greedy
        legal = mask if mask is not None else torch.ones_like(q, dtype=torch.bool)
        explore = torch.rand(obs.shape[0], generator=self.generator, device=obs.device)
        explore = explore < self.epsilon
        return torch.where(explore, random_legal_actions(legal, self.generator), greedy)

    @torch.no_grad()
    def action_values(self, obs: torch.Tensor, mask: torch.Tensor | None = None):
        return "Q-values", self.q(obs, self.features(obs))

    # -- one iteration ---------------------------------------------------------------------

    @torch.no_grad()
    def _collect(self, stats: dict[str, list[torch.Tensor]]) -> None:
        cfg, env = self.config, self.env
        eps = self.epsilon
        for _ in range(self.vector_steps):
            obs, mask, feat = self.obs, self.mask, self.feat
            random_only = self.env_steps < cfg.learning_starts
            action = self.choose_actions(obs, mask, feat, eps, random_only)
            self.obs, reward, terminated, _, info = env.step(action)
            self.mask = info["action_mask"]
            final_feat = None
            if self.encoder is not None:  # once per env step, on the obs the step returned
                self.feat = encode_features(self.encoder, self.obs, info["done"])
                final_feat = self._final_features(info, self._terminal(terminated, info))
            self.store(obs, mask, action, reward, terminated, info, stats, feat, final_feat)

    def choose_actions(
        self,
        obs: torch.Tensor,
        mask: torch.Tensor,
        feat: torch.Tensor | None,
        eps: float,
        random_only: bool,
    ) -> torch.Tensor:
        """Epsilon-greedy legal actions; uniformly random legal ones while ``random_only``
        (before ``learning_starts``). Ray workers act with this too."""
        random_actions = random_legal_actions(mask, self.generator)
        if random_only:
            return random_actions
        greedy = masked_logits(self.q(obs, feat), mask).argmax(-1)
        explore = torch.rand(obs.shape[0], generator=self.generator, device=self.device) < eps
        return torch.where(explore, random_actions, greedy)

    @staticmethod
    def _terminal(terminated: torch.Tensor, info: dict) -> torch.Tensor:
        """Where learning stops: termination, or a lost life (Atari)."""
        if "life_loss" in info:
            return terminated | info["life_loss"]
        return terminated

    def store(
        self,
        obs: torch.Tensor,
        mask: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        info: dict,
        stats: dict[str, list[torch.Tensor]],
        feat: torch.Tensor | None = None,
        final_feat: torch.Tensor | None = None,
    ) -> None:
        """One vector step of transitions (collected here or by Ray workers) into the replay
        buffer; counts the env steps, updates the target network on schedule, keeps the
        finished episodes' statistics."""
        cfg, N = self.config, obs.shape[0]
        terminal = self._terminal(terminated, info)
        if cfg.clip_rewards:
            reward = reward.sign()
        if cfg.reward_scale != 1.0:
            reward = reward * cfg.reward_scale
        final = {
            "obs": info["final_obs"],
            "mask": info.get("final_action_mask", self.all_legal),
        }
        parts = {"obs": obs, "mask": mask}
        if feat is not None:
            parts["feat"] = feat
            final["feat"] = final_feat
        self.buffer.add(parts, action, reward, terminal, info["done"], final)
        self.added += N
        before = self.env_steps
        self.env_steps += N
        if self.env_steps // cfg.target_update_interval > before // cfg.target_update_interval:
            self._update_target()
        done = info["done"]
        for key, value in info["episode"].items():
            stats.setdefault(key, []).append(value[done])

    def _final_features(self, info: dict, terminal: torch.Tensor) -> torch.Tensor:
        """Features of the final observations, computed only for the rows the buffer keeps
        (episodes cut by the time limit); zeros elsewhere."""
        out = torch.zeros_like(self.feat)
        cut = info["done"] & ~terminal
        if bool(cut.any()):
            rows = cut.nonzero().squeeze(1)
            out[rows] = encode_features(stateless(self.encoder), info["final_obs"][rows])
        return out

    def _update_target(self) -> None:
        online = list(self.q.parameters())
        target = list(self.target.parameters())
        if self.config.tau >= 1.0:
            torch._foreach_copy_(target, online)
        else:
            torch._foreach_lerp_(target, online, self.config.tau)

    def _learn_ready(self) -> bool:
        cfg = self.config
        return (
            self.env_steps >= cfg.learning_starts
            and self.added >= min(cfg.learning_starts, self.buffer.capacity)
            and len(self.buffer) > 0
        )

    def _gradient_step(self, b, next_target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One Huber-loss step on batch ``b``; ``next_target``: Q_target of its next obs."""
        cfg = self.config
        with torch.no_grad():
            next_q = _q(self.q, b.next_obs) if cfg.double else next_target
            y = q_targets(
                b.returns, b.discounts, next_q, next_target, b.next_obs["mask"], cfg.double
            )
        q = _q(self.q, b.obs).gather(1, b.actions.unsqueeze(1)).squeeze(1)
        loss = (b.weights * F.smooth_l1_loss(q, y, reduction="none")).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        skipped = guarded_step(self.optimizer, list(self.q.parameters()), cfg.max_grad_norm, loss)
        self.buffer.update_priorities(b.indices, (q - y).detach())
        return loss.detach(), q.detach().mean(), skipped

    def _train_round(self, beta: float) -> torch.Tensor:
        """``gradient_steps`` steps; sums of (loss, q mean, skipped steps).

        The target network does not change within a round (it follows the online one between
        env steps), so with uniform replay all minibatches of the round are drawn at once and
        their target values come from one forward pass. Prioritized replay samples before each
        step, from the priorities the previous step left.
        """
        cfg = self.config
        sums = torch.zeros(3, device=self.device)
        if cfg.prioritized:
            for _ in range(cfg.gradient_steps):
                b = self.buffer.sample(cfg.batch_size, self.generator, beta)
                with torch.no_grad():
                    next_target = _q(self.target, b.next_obs)
                sums += torch.stack(self._gradient_step(b, next_target))
            return sums
        big = self.buffer.sample(cfg.batch_size * cfg.gradient_steps, self.generator)
        with torch.no_grad():
            next_target = _q(self.target, big.next_obs)
        for b, nt in zip(big.split(cfg.batch_size), next_target.split(cfg.batch_size)):
            sums += torch.stack(self._gradient_step(b, nt))
        return sums

    def update(self) -> dict:
        cfg = self.config
        stats: dict[str, list[torch.Tensor]] = {}
        self._collect(stats)
        sums = torch.zeros(3, device=self.device)  # loss, q mean, skipped steps
        steps = 0
        if self._learn_ready() and cfg.gradient_steps > 0:
            beta = cfg.per_beta + (1.0 - cfg.per_beta) * self.progress
            sums = self._train_round(beta)
            steps = cfg.gradient_steps
            self.grad_steps += steps
        loss, q_mean, skipped = (sums / max(steps, 1)).tolist()
        metrics = {
            "train/epsilon": self.epsilon,
            "train/gradient_steps": self.grad_steps,
            "train/buffer_size": len(self.buffer),
            "train/nonfinite_steps": skipped * max(steps, 1),
            "episodes": {key: torch.cat(values) for key, values in stats.items()},
        }
        if steps:
            metrics["loss/td"] = loss
            metrics["train/q_mean"] = q_mean
        return metrics

    # -- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict:
        state = {
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "obs": self.obs,
            "mask": self.mask,
            "env_steps": self.env_steps,
            "added": self.added,
            "grad_steps": self.grad_steps,
        }
        if self.config.checkpoint_buffer:
            state["buffer"] = self.buffer.state_dict()
        if self.encoder is not None:
            state["feat"] = self.feat
            state["encoder"] = encoder_state(self.encoder)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.obs = state["obs"].to(self.device)
        self.mask = state["mask"].to(self.device)
        if self.encoder is not None:
            if "feat" not in state:
                raise ValueError("the checkpoint was saved without an encoder")
            self.feat = state["feat"].to(self.device)
            load_encoder_state(self.encoder, state["encoder"])
        self.env_steps = int(state["env_steps"])
        self.grad_steps = int(state["grad_steps"])
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
            self.added = int(state["added"])
        else:  # checkpoint without the buffer: refill before learning again
            self.added = 0
