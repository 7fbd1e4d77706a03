"""Deep Q-learning over batched TensorEnvs: Double DQN by default, with dueling heads, n-step
returns and prioritized replay as options.

``collect`` takes ``train_freq`` env steps (``train_freq / num_envs`` steps of all envs at once)
with an epsilon-greedy policy whose epsilon falls linearly from ``exploration_initial_eps`` to
``exploration_final_eps`` over the first ``exploration_fraction`` of the run's budget (random
actions until ``learning_starts``); ``learn`` writes them to the replay buffer and takes
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
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from renshu.algos.base import Algorithm
from renshu.config import check, check_fields, check_network
from renshu.core.buffers import ReplayBuffer
from renshu.core.fastpath import FusedAdam
from renshu.core.nets import guarded_step, make_torso, use_bf16_autocast
from renshu.core.policy import masked_logits
from renshu.core.returns import q_targets
from renshu.core.rollout import FEATURE_DTYPE, encode_features
from renshu.core.schedules import linear
from renshu.encoders.base import Encoder, encoder_state, load_encoder_state, stateless
from renshu.envs.base import random_legal_actions


@dataclass(frozen=True)
class DQNConfig:
    env_multiple: ClassVar[int] = 1  # a Ray worker's share of the envs may be any count

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
        check_fields(
            self,
            at_least_1=("num_envs", "buffer_size", "batch_size", "train_freq", "n_step",
                        "target_update_interval"),
            at_least_0=("learning_starts", "gradient_steps", "per_alpha"),
            positive=("learning_rate", "max_grad_norm", "per_eps", "reward_scale", "adam_eps"),
            unit=("gamma", "exploration_initial_eps", "exploration_final_eps",
                  "exploration_fraction", "per_beta"),
            choices={"bf16": ("auto", "on", "off")},
        )  # fmt: skip
        check(0 < self.tau <= 1, "tau", "must lie in (0, 1]", self.tau)
        check_network(self.hidden, self.activation)


class QNetwork(nn.Module):
    """Q-values ``[B, A]`` from a torso chosen by the observation space; optionally dueling.

    ``feature_dim > 0``: the torso also takes encoder features of that size (``features``).
    ``network``: a user's torso factory (:class:`~renshu.core.nets.CustomTorso`)."""

    def __init__(
        self, observation_space, num_actions: int, hidden, activation, dueling: bool,
        feature_dim: int = 0, network=None,
    ):  # fmt: skip
        super().__init__()
        self.torso = make_torso(observation_space, tuple(hidden), activation, feature_dim, network)
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


def _to_device(x: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if x is None else x.to(device)


def _torch_dtype(space) -> torch.dtype:
    dtype = np.dtype(space.dtype)
    if dtype == np.float64:
        return torch.float32
    return torch.from_numpy(np.zeros((), dtype=dtype)).dtype


@dataclass
class Transitions:
    """``T`` vector steps of ``N`` envs, time first, as ``collect`` gathered them."""

    obs: torch.Tensor  # [T, N, *obs_shape]: the observation each action was taken in
    mask: torch.Tensor  # bool [T, N, A]: its legal actions
    action: torch.Tensor  # int64 [T, N]
    reward: torch.Tensor  # [T, N], as the env gave it (clipping and scaling happen in learn)
    terminal: torch.Tensor  # bool [T, N]: learning stops here (termination or a lost life)
    done: torch.Tensor  # bool [T, N]: the env's episode ended (auto-reset)
    final_obs: torch.Tensor  # [T, N, *obs_shape]: the last observation where done
    final_mask: torch.Tensor  # bool [T, N, A]
    feat: torch.Tensor | None  # [T, N, D] encoder features of obs (None without an encoder)
    final_feat: torch.Tensor | None  # [T, N, D] of final_obs where cut by the time limit
    finished: dict[str, torch.Tensor]  # statistics of the episodes that ended, 1-D each

    @property
    def env_steps(self) -> int:
        return self.action.numel()

    @property
    def episodes(self) -> dict[str, torch.Tensor]:
        return self.finished

    @classmethod
    def concat(cls, parts: Sequence[Transitions]) -> Transitions:
        """Transitions of consecutive env slices (same ``T``) joined along the env axis."""
        if len(parts) == 1:
            return parts[0]
        joined: dict[str, Any] = {}
        for f in fields(cls):
            values = [vars(p)[f.name] for p in parts]
            if f.name == "finished":
                joined[f.name] = {k: torch.cat([v[k] for v in values]) for k in values[0]}
            elif values[0] is None:
                joined[f.name] = None
            else:
                joined[f.name] = torch.cat(values, dim=1)
        return cls(**joined)


class DQN(Algorithm):
    name = "dqn"
    config_class = DQNConfig
    takes_encoder = True
    value_based = True

    def __init__(
        self,
        env,
        config: DQNConfig,
        seed: int = 0,
        *,
        encoder: Encoder | None = None,
        learner: bool = True,
        network=None,
    ):
        """``learner=False`` builds a copy that only collects (a Ray worker): no replay buffer,
        target network or optimizer. ``network``: a torso factory ``network(in_features) ->
        nn.Module`` under the Q-head (:class:`~renshu.core.nets.CustomTorso`)."""
        self.env = env
        self.config = config
        self.device = env.device
        self.encoder = encoder
        cfg = config
        feature_dim = 0 if encoder is None else encoder.out_dim
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        torch.manual_seed(seed)  # network initialisation
        self.q = QNetwork(
            env.observation_space, env.num_actions, cfg.hidden, cfg.activation, cfg.dueling,
            feature_dim, network,
        ).to(self.device)  # fmt: skip
        self.q.bf16 = use_bf16_autocast(cfg.bf16, self.device, self.q.torso)
        self.learner = learner
        if learner:
            self.target = copy.deepcopy(self.q).requires_grad_(False)
            self.optimizer = FusedAdam(self.q.parameters(), cfg.learning_rate, eps=cfg.adam_eps)
            self.buffer = self._make_buffer(feature_dim)
        # The collection of one round: train_freq transitions over the run's num_envs (a Ray
        # worker steps a share of them, as many vector steps as the learner would).
        self.vector_steps = max(1, round(cfg.train_freq / cfg.num_envs))
        # The env is reset by the first collection (a learner whose workers collect never
        # steps its own env).
        self.seed = seed
        self.obs = self.mask = self.feat = None
        self.epsilon = cfg.exploration_initial_eps  # of the latest collection
        self.env_steps = 0
        self.added = 0  # transitions written to this buffer (resets when a resume drops it)
        self.grad_steps = 0

    def _make_buffer(self, feature_dim: int) -> ReplayBuffer:
        cfg, env = self.config, self.env
        parts = {
            "obs": (tuple(env.observation_space.shape), _torch_dtype(env.observation_space)),
            "mask": ((env.num_actions,), torch.bool),
        }
        if feature_dim:
            parts["feat"] = ((feature_dim,), FEATURE_DTYPE)
        return ReplayBuffer(
            cfg.buffer_size, cfg.num_envs, parts, self.device, n_step=cfg.n_step,
            gamma=cfg.gamma, frame_stack=env.frame_stack, frame_padding=env.frame_padding,
            prioritized=cfg.prioritized, alpha=cfg.per_alpha, eps=cfg.per_eps,
            max_episode_steps=env.max_episode_steps,
        )  # fmt: skip

    @property
    def steps_per_update(self) -> int:
        return self.vector_steps * self.config.num_envs

    def exploration(self, progress: float) -> float:
        """Epsilon at ``progress``: falling linearly over ``exploration_fraction`` of the run."""
        cfg = self.config
        return linear(
            cfg.exploration_initial_eps, cfg.exploration_final_eps, progress,
            cfg.exploration_fraction,
        )  # fmt: skip

    def features(self, obs: torch.Tensor) -> torch.Tensor | None:
        """The encoder's features of ``obs`` for acting outside training (evaluation,
        recording): encoded afresh, no every-k reuse. None without an encoder."""
        return None if self.encoder is None else encode_features(stateless(self.encoder), obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, mask: torch.Tensor | None = None, deterministic=True):
        """Greedy actions, or epsilon-greedy ones (the latest collection's epsilon)."""
        legal = mask if mask is not None else torch.ones(
            obs.shape[0], self.env.num_actions, dtype=torch.bool, device=obs.device
        )  # fmt: skip
        eps = 0.0 if deterministic else self.epsilon
        return self._actions(obs, legal, self.features(obs), eps, random_only=False)

    @torch.no_grad()
    def action_values(self, obs: torch.Tensor, mask: torch.Tensor | None = None):
        return "Q-values", self.q(obs, self.features(obs))

    def _actions(self, obs, mask, feat, eps: float, random_only: bool) -> torch.Tensor:
        """Epsilon-greedy legal actions; uniformly random legal ones while ``random_only``."""
        if random_only:
            return random_legal_actions(mask, self.generator)
        greedy = masked_logits(self.q(obs, feat), mask).argmax(-1)
        if eps <= 0:
            return greedy
        random_actions = random_legal_actions(mask, self.generator)
        explore = torch.rand(obs.shape[0], generator=self.generator, device=self.device) < eps
        return torch.where(explore, random_actions, greedy)

    # -- collection ---------------------------------------------------------------------------

    @torch.no_grad()
    def collect(self, progress: float) -> Transitions:
        """``vector_steps`` steps of the env, epsilon-greedy (random actions until
        ``learning_starts`` env steps, counted over the run's ``num_envs``)."""
        cfg, env = self.config, self.env
        if self.obs is None:
            self.obs, info = env.reset(seed=self.seed)
            self.mask = info["action_mask"]
            if self.encoder is not None:
                self.feat = encode_features(self.encoder, self.obs)
        self.epsilon = eps = self.exploration(progress)
        rows: dict[str, list[torch.Tensor]] = {f.name: [] for f in fields(Transitions)}
        finished: dict[str, list[torch.Tensor]] = {}
        for t in range(self.vector_steps):
            obs, mask, feat = self.obs, self.mask, self.feat
            random_only = self.env_steps + t * cfg.num_envs < cfg.learning_starts
            action = self._actions(obs, mask, feat, eps, random_only)
            self.obs, reward, terminated, _, info = env.step(action)
            self.mask = info["action_mask"]
            # A lost life (Atari) ends the return for learning; the game itself goes on.
            terminal = terminated | info["life_loss"] if "life_loss" in info else terminated
            row = {
                "obs": obs, "mask": mask, "action": action, "reward": reward,
                "terminal": terminal, "done": info["done"], "final_obs": info["final_obs"],
                "final_mask": info["final_action_mask"] if "final_action_mask" in info
                else torch.ones_like(mask),
            }  # fmt: skip
            if self.encoder is not None:  # once per env step, on the obs the step returned
                self.feat = encode_features(self.encoder, self.obs, info["done"])
                row["feat"] = feat
                row["final_feat"] = self._final_features(info, terminal)
            for key, value in row.items():
                rows[key].append(value)
            done = info["done"]
            for key, value in info["episode"].items():
                finished.setdefault(key, []).append(value[done])
        stacked = {k: torch.stack(v) if v else None for k, v in rows.items() if k != "finished"}
        return Transitions(**stacked, finished={k: torch.cat(v) for k, v in finished.items()})

    def _final_features(self, info: dict, terminal: torch.Tensor) -> torch.Tensor:
        """Features of the final observations, computed only for the rows the buffer keeps
        (episodes cut by the time limit); zeros elsewhere."""
        out = torch.zeros_like(self.feat)
        cut = info["done"] & ~terminal
        if bool(cut.any()):
            rows = cut.nonzero().squeeze(1)
            out[rows] = encode_features(stateless(self.encoder), info["final_obs"][rows])
        return out

    # -- learning -----------------------------------------------------------------------------

    def store(self, tr: Transitions) -> None:
        """Write the transitions into the replay buffer in time order, counting env steps and
        following the target network on its schedule."""
        cfg = self.config
        reward = tr.reward.sign() if cfg.clip_rewards else tr.reward
        if cfg.reward_scale != 1.0:
            reward = reward * cfg.reward_scale
        for t in range(tr.action.shape[0]):
            parts = {"obs": tr.obs[t], "mask": tr.mask[t]}
            final = {"obs": tr.final_obs[t], "mask": tr.final_mask[t]}
            if tr.feat is not None:
                parts["feat"], final["feat"] = tr.feat[t], tr.final_feat[t]
            self.buffer.add(parts, tr.action[t], reward[t], tr.terminal[t], tr.done[t], final)
            n = tr.action.shape[1]
            self.added += n
            before = self.env_steps
            self.env_steps += n
            if self.env_steps // cfg.target_update_interval > before // cfg.target_update_interval:
                self._update_target()

    def _update_target(self) -> None:
        with torch.no_grad():
            for target, online in zip(self.target.parameters(), self.q.parameters()):
                if self.config.tau >= 1.0:
                    target.copy_(online)
                else:
                    target.lerp_(online, self.config.tau)
            # Buffers (a custom torso's BatchNorm statistics) are copied: the target network
            # normalises as the online one does.
            for target, online in zip(self.target.buffers(), self.q.buffers()):
                target.copy_(online)

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

    def learn(self, tr: Transitions, progress: float) -> dict[str, float]:
        cfg = self.config
        self.store(tr)
        sums = torch.zeros(3, device=self.device)  # loss, q mean, skipped steps
        steps = 0
        if self._learn_ready() and cfg.gradient_steps > 0:
            sums = self._train_round(linear(cfg.per_beta, 1.0, progress))
            steps = cfg.gradient_steps
            self.grad_steps += steps
        loss, q_mean, skipped = (sums / max(steps, 1)).tolist()
        metrics = {
            "train/epsilon": self.epsilon,
            "train/gradient_steps": self.grad_steps,
            "train/buffer_size": len(self.buffer),
            "train/nonfinite_steps": skipped * max(steps, 1),
        }
        if steps:
            metrics["loss/td"] = loss
            metrics["train/q_mean"] = q_mean
        return metrics

    # -- checkpoints -----------------------------------------------------------------------

    def acting_state(self) -> dict:
        return {"q": self.q.state_dict(), "env_steps": self.env_steps}

    def load_acting_state(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.env_steps = int(state["env_steps"])

    def state_dict(self) -> dict:
        state = {
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "obs": self.obs,
            "mask": self.mask,
            "epsilon": self.epsilon,
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
        self.obs, self.mask = (
            _to_device(state["obs"], self.device),
            _to_device(state["mask"], self.device),
        )
        self.epsilon = float(state["epsilon"])
        if self.encoder is not None:
            if "feat" not in state:
                raise ValueError("the checkpoint was saved without an encoder")
            self.feat = _to_device(state["feat"], self.device)
            load_encoder_state(self.encoder, state["encoder"])
        self.env_steps = int(state["env_steps"])
        self.grad_steps = int(state["grad_steps"])
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
            self.added = int(state["added"])
        else:  # checkpoint without the buffer: refill before learning again
            self.added = 0
