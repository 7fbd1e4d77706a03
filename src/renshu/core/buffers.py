"""Replay memory for off-policy agents: preallocated tensors, sampling without Python loops.

Layout. Transitions from ``num_envs`` envs are kept time-major in a ring of ``rows`` rows:
slot ``(row, env)`` is what env ``env`` saw at one vector step. Each slot stores the observation
*before* the step (its parts: ``obs``, ``mask``, and any extra such as encoder features), the
action, the reward, whether the step ended learning (``terminal``: termination, or a lost life)
and whether it ended the env's episode (``done``). The next observation is never stored twice:
it is the observation of slot ``(row + 1, env)``, except where the episode ended; there, only a
step that was cut by the time limit (done, not terminal) needs it for bootstrapping, and its
final observation goes to a small side store.

Frame stacks. With ``frame_stack=k`` (uint8 ``[k, H, W]`` observations, e.g. Atari) a slot keeps
only the newest frame and its position in the episode; a stack is rebuilt from the k-1 rows
before it, with the env's padding (zeros, or the episode's first frame) before the episode
start. A frame is stored once, not 2k times (obs and next obs, k copies each): 1M Atari
transitions take ~7.1 GB instead of ~56 GB.

n-step returns are computed when sampling, along each env's time axis: rewards of up to ``n``
steps, cut at the first terminal (no bootstrap) or episode end (bootstrap from the final
observation).

Prioritized replay (proportional, Schaul et al. 2016): a sum tree over slots, sampled by
stratified descent (one vectorised pass per tree level), with ``priority = (|td| + eps)^alpha``
and importance weights ``(size * P(i))^-beta`` normalised by the batch maximum.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch


@dataclass
class Batch:
    obs: dict[str, torch.Tensor]  # each part [B, ...] (``obs``, ``mask``, extras)
    actions: torch.Tensor  # int64 [B]
    returns: torch.Tensor  # float [B]: sum of discounted rewards over the n-step window
    next_obs: dict[str, torch.Tensor]  # parts of the bootstrap observation [B, ...]
    discounts: torch.Tensor  # float [B]: gamma^m, or 0 where the window ended in a terminal
    weights: torch.Tensor  # float [B]: importance weights (ones without prioritized replay)
    indices: torch.Tensor  # int64 [B]: slot ids, for update_priorities

    def split(self, size: int) -> list[Batch]:
        """Consecutive minibatches of ``size`` rows (views, no copies)."""
        return [self.slice(i, i + size) for i in range(0, self.actions.shape[0], size)]

    def slice(self, start: int, stop: int) -> Batch:
        def part(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v[start:stop] for k, v in d.items()}

        return Batch(
            obs=part(self.obs),
            actions=self.actions[start:stop],
            returns=self.returns[start:stop],
            next_obs=part(self.next_obs),
            discounts=self.discounts[start:stop],
            weights=self.weights[start:stop],
            indices=self.indices[start:stop],
        )


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation on ``device`` (None when it cannot be told)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


class SumTree:
    """Sums of non-negative priorities over ``size`` leaves in a flat binary tree (root at 1).

    Updates rewrite the leaves, then recompute each level's touched parents from their two
    children (no incremental adds, so no drift); sampling descends all queries level by level.
    """

    def __init__(self, size: int, device: torch.device):
        self.size = size
        self.leaves = 1 << max(0, math.ceil(math.log2(max(size, 1))))
        self.depth = int(math.log2(self.leaves))
        self.tree = torch.zeros(2 * self.leaves, dtype=torch.float64, device=device)

    @property
    def total(self) -> torch.Tensor:
        return self.tree[1]

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        return self.tree[idx + self.leaves]

    def set(self, idx: torch.Tensor, values: torch.Tensor) -> None:
        node = idx + self.leaves
        self.tree[node] = values.to(self.tree.dtype)
        for _ in range(self.depth):
            node = node // 2
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]

    def find(self, mass: torch.Tensor) -> torch.Tensor:
        """Leaf index for each ``mass`` in [0, total): the first leaf whose prefix sum passes it.

        Never lands on a zero leaf: a query only goes right when the right subtree has mass.
        """
        node = torch.ones_like(mass, dtype=torch.int64)
        mass = mass.to(self.tree.dtype)
        for _ in range(self.depth):
            left = self.tree[2 * node]
            right_mass = self.tree[2 * node + 1]
            go_right = (mass >= left) & (right_mass > 0)
            mass = torch.where(go_right, mass - left, mass)
            node = 2 * node + go_right.long()
        return node - self.leaves


class ReplayBuffer:
    """Time-major replay ring for ``num_envs`` envs (see the module docstring).

    Args:
        capacity: transitions kept (rounded up to a multiple of ``num_envs``).
        num_envs: envs adding one transition each per :meth:`add`.
        parts: observation parts, name -> (shape, dtype); must include ``"obs"``.
        device: where everything lives (the training device).
        n_step, gamma: the n-step return sampled batches carry.
        frame_stack: k when ``obs`` is a stack of k frames to store once each (else None).
        frame_padding: what a stack holds before its episode's first frame: ``"zeros"`` or
            ``"first"`` (the first frame repeated).
        prioritized, alpha, eps: proportional prioritized replay.
        max_episode_steps: the env's time limit if known: sizes the side store of final
            observations of time-limit cuts (None: room for one per slot).
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        parts: dict[str, tuple[tuple[int, ...], torch.dtype]],
        device: torch.device | str = "cpu",
        n_step: int = 1,
        gamma: float = 0.99,
        frame_stack: int | None = None,
        frame_padding: str = "zeros",
        prioritized: bool = False,
        alpha: float = 0.6,
        eps: float = 1e-6,
        max_episode_steps: int | None = None,
    ):
        if "obs" not in parts:
            raise ValueError("parts must include 'obs'")
        if frame_padding not in ("zeros", "first"):
            raise ValueError(f"frame_padding must be 'zeros' or 'first', got {frame_padding!r}")
        self.device = torch.device(device)
        self.num_envs = num_envs
        self.rows = max(math.ceil(capacity / num_envs), n_step + (frame_stack or 1) + 1)
        self.capacity = self.rows * num_envs
        self.n_step = n_step
        self.gamma = gamma
        self.frame_stack = frame_stack
        self.frame_padding = frame_padding
        self.prioritized = prioritized
        self.alpha = alpha
        self.eps = eps
        self.parts = dict(parts)

        # What a slot stores of each part: the newest frame only for frame stacks.
        self.slot_shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        for name, (shape, dtype) in self.parts.items():
            if name == "obs" and frame_stack is not None:
                if len(shape) != 3 or shape[0] != frame_stack:
                    raise ValueError(
                        f"frame_stack={frame_stack} needs obs of shape [{frame_stack}, H, W], "
                        f"got {list(shape)}"
                    )
                shape = tuple(shape[1:])
            self.slot_shapes[name] = (tuple(shape), dtype)
        cuts = self.capacity if max_episode_steps is None else self.capacity // max_episode_steps
        self.final_capacity = max(2 * num_envs, cuts + 2 * num_envs)
        self.check_fits()

        R, N, dev = self.rows, num_envs, self.device
        self.data = {
            name: torch.zeros((R, N, *shape), dtype=dtype, device=dev)
            for name, (shape, dtype) in self.slot_shapes.items()
        }
        self.final = {
            name: torch.zeros((self.final_capacity, *shape), dtype=dtype, device=dev)
            for name, (shape, dtype) in self.slot_shapes.items()
        }
        self.final_slot = torch.full((R, N), -1, dtype=torch.int64, device=dev)
        self.final_owner = torch.full((self.final_capacity,), -1, dtype=torch.int64, device=dev)
        self.final_ptr = 0
        self.actions = torch.zeros((R, N), dtype=torch.int64, device=dev)
        self.rewards = torch.zeros((R, N), dtype=torch.float32, device=dev)
        self.terminal = torch.zeros((R, N), dtype=torch.bool, device=dev)
        self.done = torch.zeros((R, N), dtype=torch.bool, device=dev)
        # Position of the slot's observation in its episode (frame stacks only; saturates).
        self.position = torch.zeros((R, N), dtype=torch.uint8, device=dev)
        self.next_position = torch.zeros(N, dtype=torch.int64, device=dev)
        self.ptr = 0  # next row to write
        self.size = 0  # rows written (<= rows)
        if prioritized:
            self.tree = SumTree(self.capacity, dev)
            self.max_priority = torch.ones((), dtype=torch.float64, device=dev)

    # -- memory --------------------------------------------------------------------------

    def slot_bytes(self) -> int:
        """Bytes per transition: stored parts, action, reward, flags, position, side indices."""
        per = sum(
            math.prod(shape) * torch.empty((), dtype=dtype).element_size()
            for shape, dtype in self.slot_shapes.values()
        )
        return per + 8 + 4 + 1 + 1 + 1 + 8  # actions, rewards, terminal, done, position, final

    def nbytes(self) -> int:
        """Bytes this buffer allocates (ring, side store of final observations, sum tree)."""
        final = self.final_capacity * sum(
            math.prod(shape) * torch.empty((), dtype=dtype).element_size()
            for shape, dtype in self.slot_shapes.values()
        )
        tree = 0
        if self.prioritized:
            tree = 2 * (1 << max(0, math.ceil(math.log2(self.capacity)))) * 8
        return self.capacity * self.slot_bytes() + final + tree

    def check_fits(self) -> None:
        need = self.nbytes()
        free = available_memory(self.device)
        if free is not None and need > 0.9 * free:
            raise MemoryError(
                f"a replay buffer of {self.capacity:,} transitions needs {_gb(need)} on "
                f"{self.device}, but only {_gb(free)} is available; lower buffer_size "
                f"(--buffer-size)"
            )

    # -- adding --------------------------------------------------------------------------

    def add(
        self,
        obs: dict[str, torch.Tensor],
        actions: torch.Tensor,
        rewards: torch.Tensor,
        terminal: torch.Tensor,
        done: torch.Tensor,
        final_obs: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """One vector step: ``obs`` parts before it ``[N, ...]`` and what happened.

        ``final_obs`` (parts of the episode's last observation, ``[N, ...]``) is read only for
        envs whose episode was cut by the time limit (``done & ~terminal``).
        """
        r = self.ptr
        for name, store in self.data.items():
            value = obs[name]
            if name == "obs" and self.frame_stack is not None:
                value = value[:, -1]
            store[r] = value
        self.actions[r] = actions
        self.rewards[r] = rewards
        self.terminal[r] = terminal
        self.done[r] = done
        self.position[r] = self.next_position.clamp(max=255).to(torch.uint8)
        self.next_position = torch.where(done, 0, self.next_position + 1)
        self.final_slot[r] = -1
        cut = done & ~terminal
        if final_obs is not None and bool(cut.any()):
            envs = cut.nonzero().squeeze(1)
            k = envs.numel()
            idx = (self.final_ptr + torch.arange(k, device=self.device)) % self.final_capacity
            self.final_ptr = (self.final_ptr + k) % self.final_capacity
            # An entry being reused belonged to a slot that has left the ring (the store has
            # room for every time-limit cut the ring can hold); unlink it all the same.
            owners = self.final_owner[idx]
            flat = self.final_slot.view(-1)
            linked = (owners >= 0) & (flat[owners.clamp(min=0)] == idx)
            flat[owners[linked]] = -1
            self.final_owner[idx] = r * self.num_envs + envs
            for name, store in self.final.items():
                value = final_obs[name][envs]
                if name == "obs" and self.frame_stack is not None:
                    value = value[:, -1]
                store[idx] = value
            self.final_slot[r, envs] = idx
        if self.prioritized:
            # One sum-tree update per add (rows are distinct: rows >= n_step + frame_stack + 1):
            # row r is not complete yet (priority 0); the oldest rows lose the history their
            # frame stacks need once row r is rewritten (0); row r - n's n-step window just
            # completed (the largest priority so far).
            zero_rows = [r]
            if self.frame_stack is not None and self.size == self.rows:
                zero_rows += [(r + j) % self.rows for j in range(1, self.frame_stack)]
            rows = torch.tensor(zero_rows, device=self.device)
            values = torch.zeros(len(zero_rows), dtype=torch.float64, device=self.device)
            if self.size >= self.n_step:
                newly = torch.tensor([(r - self.n_step) % self.rows], device=self.device)
                rows = torch.cat([rows, newly])
                values = torch.cat([values, self.max_priority.reshape(1)])
            N = self.num_envs
            slots = rows.unsqueeze(1) * N + torch.arange(N, device=self.device)
            self.tree.set(slots.flatten(), values.repeat_interleave(N))
        self.ptr = (r + 1) % self.rows
        self.size = min(self.size + 1, self.rows)

    # -- sampling ------------------------------------------------------------------------

    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        return self._valid_rows() * self.num_envs

    def _valid_rows(self) -> int:
        skip_old = (self.frame_stack - 1) if (self.frame_stack and self.size == self.rows) else 0
        return max(0, self.size - self.n_step - skip_old)

    def _oldest_valid_row(self) -> int:
        oldest = self.ptr if self.size == self.rows else 0
        skip_old = (self.frame_stack - 1) if (self.frame_stack and self.size == self.rows) else 0
        return oldest + skip_old

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, beta: float = 0.4
    ) -> Batch:
        valid = self._valid_rows()
        if valid <= 0:
            raise RuntimeError("replay buffer has no complete transitions to sample yet")
        dev, N = self.device, self.num_envs
        if self.prioritized:
            total = self.tree.total
            u = torch.rand(batch_size, generator=generator, device=dev, dtype=torch.float64)
            mass = (torch.arange(batch_size, device=dev, dtype=torch.float64) + u) / batch_size
            slots = self.tree.find((mass * total).clamp(max=total * (1 - 1e-12)))
            probs = self.tree.get(slots) / total
            weights = (valid * N * probs).pow(-beta)
            weights = (weights / weights.max()).float()
        else:
            offset = torch.randint(valid * N, (batch_size,), generator=generator, device=dev)
            slots = (self._oldest_valid_row() * N + offset) % self.capacity
            weights = torch.ones(batch_size, device=dev)
        rows, envs = slots // N, slots % N
        returns, discounts, last = self._n_step(rows, envs)
        return Batch(
            obs=self._parts_at(rows, envs),
            actions=self.actions[rows, envs],
            returns=returns,
            next_obs=self._next_parts(last, envs),
            discounts=discounts,
            weights=weights,
            indices=slots,
        )

    def _n_step(self, rows: torch.Tensor, envs: torch.Tensor):
        """(discounted reward sums, gamma^m or 0 at a terminal, last row of each window)."""
        n = self.n_step
        j = torch.arange(n, device=self.device)
        window = (rows.unsqueeze(1) + j) % self.rows  # [B, n]
        e = envs.unsqueeze(1)
        stop = self.terminal[window, e] | self.done[window, e]
        ones = torch.ones_like(stop[:, :1])
        included = torch.cat([ones, (~stop[:, :-1]).cumprod(1).bool()], 1)  # step j in window
        powers = self.gamma ** j.to(torch.float32)
        returns = (self.rewards[window, e] * powers * included).sum(1)
        m = included.sum(1)  # >= 1
        last = window.gather(1, (m - 1).unsqueeze(1)).squeeze(1)
        terminal = self.terminal[last, envs]
        discounts = torch.where(terminal, 0.0, self.gamma ** m.to(torch.float32))
        return returns, discounts, last

    def _stack(self, rows: torch.Tensor, envs: torch.Tensor) -> torch.Tensor:
        """The k-frame stacks of slots ``(rows, envs)`` rebuilt from the stored frames."""
        k = self.frame_stack
        frames = self.data["obs"]
        back = torch.arange(k - 1, -1, -1, device=self.device)  # k-1 .. 0 steps back
        src = (rows.unsqueeze(1) - back) % self.rows  # [B, k]
        e = envs.unsqueeze(1)
        stack = frames[src, e]  # [B, k, H, W]
        pos = self.position[rows, envs].long().unsqueeze(1)
        before_start = back > pos  # frames from before this episode began
        if self.frame_padding == "zeros":  # in place: one cheap pass, no second batch
            return stack.mul_(~before_start[:, :, None, None])
        first = frames[(rows - pos.squeeze(1)) % self.rows, envs]
        fill = first.unsqueeze(1).expand_as(stack)
        return torch.where(before_start[:, :, None, None], fill, stack)

    def _parts_at(self, rows: torch.Tensor, envs: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for name, store in self.data.items():
            if name == "obs" and self.frame_stack is not None:
                out[name] = self._stack(rows, envs)
            else:
                out[name] = store[rows, envs]
        return out

    def _next_parts(self, last: torch.Tensor, envs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Parts of the observation after slot ``(last, envs)``: the next slot's, or the final
        observation of an episode cut there (a terminal's is never used: its discount is 0)."""
        nxt = self._parts_at((last + 1) % self.rows, envs)
        fidx = self.final_slot[last, envs]
        has_final = fidx >= 0
        if not bool(has_final.any()):
            return nxt
        sel = has_final.nonzero().squeeze(1)
        for name, store in self.final.items():
            value = store[fidx[sel]]
            if name == "obs" and self.frame_stack is not None:
                # The final stack: the last slot's frames shifted by one, then the final frame.
                prev = self._stack(last[sel], envs[sel])
                value = torch.cat([prev[:, 1:], value.unsqueeze(1)], 1)
            nxt[name] = nxt[name].index_put((sel,), value)
        return nxt

    def update_priorities(self, indices: torch.Tensor, td_errors: torch.Tensor) -> None:
        if not self.prioritized:
            return
        p = (td_errors.detach().abs().to(torch.float64) + self.eps).pow(self.alpha)
        self.tree.set(indices, p)
        self.max_priority = torch.maximum(self.max_priority, p.max())

    # -- checkpoints ---------------------------------------------------------------------

    def state_dict(self) -> dict:
        state = {
            "data": self.data,
            "final": self.final,
            "final_slot": self.final_slot,
            "final_owner": self.final_owner,
            "final_ptr": self.final_ptr,
            "actions": self.actions,
            "rewards": self.rewards,
            "terminal": self.terminal,
            "done": self.done,
            "position": self.position,
            "next_position": self.next_position,
            "ptr": self.ptr,
            "size": self.size,
        }
        if self.prioritized:
            state["tree"] = self.tree.tree
            state["max_priority"] = self.max_priority
        return state

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["actions"].shape) != (self.rows, self.num_envs):
            raise ValueError(
                f"replay buffer state has shape {list(state['actions'].shape)}, this buffer "
                f"is [{self.rows}, {self.num_envs}] (buffer_size or num_envs differ)"
            )
        for name in self.data:
            self.data[name].copy_(state["data"][name])
            self.final[name].copy_(state["final"][name])
        for name in (
            "final_slot",
            "final_owner",
            "actions",
            "rewards",
            "terminal",
            "done",
            "position",
        ):
            vars(self)[name].copy_(state[name])
        self.next_position = state["next_position"].to(self.device)
        self.final_ptr = int(state["final_ptr"])
        self.ptr = int(state["ptr"])
        self.size = int(state["size"])
        if self.prioritized:
            self.tree.tree.copy_(state["tree"])
            self.max_priority = state["max_priority"].to(self.device)
