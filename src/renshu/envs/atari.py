"""Atari games through ale-py's vector interface, with DeepMind preprocessing, as a TensorEnv.

``AtariEnv("ALE/Breakout-v5", num_envs=8)`` runs the emulators in ale-py's C++ vector
environment (a thread pool; preprocessing happens there too):

* no-op starts: up to ``noop_max`` (30) no-op actions after each reset;
* FIRE on reset for games that need it to start;
* frame skip 4, each observation the max of the last two emulator frames;
* 84x84 greyscale, stacks of the last 4 frames (zeros before an episode's first frame): obs
  are uint8 ``[N, 4, 84, 84]``;
* sticky actions with ``repeat_action_probability`` (0.25, the ``-v5`` default);
* time limit: 108,000 emulator frames (27,000 agent steps), as ``-v5``.

An *episode* is a whole game: ``terminated`` is game over, ``info["episode"]["return"]`` the
real game score (unclipped rewards). Learning signals the agents need besides that:
``info["life_loss"]`` marks steps where a life was lost (DQN and PPO treat it as terminal for
learning, the DeepMind setting, without resetting the game), and rewards are returned
unclipped so an algorithm clips them for learning itself (``clip_rewards``).
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from renshu.envs.base import TensorEnv, check_actions, check_seed, resolve_device
from renshu.envs.gym import EpisodeTally

ATARI_EXTRA = 'pip install "renshu[atari]"'


def _import_ale():
    try:
        import ale_py
        from ale_py.vector_env import AtariVectorEnv
    except ImportError as e:
        raise ImportError(f"Atari games need ale-py: {ATARI_EXTRA}") from e
    return ale_py, AtariVectorEnv


def _camel(rom: str) -> str:
    return "".join(part.capitalize() for part in rom.split("_"))


@functools.cache
def rom_names() -> frozenset[str]:
    """The ROM ids ale-py ships (``breakout``, ``space_invaders``, ...); empty without ale-py."""
    try:
        import ale_py
    except ImportError:
        return frozenset()
    return frozenset(ale_py.roms.get_all_rom_ids())


def rom_for(env_id: str) -> str:
    """``"ALE/Breakout-v5"`` -> ``"breakout"``; unknown games get a ValueError with matches."""
    ale_py, _ = _import_ale()
    roms = sorted(ale_py.roms.get_all_rom_ids())
    m = re.fullmatch(r"ALE/([A-Za-z0-9]+)-v5", env_id)
    name = m.group(1) if m else env_id
    rom = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    if m and rom in roms:
        return rom
    valid = [f"ALE/{_camel(r)}-v5" for r in roms]
    close = difflib.get_close_matches(env_id, valid, n=3, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(f"ALE/{name}-v5", valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown Atari game {env_id!r}.{hint} Atari ids look like 'ALE/Breakout-v5'; "
        f"{len(valid)} games ship with ale-py."
    )


def _atari_picture(grey: np.ndarray, header: str | None = None) -> np.ndarray:
    from renshu.envs.render import with_header

    big = grey.repeat(3, 0).repeat(3, 1)
    return with_header(np.repeat(big[:, :, None], 3, axis=2), header)


class AtariEnv(TensorEnv):
    """``num_envs`` Atari games (DeepMind preprocessing) as a TensorEnv; see the module doc.

    Args:
        env_id: ``"ALE/<Game>-v5"``.
        num_envs: games stepped together.
        device: where the returned tensors live.
        seed: seed of the first ``reset()``; game ``i`` gets ``seed + i``.
        max_episode_steps: agent steps per game before truncation (default 27,000).
        repeat_action_probability: sticky actions (0.25 as ``-v5``; 0 for the original DQN).
        noop_max, frame_skip, frame_stack, screen_size, fire_reset: preprocessing.
        num_threads: emulator threads (0: one per core).
    """

    frame_padding = "zeros"

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        device: str | torch.device | None = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None = None,
        repeat_action_probability: float = 0.25,
        noop_max: int = 30,
        frame_skip: int = 4,
        frame_stack: int = 4,
        screen_size: int = 84,
        fire_reset: bool = True,
        full_action_space: bool = False,
        num_threads: int = 0,
        check: bool = True,
    ):
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        if not 0.0 <= repeat_action_probability <= 1.0:
            raise ValueError(
                f"repeat_action_probability must be in [0, 1], got {repeat_action_probability}"
            )
        _, vector_cls = _import_ale()
        self.env_id = env_id
        self.rom = rom_for(env_id)
        self.num_envs = num_envs
        self.device = resolve_device(device)
        self.check = check
        self.frame_stack = frame_stack
        self.full_action_space = full_action_space
        self.max_episode_steps = max_episode_steps or 108_000 // frame_skip
        self._seed = check_seed(seed)
        self.venv = vector_cls(
            self.rom,
            num_envs,
            num_threads=num_threads,
            max_num_frames_per_episode=self.max_episode_steps * frame_skip,
            repeat_action_probability=repeat_action_probability,
            full_action_space=full_action_space,
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
            img_height=screen_size,
            img_width=screen_size,
            grayscale=True,
            stack_num=frame_stack,
            frameskip=frame_skip,
            maxpool=True,
            noop_max=noop_max,
            episodic_life=False,
            life_loss_info=False,
            reward_clipping=False,
            use_fire_reset=fire_reset,
        )
        self.num_actions = int(self.venv.single_action_space.n)
        self.action_space = gym.spaces.Discrete(self.num_actions)
        self.observation_space = gym.spaces.Box(
            0, 255, (frame_stack, screen_size, screen_size), dtype=np.uint8
        )
        self._mask = torch.ones(num_envs, self.num_actions, dtype=torch.bool, device=self.device)
        self._tally = EpisodeTally(num_envs)
        self._lives = np.zeros(num_envs, dtype=np.int64)
        self._started = False

    @functools.cached_property
    def action_meanings(self) -> tuple[str, ...]:
        """Names of the actions (``NOOP``, ``FIRE``, ...), from the game's minimal action set."""
        ale_py, _ = _import_ale()
        ale = ale_py.ALEInterface()
        ale.setLoggerMode(ale_py.LoggerMode.Error)
        ale.loadROM(ale_py.roms.get_rom_path(self.rom))
        actions = ale.getAllActionSet() if self.full_action_space else ale.getMinimalActionSet()
        return tuple(a.name for a in actions)

    def __repr__(self) -> str:
        return f"AtariEnv({self.env_id}, num_envs={self.num_envs}, device={self.device})"

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(x, copy=True)).to(self.device)

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        seed = check_seed(seed)
        if seed is None and not self._started:
            seed = self._seed
        return self._reset(seed)

    supports_groups = True  # (reset_groups: a block of games on one seed)

    def reset_groups(
        self, group_size: int, seed: int | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Every block of ``group_size`` consecutive games starts from one state: the games of a
        block get one seed (ALE's start, no-op count and sticky-action draws follow it), the
        blocks ``seed``, ``seed + 1``, ...; then identical actions give identical games."""
        if not isinstance(group_size, int) or group_size < 1 or self.num_envs % group_size:
            raise ValueError(
                f"group_size must be a positive divisor of num_envs {self.num_envs}, "
                f"got {group_size!r}"
            )
        seed = check_seed(seed)
        base = (self._seed or 0) if seed is None else seed
        blocks = np.arange(self.num_envs // group_size, dtype=np.int64) + base
        return self._reset(np.repeat(blocks, group_size))

    def _reset(self, seed) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = self.venv.reset(seed=seed)
        self._started = True
        self._tally.reset()
        self._lives[:] = info["lives"]
        self._obs = self._final = self._tensor(obs)
        return self._obs, {"action_mask": self._mask}

    def step(self, actions: torch.Tensor):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self.check:
            actions = check_actions(actions, self.num_envs, self.num_actions, self.device)
        obs, reward, terminated, truncated, info = self.venv.step(
            actions.detach().cpu().numpy().astype(np.int64)
        )
        reward = np.asarray(reward, dtype=np.float64)
        done = np.logical_or(terminated, truncated)
        final_obs = obs
        if done.any():
            final_obs = np.array(obs, copy=True)
            finals = info["final_obs"]
            for i in np.flatnonzero(done):
                final_obs[i] = finals[i]
        lives = np.asarray(info["lives"], dtype=np.int64)
        life_loss = (lives < self._lives) & ~done  # (after game over: the new game's lives)
        self._lives = lives

        episode = self._tally.step(reward, done, self.device)
        self._obs = self._tensor(obs)
        self._final = self._obs if final_obs is obs else self._tensor(final_obs)
        info_out = {
            "action_mask": self._mask,
            "final_obs": self._final,
            "done": torch.as_tensor(done).to(self.device),
            "life_loss": torch.as_tensor(life_loss).to(self.device),
            "episode": episode,
        }
        return (
            self._obs,
            torch.as_tensor(reward, dtype=torch.float32).to(self.device),
            torch.as_tensor(np.asarray(terminated, dtype=bool)).to(self.device),
            torch.as_tensor(np.asarray(truncated, dtype=bool)).to(self.device),
            info_out,
        )

    def frame(self, index: int = 0, final: bool = False):
        """The newest frame of game ``index``'s stack, as the agent sees it (enlarged 3x)."""
        grey = (self._final if final else self._obs)[index, -1].cpu().numpy()
        return functools.partial(_atari_picture, grey)

    def close(self) -> None:
        if self.venv is not None:
            self.venv.close()
            self.venv = None
        self._started = False
