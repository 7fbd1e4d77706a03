"""N-tuple TD learning for 2048, with expectimax search at play time.

The value of an afterstate (the board after a move, before the new tile) is a sum of lookup
table weights over fixed groups of cells (tuples), shared over the board's 8 symmetries
(:mod:`renshu.core.ntuple`). The agent plays the move with the best ``r + V(afterstate)`` and
learns TD(0) on afterstates, as Szubert & Jaskowski 2014 and TDL2048 do, over thousands of
games at once::

    V(s'_t) += alpha * (r_{t+1} + V(s'_{t+1}) - V(s'_t))      V(s'_T) -> 0 at game over

where ``s'_{t+1}`` is the afterstate chosen from the board that followed ``s'_t``. Each of a
value's ``tuples x 8`` weights moves by ``alpha / lookups`` of the error.

One round is one move of every game: ``collect`` plays it (all four afterstates of every board
and their values in one pass) and records each game's chosen afterstate, reward and value;
``learn`` moves every game's previous afterstate toward ``r + V(chosen afterstate)``, and the
final afterstate of every game that ended toward 0. All errors of a round use the tables as they
were at its start, and the round's updates are added with one accumulating scatter: when games
share a weight their updates add up (``collision_cap=None``: the gradient of the round's summed
squared errors), up to ``collision_cap`` of them; more are averaged to that many.
Summed updates from many games multiply the step on the weights they share and diverge, so a
weight's ``c`` updates of a round are scaled by ``min(1, collision_cap / c)`` (see
docs/ntuple.md for the measurements behind the defaults).

On the CPU with numba installed, compiled kernels do a board's moves, lookups and updates in one
pass (``kernel="auto"``); the torch path runs anywhere (CUDA) and gives bit-identical tables on
the CPU (tested). Play is greedy (the env is random enough); ``search_actions`` adds expectimax.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from renshu.algos.base import Algorithm
from renshu.config import check
from renshu.core import ntuple as nt
from renshu.core.schedules import linear
from renshu.envs.base import FunctionalEnv
from renshu.envs.game2048 import MAX_EXPONENT, Game2048, board_from_exponents


@dataclass(frozen=True)
class NTupleConfig:
    num_envs: int = 4096
    """games played (and learned from) at once"""
    tuples: str = "4x6"
    """tuple set: 4x6 (Wu et al.), 2x4+2x6 (Szubert & Jaskowski), 8x6 (Matsuzaki), or cell lists
    like '0,1,2,3,4,5;4,5,6,7,8,9' (cells 0-15, row-major, tuples separated by ';')"""
    learning_rate: float = 0.1
    """alpha: the step of V toward the TD target (each of the tuples x 8 lookups moves by
    alpha / lookups of the error)"""
    learning_rate_end: float | None = None
    """alpha falls linearly to this over the run's budget (None: constant)"""
    init_value: float = 0.0
    """V of every afterstate before learning (optimistic initialisation when > 0): each weight
    starts at init_value / lookups"""
    stage_tile: int | None = None
    """tile (e.g. 16384) from which afterstates use a second table set (None: one set)"""
    collision_cap: int | None = 8
    """how the c updates one weight gets from a round's games combine: each is scaled by
    min(1, cap / c), so up to cap add up and more are averaged (1: their mean); None: all add
    up, one gradient step on the summed squared errors (diverges with many games at once)"""
    kernel: str = "auto"
    """auto (numba on the CPU when installed, else torch), torch or numba"""

    def __post_init__(self):
        check(self.num_envs >= 1, "num_envs", "must be >= 1", self.num_envs)
        try:
            nt.parse_tuples(self.tuples)
        except ValueError as e:
            raise ValueError(f"config field 'tuples' = {self.tuples!r}: {e}") from None
        for name in ("learning_rate", "learning_rate_end"):
            value = getattr(self, name)
            check(
                value is None or (math.isfinite(value) and value >= 0),
                name,
                "must be >= 0 and finite",
                value,
            )
        check(math.isfinite(self.init_value), "init_value", "must be finite", self.init_value)
        tile = self.stage_tile
        check(
            tile is None or (tile >= 4 and tile & (tile - 1) == 0 and tile <= 2**MAX_EXPONENT),
            "stage_tile",
            f"must be a tile value, a power of two from 4 to {2**MAX_EXPONENT}",
            tile,
        )
        cap = self.collision_cap
        check(cap is None or cap >= 1, "collision_cap", "must be >= 1 or None", cap)
        check(
            self.kernel in ("auto", "torch", "numba"),
            "kernel",
            "must be auto, torch or numba",
            self.kernel,
        )


@dataclass
class NTupleBatch:
    """One move of every game: the chosen afterstate, its reward and value (``[N]``), how the
    game went on (``terminated`` / ``truncated`` ``[N]``) and the finished games' statistics."""

    after: torch.Tensor
    reward: torch.Tensor
    value: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    episodes: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def env_steps(self) -> int:
        return int(self.after.shape[0])

    @classmethod
    def concat(cls, parts: Sequence[NTupleBatch]) -> NTupleBatch:
        keys = parts[0].episodes.keys()
        return cls(
            *(torch.cat([getattr(p, name) for p in parts]) for name in _BATCH_FIELDS),
            episodes={k: torch.cat([p.episodes[k] for p in parts]) for k in keys},
        )


_BATCH_FIELDS = ("after", "reward", "value", "terminated", "truncated")


def _check_env(env) -> None:
    game = env.game if isinstance(env, FunctionalEnv) else None
    if not isinstance(game, Game2048) or game.obs != "exponent":
        got = repr(game) if isinstance(game, Game2048) else type(env).__name__
        raise ValueError(
            "ntuple plays renshu's 2048 with exponent observations only "
            "(make_env('game2048', num_envs=N) or --env game2048 with obs=exponent); "
            f"got {got}"
        )


class NTuple(Algorithm):
    """N-tuple network TD(0) learner for 2048 (see the module docstring)."""

    name = "ntuple"
    config_class = NTupleConfig
    takes_encoder = False
    value_based = True
    searches = ("expectimax",)
    """play-time searches ``search_actions`` offers (``renshu eval --search``)"""

    def __init__(
        self, env, config: NTupleConfig, seed: int = 0, *, encoder=None, learner: bool = True
    ):
        if encoder is not None:
            raise ValueError("ntuple takes no encoder: its features are the board's tuples")
        _check_env(env)
        self.env = env
        self.config = config
        self.device = env.device
        self.seed = seed
        self.learner = learner
        stages = 1 if config.stage_tile is None else 2
        self.layout = nt.layout(nt.parse_tuples(config.tuples), stages)
        self.stage_exp = (
            None if config.stage_tile is None else int(config.stage_tile).bit_length() - 1
        )
        init = config.init_value / self.layout.num_lookups
        self.tables, self.counts = nt.allocate_tables(
            self.layout, self.device, init, counts=config.collision_cap is not None
        )
        self.cap = 1.0 if config.collision_cap is None else float(config.collision_cap)
        # (on stderr: `renshu eval --json` prints only its JSON on stdout)
        print(f"ntuple: {config.tuples}: {self.layout.describe()}", file=sys.stderr, flush=True)
        self.backend = nt.make_backend(self.layout, self.device, config.kernel, self.stage_exp)
        self.env_steps = 0
        # CPU: learn from the rows that have an update (a host sync, free here); elsewhere:
        # every row, weighted 0 or 1, so nothing waits for the device.
        self.sync_free = self.device.type != "cpu"
        n = env.num_envs
        self.pending = torch.zeros(n, dtype=torch.int64, device=self.device)
        self.pending_valid = torch.zeros(n, dtype=torch.bool, device=self.device)
        self.obs: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None

    @property
    def steps_per_update(self) -> int:
        return self.env.num_envs

    # -- acting -----------------------------------------------------------------------------

    def _boards(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dtype != torch.uint8 or tuple(obs.shape[-2:]) != (4, 4):
            raise ValueError(
                f"ntuple takes 2048 exponent observations (uint8 [B, 4, 4]), got "
                f"{obs.dtype} {tuple(obs.shape)}"
            )
        return board_from_exponents(obs.to(self.device)).view(-1)

    def _q(self, boards: torch.Tensor) -> torch.Tensor:
        return self.backend.q(self.tables, boards)[0]

    def action_values(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[str, torch.Tensor]:
        """Each move's ``r + V(afterstate)`` ``[B, 4]``; ``-inf`` for a move that is illegal."""
        q = self._q(self._boards(obs))
        if mask is not None:
            q = q.masked_fill(~mask.to(q.device), -math.inf)
        return "r + V(afterstate)", q

    def act(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None, deterministic: bool = True
    ) -> torch.Tensor:
        """The greedy move on ``r + V(afterstate)`` among legal moves (``deterministic`` is
        accepted for the protocol: play is always greedy)."""
        return self.action_values(obs, mask)[1].argmax(1)

    def search_values(
        self,
        obs: torch.Tensor,
        mask: torch.Tensor | None = None,
        depth: int = 2,
        cutoff: float = 0.0,
    ) -> torch.Tensor:
        """Each move's expectimax value ``[B, 4]`` (``-inf`` where illegal): depth 1 is
        ``r + V(afterstate)``; depth 2 averages, over every empty cell x {2: 0.9, 4: 0.1}, the
        best next move's ``r + V``; deeper likewise. ``cutoff`` > 0 values chance nodes
        reached with a probability below it by ``V`` instead of expanding them."""
        if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 4:
            raise ValueError(f"search depth must be an int from 1 to 4, got {depth!r}")
        if not (math.isfinite(cutoff) and 0 <= cutoff < 1):
            raise ValueError(f"search cutoff must lie in [0, 1), got {cutoff!r}")
        boards = self._boards(obs)
        if depth == 2 and self.backend.expectimax2 is not None:
            # one compiled pass per board (a cut-off below 1 never cuts at depth 2: the only
            # chance nodes are the root's afterstates, reached with probability 1)
            q = self.backend.expectimax2(self.tables, boards)
        elif depth == 3 and self.backend.expectimax3 is not None:
            q = self.backend.expectimax3(self.tables, boards, cutoff)
        else:
            q = self._search(boards, depth, cutoff)
        if mask is not None:
            q = q.masked_fill(~mask.to(q.device), -math.inf)
        return q

    def _search(self, boards: torch.Tensor, depth: int, cutoff: float) -> torch.Tensor:
        return nt.expectimax_q(
            boards,
            depth,
            self._q,
            lambda b: self.backend.value(self.tables, b),
            cutoff,
        )

    def search_actions(
        self,
        obs: torch.Tensor,
        mask: torch.Tensor | None = None,
        depth: int = 2,
        cutoff: float = 0.0,
    ) -> torch.Tensor:
        """The move with the best expectimax value (:meth:`search_values`); what ``renshu eval
        RUN --search expectimax --depth D`` plays."""
        return self.search_values(obs, mask, depth, cutoff).argmax(1)

    # -- collecting and learning -------------------------------------------------------------

    def collect(self, progress: float = 0.0) -> NTupleBatch:
        """Play one greedy move in every game."""
        if self.obs is None:
            self.obs, info = self.env.reset(seed=self.seed)
            self.mask = info["action_mask"]
        action, after, reward, value = self.backend.best(self.tables, self._boards(self.obs))
        obs, _, terminated, truncated, info = self.env.step(action)
        self.obs, self.mask = obs, info["action_mask"]
        ended = info["done"].nonzero().squeeze(1)
        episodes = {k: v.index_select(0, ended) for k, v in info["episode"].items()}
        return NTupleBatch(
            after=after,
            reward=reward,
            value=value,
            terminated=terminated,
            truncated=truncated,
            episodes=episodes,
        )

    def learning_rate(self, progress: float) -> float:
        cfg = self.config
        end = cfg.learning_rate if cfg.learning_rate_end is None else cfg.learning_rate_end
        return linear(cfg.learning_rate, end, progress)

    def learn(self, batch: NTupleBatch, progress: float = 0.0) -> dict[str, float]:
        """TD(0): each game's previous afterstate toward ``r + V(this move's afterstate)``, and
        the afterstate after which a game ended toward 0; one accumulating scatter."""
        rate = self.learning_rate(progress)
        target = batch.reward + batch.value
        ended = batch.terminated
        zeros = torch.zeros_like(target)
        if not self.sync_free:  # compact (a host sync costs nothing on the CPU)
            boards = torch.cat([self.pending[self.pending_valid], batch.after[ended]])
            targets = torch.cat([target[self.pending_valid], zeros[ended]])
            delta = self.backend.update(self.tables, boards, targets, rate, self.counts, self.cap)
            count = delta.shape[0]
            abs_error = float(delta.abs().sum()) / max(count, 1)
        else:  # every row, weighted 0 or 1: no host sync before the scatter
            boards = torch.cat([self.pending, batch.after])
            targets = torch.cat([target, zeros])
            weight = torch.cat([self.pending_valid, ended]).to(torch.float32)
            delta = nt.td_update(
                self.tables,
                boards,
                targets,
                rate,
                self.layout,
                self._stage(boards),
                weight,
                self.counts,
                self.cap,
            )
            count = weight.sum()
            abs_error = float((delta.abs() * weight).sum() / count.clamp(min=1))
            count = int(count)
        self.pending = batch.after
        self.pending_valid = ~(batch.terminated | batch.truncated)
        self.env_steps += batch.env_steps
        return {
            "train/td_abs_error": abs_error,
            "train/learning_rate": rate,
            "train/updates": float(count),
        }

    def _stage(self, boards: torch.Tensor) -> torch.Tensor | None:
        return None if self.stage_exp is None else nt.board_stage(boards, self.stage_exp)

    # -- state ------------------------------------------------------------------------------

    def acting_state(self) -> dict[str, Any]:
        return {"tables": self.tables}

    def load_acting_state(self, state: dict[str, Any]) -> None:
        self._load_tables(state["tables"])

    def _load_tables(self, tables: torch.Tensor) -> None:
        if tables.shape != self.tables.shape:
            raise ValueError(
                f"n-tuple tables hold {tables.shape[0]:,} weights, this config's "
                f"{self.config.tuples} needs {self.tables.shape[0]:,}"
            )
        self.tables.copy_(tables)

    def state_dict(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "pending": self.pending,
            "pending_valid": self.pending_valid,
            "obs": self.obs,
            "mask": self.mask,
            "env_steps": self.env_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_tables(state["tables"])
        self.pending = state["pending"].to(self.device)
        self.pending_valid = state["pending_valid"].to(self.device)
        self.obs = None if state["obs"] is None else state["obs"].to(self.device)
        self.mask = None if state["mask"] is None else state["mask"].to(self.device)
        self.env_steps = int(state["env_steps"])
