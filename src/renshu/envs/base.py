"""The TensorEnv protocol and the FunctionalEnv adapter.

Every algorithm in renshu consumes a :class:`TensorEnv`: a batch of ``num_envs`` environments
whose ``reset``/``step`` take and return tensors. Native games are written as pure functions over
batched tensors (a :class:`FunctionalGame`) and turned into a TensorEnv by :class:`FunctionalEnv`,
which adds auto-reset, step-limit truncation, finished-episode statistics and action masks.

Conventions shared by every TensorEnv:

* ``reset(seed) -> (obs, info)`` and ``step(actions) -> (obs, reward, terminated, truncated,
  info)``; all values are tensors with a leading ``num_envs`` dimension, on ``env.device``.
* Auto-reset happens inside ``step``: where an episode ended, the returned ``obs`` is already the
  first observation of the next episode, and ``info["final_obs"]`` holds the last observation of
  the finished one (needed to bootstrap on truncation).
* ``info["action_mask"]`` (bool ``[num_envs, num_actions]``) marks legal actions of the returned
  observation.
* ``info["episode"]`` maps ``"return"``, ``"length"`` and game extras (``"score"``, ``"max_tile"``,
  ...) to ``[num_envs]`` tensors that are meaningful where ``info["done"]`` is true.
* Optional capabilities are declared in the protocol, with defaults that say "not supported",
  so nothing has to probe for them: ``supports_groups`` and ``reset_groups(group_size, seed)``
  (every block of ``group_size`` consecutive envs starts from one identical state: GRPO's
  same-start groups), ``state_dict``/``load_state_dict`` (``{}``: the env cannot save its
  games), ``frame_stack``/``frame_padding`` (observations that are stacks of the last frames,
  which a replay buffer stores once), ``render(index)`` (an RGB frame of one env) and
  ``pop_notes()`` (what happened to remote workers). Implementations subclass the protocol to
  inherit the defaults.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import gymnasium as gym
import numpy as np
import torch

S = TypeVar("S")
# frame(header=None) -> uint8 [H, W, 3]: a picture of one env (see TensorEnv.frame)
Frame = Callable[[str | None], np.ndarray]


@runtime_checkable
class TensorEnv(Protocol):
    """A batch of environments stepped with tensors (see the module docstring)."""

    num_envs: int
    device: torch.device
    num_actions: int
    observation_space: gym.Space  # one env's observation space
    action_space: gym.Space  # one env's action space
    max_episode_steps: int | None = None
    """steps after which an episode is truncated (None: no limit)"""
    frame_stack: int | None = None
    """k when an observation is the stack of the last k frames ``[k, H, W]``, else None"""
    frame_padding: str = "zeros"
    """what a stack holds before an episode's first frame: ``zeros`` or ``first``"""
    supports_groups: ClassVar[bool] = False
    """whether :meth:`reset_groups` works"""

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]: ...

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]: ...

    def close(self) -> None: ...

    def reset_groups(
        self, group_size: int, seed: int | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset so that every block of ``group_size`` consecutive envs starts from one state."""
        raise ValueError(
            f"{self!r} cannot start a group's episodes from one state; use group_start='random'"
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the very same episodes; ``{}``: not supported (a
        resumed run then starts new episodes)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{self!r} cannot load a saved env state")

    @property
    def action_meanings(self) -> tuple[str, ...]:
        """Names of the actions, for animations and hints (default: their numbers)."""
        return tuple(str(a) for a in range(self.num_actions))

    def frame(self, index: int = 0, final: bool = False) -> Frame:
        """A picture of env ``index`` now (``final``: of the episode the last step ended, before
        its auto-reset): call it, with an optional header text, for the RGB image (uint8
        ``[H, W, 3]``). Native games draw only when called, so keeping frames that may not be
        shown costs nothing."""
        raise NotImplementedError(f"{self!r} cannot render frames")

    def pop_notes(self) -> list[str]:
        """Lines worth a run's log since the last call (e.g. Ray workers restarted)."""
        return []


class FunctionalGame(Protocol[S]):
    """A game as pure batched functions; ``S`` is a dataclass of tensors ``[n, ...]``."""

    name: str
    num_actions: int
    action_meanings: tuple[str, ...]
    observation_space: gym.Space

    def init(self, n: int, generator: torch.Generator) -> S: ...

    def step(
        self, state: S, action: torch.Tensor, generator: torch.Generator
    ) -> tuple[S, torch.Tensor, torch.Tensor]: ...

    def observe(self, state: S) -> torch.Tensor: ...

    def legal_actions(self, state: S) -> torch.Tensor: ...

    def episode_extras(self, state: S) -> dict[str, torch.Tensor]:
        """Per-game statistics reported when an episode ends (``score``, ``max_tile``, ...)."""
        ...

    def render_rgb(self, state: S, index: int = 0, header: str | None = None) -> np.ndarray:
        """Game ``index`` as an RGB frame (uint8 numpy ``[H, W, 3]``)."""
        ...


# ---------------------------------------------------------------------------------------------
# State helpers: a state is a dataclass of tensors that share their first (batch) dimension.


def _map_state(fn, *states):
    first = states[0]
    values = {f.name: fn(*(vars(s)[f.name] for s in states)) for f in dataclasses.fields(first)}
    return dataclasses.replace(first, **values)


def state_where(mask: torch.Tensor, a: S, b: S) -> S:
    """Element-wise select: rows of ``a`` where ``mask`` is true, else rows of ``b``."""

    def pick(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = mask.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(m, x, y)

    return _map_state(pick, a, b)


def state_index(state: S, index: torch.Tensor | slice | int) -> S:
    """Rows ``index`` of every field (an int keeps the batch dimension)."""
    if isinstance(index, int):
        index = slice(index, index + 1)
    return _map_state(lambda x: x[index], state)


def state_repeat(state: S, repeats: int) -> S:
    """Repeat every row ``repeats`` times in place (``[a, b] -> [a, a, b, b]``)."""
    return _map_state(lambda x: x.repeat_interleave(repeats, dim=0), state)


def state_scatter(state: S, index: torch.Tensor, rows: S) -> S:
    """A copy of ``state`` whose rows ``index`` are replaced by the rows of ``rows``."""
    return _map_state(lambda x, y: x.index_put((index,), y), state, rows)


def _draw(game: FunctionalGame, state, header: str | None = None) -> np.ndarray:
    return game.render_rgb(state, 0, header=header)


# ---------------------------------------------------------------------------------------------
# Argument checks shared by every TensorEnv.


def check_seed(seed: Any) -> int | None:
    """Return ``seed`` as an int (or None), refusing anything that is not a whole number."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be >= 0 and below 2**63, got {seed}")
    return seed


def check_actions(
    actions: Any, num_envs: int, num_actions: int, device: torch.device
) -> torch.Tensor:
    """Validate a batch of discrete actions and return it as an int64 tensor on ``device``."""
    if not isinstance(actions, torch.Tensor):
        try:
            actions = torch.as_tensor(actions)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"actions must be an integer tensor of shape ({num_envs},), got {type(actions)}"
            ) from e
    if actions.dtype.is_floating_point or actions.dtype.is_complex or actions.dtype == torch.bool:
        raise ValueError(
            f"actions must have an integer dtype (e.g. torch.int64), got {actions.dtype}"
        )
    if actions.shape != (num_envs,):
        raise ValueError(
            f"actions must have shape ({num_envs},) (one action per env), "
            f"got {tuple(actions.shape)}"
        )
    actions = actions.to(device=device, dtype=torch.int64)
    low, high = torch.stack(torch.aminmax(actions)).tolist()  # one reduction, one host sync
    if low < 0 or high >= num_actions:
        bad = (actions < 0) | (actions >= num_actions)
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"actions must lie in [0, {num_actions - 1}]; env {i} got {int(actions[i])}"
        )
    return actions


@functools.cache
def _kth_legal_tables(num_actions: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For every legal-action bit code: how many actions are legal, and the k-th legal one."""
    codes = 1 << num_actions
    count = torch.zeros(codes, dtype=torch.float32)
    kth = torch.zeros(codes * num_actions, dtype=torch.int64)
    for code in range(codes):
        legal = [a for a in range(num_actions) if code >> a & 1]
        count[code] = len(legal)
        for k, a in enumerate(legal):
            kth[code * num_actions + k] = a
    return count.to(device), kth.to(device)


def random_legal_actions(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One uniformly random legal action per row of a bool mask ``[n, A]`` (a row with no
    legal action gets action 0). One uniform number per row."""
    n, num_actions = mask.shape
    u = torch.rand(n, generator=generator, device=mask.device)
    if num_actions > 10:
        noise = torch.rand(mask.shape, generator=generator, device=mask.device)
        return noise.masked_fill_(~mask, -1.0).argmax(dim=1)
    count, kth = _kth_legal_tables(num_actions, mask.device)
    if num_actions in (2, 4, 8) and mask.is_contiguous():
        # The row's bools as one integer (one byte per action): gather bit 0 of each byte.
        word = mask.view(torch.uint8).view(
            {2: torch.int16, 4: torch.int32, 8: torch.int64}[num_actions]
        )
        word = word.view(-1).to(torch.int64)
        code = word & 1
        for a in range(1, num_actions):
            code = code | ((word >> (7 * a)) & (1 << a))
    else:
        m = mask.to(torch.int64)
        code = m[:, 0]
        for a in range(1, num_actions):
            code = code | (m[:, a] << a)
    k = (u * count.index_select(0, code)).to(torch.int64)
    return kth.index_select(0, code * num_actions + k)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None picks CUDA when present, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"--device {str(device)!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(
            f"--device {str(device)!r} is not supported; use auto, cpu, cuda or cuda:N"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available; use --device cpu")
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise ValueError(f"--device {device} does not exist: this machine has {count} GPU(s)")
    return device


def make_generator(device: torch.device, seed: int | None) -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


# ---------------------------------------------------------------------------------------------

# Games a CPU FunctionalEnv initialises ahead in one call (see FunctionalEnv).
POOL_MIN = 256
POOL_MAX = 4096


class FunctionalEnv(TensorEnv):
    """Turns a :class:`FunctionalGame` into a :class:`TensorEnv`.

    Adds auto-reset, truncation after ``max_episode_steps`` (None: never), per-env running
    episode return and length, and the finished-episode statistics of ``info["episode"]``.
    All work is tensor ops on ``device``; nothing synchronises with the host except the optional
    action check (``check=False`` skips it) and, on CPU, the auto-reset.

    On CPU the games that end are replaced by games from a pool initialised ahead
    (``num_envs`` games, within ``POOL_MIN`` and ``POOL_MAX``, drawn in order and refilled
    from the env's generator when used up): a step where a few games end costs a few row
    copies instead of a ``game.init`` of those few (dozens of small tensor ops). On other
    devices every step draws a full batch of fresh games and keeps those of the rows that
    ended (no host sync). Either way a seed fixes every game; the pool is part of
    :meth:`state_dict`.
    """

    def __init__(
        self,
        game: FunctionalGame,
        num_envs: int = 1,
        device: str | torch.device | None = "cpu",
        max_episode_steps: int | None = None,
        seed: int | None = None,
        check: bool = True,
        stuck_steps: int | None = None,
    ):
        if not isinstance(num_envs, numbers.Integral) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        num_envs = int(num_envs)
        if max_episode_steps is not None and (
            not isinstance(max_episode_steps, numbers.Integral)
            or isinstance(max_episode_steps, bool)
            or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps must be a positive int or None, got {max_episode_steps!r}"
            )
        if stuck_steps is not None and (
            not isinstance(stuck_steps, numbers.Integral) or stuck_steps < 1
        ):
            raise ValueError(f"stuck_steps must be a positive int or None, got {stuck_steps!r}")
        # Truncate an episode whose observation stayed the same this many steps in a row (an
        # evaluated greedy policy repeating a move that changes nothing would never end).
        self.stuck_steps = stuck_steps
        self.game = game
        self.num_envs = num_envs
        self.device = resolve_device(device)
        self.max_episode_steps = max_episode_steps
        self.num_actions = game.num_actions
        self.observation_space = game.observation_space
        self.action_space = gym.spaces.Discrete(game.num_actions)
        self.check = check
        # CPU: auto-reset touches only the finished rows (needs a host sync, free on CPU);
        # elsewhere: a sync-free full-batch select.
        self.sync_free = self.device.type != "cpu"
        self._seed = check_seed(seed)
        self.generator = make_generator(self.device, self._seed)
        self.state = None
        self.final_state = None  # the state the last step reached, before its auto-reset
        self._clear_pool()

    def __repr__(self) -> str:
        return (
            f"FunctionalEnv({self.game.name}, num_envs={self.num_envs}, device={self.device}, "
            f"max_episode_steps={self.max_episode_steps})"
        )

    def reset(
        self, seed: int | None = None, state: Any = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Start new episodes: ``num_envs`` fresh games, or the games of ``state`` (a state of
        this game with ``num_envs`` rows, e.g. ``Game2048.from_tiles``: for curricula, tests
        and start positions). ``seed`` reseeds the generator that drives everything after."""
        seed = check_seed(seed)
        if state is not None:
            state = self._check_start(state)  # before anything changes
        if seed is not None:
            self.generator.manual_seed(seed)
        self._clear_pool()
        if state is None:
            state = self.game.init(self.num_envs, self.generator)
        return self._start(state)

    def _check_start(self, state: Any) -> Any:
        """``state`` moved to this env's device, or one ValueError saying what is wrong."""
        expected = type(self.game.init(1, make_generator(self.device, 0)))  # its own generator
        if type(state) is not expected:
            raise ValueError(
                f"state must be a {expected.__name__} of {self.game.name} (e.g. from "
                f"game.init or game.from_tiles), got {type(state).__name__}"
            )
        for f in dataclasses.fields(state):
            value = getattr(state, f.name)
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                raise ValueError(f"state.{f.name} must be a tensor with one row per env")
            if value.shape[0] != self.num_envs:
                raise ValueError(
                    f"state.{f.name} has {value.shape[0]} rows; this env has num_envs="
                    f"{self.num_envs} (one row per env)"
                )
        return _map_state(lambda x: x.to(self.device), state)

    supports_groups = True

    def reset_groups(
        self, group_size: int, seed: int | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset so that every block of ``group_size`` consecutive envs starts from one and the
        same state: ``num_envs / group_size`` fresh states, each repeated (GRPO's groups)."""
        if not isinstance(group_size, numbers.Integral) or group_size < 1:
            raise ValueError(f"group_size must be a positive int, got {group_size!r}")
        if self.num_envs % group_size:
            raise ValueError(f"group_size {group_size} must divide num_envs {self.num_envs}")
        seed = check_seed(seed)
        if seed is not None:
            self.generator.manual_seed(seed)
        self._clear_pool()
        starts = self.game.init(self.num_envs // int(group_size), self.generator)
        return self._start(state_repeat(starts, int(group_size)))

    # -- the pool of games that replace those that end (CPU auto-reset) ----------------------

    def _clear_pool(self) -> None:
        self._pool = None  # a state of games initialised ahead, drawn in order
        self._pool_obs = None  # their observations
        self._pool_next = 0  # the first game not drawn yet

    def _pool_size(self, wanted: int) -> int:
        """Games per refill: about one batch (at least POOL_MIN, at most POOL_MAX unless more
        end at once), so that one ``game.init`` serves the games that end over many steps."""
        return max(min(max(self.num_envs, POOL_MIN), POOL_MAX), wanted)

    def _fresh(self, count: int) -> tuple[Any, torch.Tensor]:
        """The next ``count`` new games of the pool and their observations, refilling it (in
        one ``game.init``) when fewer are left."""
        if self._pool is None or self._pool_next + count > self._pool_obs.shape[0]:
            self._pool = self.game.init(self._pool_size(count), self.generator)
            self._pool_obs = self.game.observe(self._pool)
            self._pool_next = 0
        rows = slice(self._pool_next, self._pool_next + count)
        self._pool_next += count
        return state_index(self._pool, rows), self._pool_obs[rows]

    def _start(self, state) -> tuple[torch.Tensor, dict[str, Any]]:
        self.state = state
        self._blank_extras = {
            k: torch.zeros_like(v) for k, v in self.game.episode_extras(self.state).items()
        }
        self.episode_return = torch.zeros(self.num_envs, device=self.device)
        self.episode_length = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        obs = self.game.observe(self.state)
        self._unchanged = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._last_obs = obs
        return obs, {"action_mask": self.game.legal_actions(self.state)}

    def step(self, actions: torch.Tensor):
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if self.check:
            actions = check_actions(actions, self.num_envs, self.num_actions, self.device)
        state, reward, terminated = self.game.step(self.state, actions, self.generator)
        self.final_state = state
        self.episode_return = self.episode_return + reward
        self.episode_length = self.episode_length + 1
        if self.max_episode_steps is None:
            truncated, done = torch.zeros_like(terminated), terminated.clone()
        else:
            done = terminated | (self.episode_length >= self.max_episode_steps)
            truncated = done ^ terminated  # at the limit and not terminated

        final_obs = self.game.observe(state)
        if self.stuck_steps is not None:
            same = (final_obs == self._last_obs).flatten(1).all(1)
            self._unchanged = (self._unchanged + 1) * same
            done = done | (self._unchanged >= self.stuck_steps)
            truncated = done ^ terminated
        final_mask = self.game.legal_actions(state)
        episode = {"return": self.episode_return, "length": self.episode_length}
        if self.sync_free:
            # Accelerators: fresh games for every row, kept where an episode ended (no host sync).
            episode.update(self.game.episode_extras(state))
            fresh = self.game.init(self.num_envs, self.generator)
            self.state = state_where(done, fresh, state)
            obs = self.game.observe(self.state)
            keep = ~done
            self.episode_return = self.episode_return * keep
            self.episode_length = self.episode_length * keep
        else:
            # CPU, where a host sync costs nothing: work only on the rows that ended, and
            # replace them by games from the pool.
            ended = done.nonzero().squeeze(1)
            if ended.numel() == 0:
                episode.update(self._blank_extras)
                self.state, obs = state, final_obs
            else:
                extras = {}  # games without extras (CartPole) skip indexing the state
                if self._blank_extras:
                    extras = self.game.episode_extras(state_index(state, ended))
                episode.update(
                    {k: self._blank_extras[k].index_put((ended,), v) for k, v in extras.items()}
                )
                fresh, fresh_obs = self._fresh(ended.numel())
                self.state = state_scatter(state, ended, fresh)
                obs = final_obs.index_put((ended,), fresh_obs)
                self.episode_return = self.episode_return.index_fill(0, ended, 0)
                self.episode_length = self.episode_length.index_fill(0, ended, 0)
        if self.stuck_steps is not None:
            self._unchanged = self._unchanged * ~done
            self._last_obs = obs
        info = {
            "action_mask": self.game.legal_actions(self.state),
            "final_obs": final_obs,
            "final_action_mask": final_mask,
            "done": done,
            "episode": episode,
        }
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.state = self.final_state = None

    @property
    def action_meanings(self) -> tuple[str, ...]:
        return tuple(self.game.action_meanings)

    def frame(self, index: int = 0, final: bool = False) -> Frame:
        state = self.final_state if final else self.state
        if state is None:
            raise RuntimeError("call reset() (and, for final=True, step()) before frame()")
        one = state_index(state, index)  # the state of this step, kept (states are immutable)
        return functools.partial(_draw, self.game, one)

    # -- checkpoints: everything needed to continue the very same games ----------------------

    def state_dict(self) -> dict[str, Any]:
        if self.state is None:
            raise RuntimeError("call reset() before state_dict()")
        pool = None
        if self._pool is not None:  # the games not drawn yet
            rest = state_index(self._pool, slice(self._pool_next, None))
            pool = {k: v.clone() for k, v in vars(rest).items()}  # not the whole pool's storage
        return {
            "state": dict(vars(self.state)),
            "episode_return": self.episode_return,
            "episode_length": self.episode_length,
            "generator": self.generator.get_state(),
            "pool": pool,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if self.state is None:
            self.reset()
        saved = int(d["episode_return"].shape[0])
        if saved != self.num_envs:
            raise ValueError(f"env state is for {saved} envs, this env has {self.num_envs}")
        fields = {k: v.to(self.device) for k, v in d["state"].items()}
        expected = {f.name for f in dataclasses.fields(self.state)}
        if set(fields) != expected:
            raise ValueError(
                f"env state has fields {sorted(fields)}, {self.game.name} has {sorted(expected)}"
            )
        self.state = dataclasses.replace(self.state, **fields)
        self.episode_return = d["episode_return"].to(self.device)
        self.episode_length = d["episode_length"].to(self.device)
        self.generator.set_state(d["generator"])
        self._clear_pool()
        pool = d.get("pool")  # absent in states saved before the pool: start a new one
        if pool:
            pool = {k: v.to(self.device) for k, v in pool.items()}
            if set(pool) != expected:
                raise ValueError(
                    f"env pool has fields {sorted(pool)}, {self.game.name} has {sorted(expected)}"
                )
            self._pool = dataclasses.replace(self.state, **pool)
            self._pool_obs = self.game.observe(self._pool)
