"""The Algorithm protocol: what the runner, evaluation and Ray workers call on an algorithm.

An algorithm is a class over a :class:`~renshu.envs.base.TensorEnv` with a frozen dataclass
config; it subclasses :class:`Algorithm` (which declares the optional parts with defaults).
Acting and learning are two calls, so that collection can happen elsewhere (a Ray worker
holding the learner's weights) and the learner only joins batches and learns::

    algo = PPO(env, PPOConfig(), seed=0)
    batch = algo.collect(progress)             # act in the env with the current weights
    metrics = algo.learn(batch, progress)      # one learning step on that batch

``progress`` (0..1, the share of the run's budget used) is an argument of both, because the
schedules (learning-rate annealing, DQN's epsilon, prioritized replay's beta) depend on it;
nothing outside an algorithm writes into it. ``learn`` counts the batch's env steps into
``env_steps``.

A batch is a dataclass of tensors whose env axis can be split over workers and joined again
(:class:`Batch`); every batch type says how with ``concat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch

from renshu.envs.base import TensorEnv

B = TypeVar("B", bound="Batch")


@runtime_checkable
class Batch(Protocol):
    """What :meth:`Algorithm.collect` returns (a rollout, transitions, whole episodes)."""

    @property
    def env_steps(self) -> int:
        """Env steps the batch holds (what ``learn`` adds to the algorithm's count)."""
        ...

    @property
    def episodes(self) -> dict[str, torch.Tensor]:
        """Statistics of the episodes that finished while collecting: ``return``, ``length``
        and the env's extras, 1-D tensors of one entry per finished episode."""
        ...

    @classmethod
    def concat(cls: type[B], parts: Sequence[B]) -> B:
        """The batches of consecutive env slices joined into one, as if one collector had
        stepped all their envs."""
        ...


@runtime_checkable
class Algorithm(Protocol):
    """A learning algorithm over a TensorEnv (see the module docstring)."""

    name: ClassVar[str]
    """the algorithm's name on the command line"""
    config_class: ClassVar[type]
    """its frozen config dataclass"""
    takes_encoder: ClassVar[bool]
    """whether it takes a frozen encoder's features (``encoder=`` argument)"""
    value_based: ClassVar[bool] = False
    """whether it acts greedily on learned values (DQN, n-tuple), so that evaluation may add
    the env's ``eval.epsilon`` of random actions; policy-gradient agents say False"""
    searches: ClassVar[tuple[str, ...]] = ()
    """play-time searches ``search_values(obs, mask, depth, cutoff)`` offers (``renshu eval
    --search``, :mod:`renshu.runner.search`); () for none"""

    env: TensorEnv
    config: Any
    device: torch.device
    env_steps: int
    """env steps learned from so far"""

    @property
    def steps_per_update(self) -> int:
        """The fewest env steps one collect/learn round takes."""
        ...

    def collect(self, progress: float) -> Batch: ...

    def learn(self, batch: Any, progress: float) -> dict[str, float]: ...

    def act(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None, deterministic: bool = True
    ) -> torch.Tensor:
        """Actions for a batch of observations; illegal ones (``mask`` false) never."""
        ...

    def action_values(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[str, torch.Tensor]:
        """What an animation shows next to each action: ``(label, values [B, A])``."""
        ...

    def search_values(
        self,
        obs: torch.Tensor,
        mask: torch.Tensor | None = None,
        depth: int = 2,
        cutoff: float = 0.0,
    ) -> torch.Tensor:
        """Each action's value under play-time search ``[B, A]`` (``-inf`` where illegal), for
        an algorithm whose ``searches`` is not empty (``renshu eval --search``)."""
        raise NotImplementedError(f"{self.name} has no play-time search")

    def acting_state(self) -> dict[str, Any]:
        """What a copy of this algorithm needs to collect as this one would (the weights it
        acts with, and the counters its exploration depends on); tensors and plain data."""
        ...

    def load_acting_state(self, state: dict[str, Any]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def update(algo: Algorithm, progress: float) -> tuple[Any, dict[str, float]]:
    """One round on the algorithm's own env: ``collect`` then ``learn``. Returns both."""
    batch = algo.collect(progress)
    return batch, algo.learn(batch, progress)
