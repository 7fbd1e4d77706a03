"""The classic 4x3 grid world (Russell & Norvig) as pure batched torch functions.

The grid has 3 rows and 4 columns; cell ``(row, col)`` has index ``4 * row + col`` with row 0 at
the top::

    . . . G      G: goal, +1, ends the episode
    . # . P      P: pit, -1, ends the episode;  #: wall
    S . . .      S: start (bottom-left)

Actions: 0 left, 1 right, 2 up, 3 down (the same numbering as 2048). A move succeeds with
probability ``1 - slip`` and otherwise goes to either perpendicular side with probability
``slip / 2`` each (``slip=0.2`` by default: the textbook 0.8 / 0.1 / 0.1; ``slip=0`` makes the
game deterministic). A move into the wall or off the grid leaves the agent where it is. Entering
the goal gives +1, entering the pit -1, every other step ``-step_cost`` (default 0.04). The
episode step limit (100) is added by :func:`renshu.envs.make_env` as truncation.

Every step of a batch draws one uniform number per game from the explicit generator (none when
``slip=0``). ``info["episode"]["success"]`` is true for the episodes that ended on the goal, so
``renshu eval --json`` reports a ``success_rate``.

Observations (``obs``):

* ``"onehot"`` (default): float32 ``[12]``, a one at the agent's cell index.
* ``"coords"``: float32 ``[2]``: ``(col / 3, row / 2)`` with row 0 at the top.
* ``"rgb"``: uint8 ``[3, 84, 84]`` channels-first image (the layout of Atari frame stacks, so
  :class:`renshu.core.nets.NatureCNN` takes it as is; image encoders accept it too). Cells are
  21 pixels square on a grey page: white floor, dark wall, green goal, red pit, a blue disc for
  the agent. A lookup in a table of the 12 possible frames, so it costs one gather per step.
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

ACTIONS = ("left", "right", "up", "down")
OBS_MODES = ("onehot", "coords", "rgb")
ROWS, COLS = 3, 4
NUM_CELLS = ROWS * COLS
START, GOAL, PIT, WALL = 8, 3, 7, 5
GOAL_REWARD, PIT_REWARD = 1.0, -1.0
IMAGE_SIZE = 84
_CELL_PX = IMAGE_SIZE // COLS  # 21
_TOP_PX = (IMAGE_SIZE - ROWS * _CELL_PX) // 2  # grid rows start 10 pixels down
_MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))  # (d_row, d_col) per action
_PERPENDICULAR = ((2, 3), (2, 3), (0, 1), (0, 1))

_PAGE = (128, 128, 128)
_FLOOR = (235, 235, 235)
_WALL_RGB = (60, 60, 60)
_GOAL_RGB = (40, 170, 60)
_PIT_RGB = (210, 40, 40)
_AGENT_RGB = (40, 90, 220)


def cell(row: int, col: int) -> int:
    """The index of cell ``(row, col)`` (row 0 at the top)."""
    return COLS * row + col


def _next_cells() -> list[list[int]]:
    """``table[cell][direction]``: where a move in ``direction`` from ``cell`` ends."""
    table = []
    for index in range(NUM_CELLS):
        row, col = divmod(index, COLS)
        targets = []
        for d_row, d_col in _MOVES:
            r, c = row + d_row, col + d_col
            blocked = not (0 <= r < ROWS and 0 <= c < COLS) or cell(r, c) == WALL
            targets.append(index if blocked else cell(r, c))
        table.append(targets)
    return table


@functools.cache
def _tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat ``next[4 * cell + direction]`` and ``perpendicular[2 * action + side]`` tables."""
    nxt = torch.tensor(_next_cells(), dtype=torch.int64).view(-1)
    perp = torch.tensor(_PERPENDICULAR, dtype=torch.int64).view(-1)
    return nxt.to(device), perp.to(device)


def _disc(size: int, radius: float) -> np.ndarray:
    centre = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size]
    return (x - centre) ** 2 + (y - centre) ** 2 <= radius**2


def _frame(agent: int) -> np.ndarray:
    """The ``[84, 84, 3]`` observation image with the agent on cell ``agent``."""
    image = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    image[:] = _PAGE
    colours = {WALL: _WALL_RGB, GOAL: _GOAL_RGB, PIT: _PIT_RGB}
    disc = _disc(_CELL_PX - 2, (_CELL_PX - 2) * 0.36)
    for index in range(NUM_CELLS):
        row, col = divmod(index, COLS)
        y0, x0 = _TOP_PX + row * _CELL_PX + 1, col * _CELL_PX + 1  # a 1-pixel grid line
        tile = image[y0 : y0 + _CELL_PX - 2, x0 : x0 + _CELL_PX - 2]
        tile[:] = colours.get(index, _FLOOR)
        if index == agent:
            tile[disc] = _AGENT_RGB
    return image


@functools.cache
def _frames(device: torch.device) -> torch.Tensor:
    """uint8 ``[12, 3, 84, 84]``: the observation image for every agent cell."""
    frames = np.stack([_frame(i).transpose(2, 0, 1) for i in range(NUM_CELLS)])
    return torch.from_numpy(frames).to(device)


def _number(name: str, value, low: float, high: float) -> float:
    """A float option (a string from the command line is parsed) within ``[low, high]``."""
    try:
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return number


@dataclass(frozen=True)
class GridState:
    pos: torch.Tensor  # int64 [n]: the agent's cell index (4 * row + col)


class GridWorld:
    """The 4x3 grid world as pure batched functions (see the module docstring)."""

    name = "gridworld"
    num_actions = 4
    action_meanings = ACTIONS

    def __init__(self, obs: str = "onehot", slip: float = 0.2, step_cost: float = 0.04):
        if obs not in OBS_MODES:
            raise ValueError(f"obs must be one of {OBS_MODES}, got {obs!r}")
        self.obs = obs
        self.slip = _number("slip", slip, 0.0, 1.0)
        self.step_cost = _number("step_cost", step_cost, -1.0, 1.0)
        if obs == "onehot":
            self.observation_space = gym.spaces.Box(0.0, 1.0, (NUM_CELLS,), np.float32)
        elif obs == "coords":
            self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        else:
            self.observation_space = gym.spaces.Box(0, 255, (3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)

    def __repr__(self) -> str:
        return f"GridWorld(obs={self.obs!r}, slip={self.slip}, step_cost={self.step_cost})"

    # -- pure functions ---------------------------------------------------------------------

    def init(self, n: int, generator: torch.Generator) -> GridState:
        """``n`` games with the agent on the start cell (no randomness)."""
        return GridState(pos=torch.full((n,), START, dtype=torch.int64, device=generator.device))

    def from_cells(self, cells: torch.Tensor | list[int]) -> GridState:
        """A state from cell indices (``4 * row + col``), e.g. to test or fork games."""
        pos = torch.as_tensor(cells, dtype=torch.int64)
        if pos.dim() != 1:
            raise ValueError(f"cells must be a 1-D list of cell indices, got {tuple(pos.shape)}")
        bad = (pos < 0) | (pos >= NUM_CELLS) | (pos == WALL)
        if bool(bad.any()):
            raise ValueError(
                f"cells must lie in [0, {NUM_CELLS - 1}] and not be the wall ({WALL}), "
                f"got {pos[bad][0].item()}"
            )
        return GridState(pos=pos)

    def step(
        self, state: GridState, action: torch.Tensor, generator: torch.Generator
    ) -> tuple[GridState, torch.Tensor, torch.Tensor]:
        pos = state.pos
        nxt, perp = _tables(pos.device)
        direction = action
        if self.slip > 0:
            u = torch.rand(pos.shape, generator=generator, device=pos.device)
            side = (u >= self.slip / 2).to(torch.int64)  # which perpendicular side
            slipped = perp.index_select(0, 2 * action + side)
            direction = torch.where(u < self.slip, slipped, action)
        new = nxt.index_select(0, 4 * pos + direction)
        at_goal = new == GOAL
        at_pit = new == PIT
        reward = torch.where(
            at_goal,
            GOAL_REWARD,
            torch.where(at_pit, PIT_REWARD, -self.step_cost),
        ).to(torch.float32)
        return GridState(pos=new), reward, at_goal | at_pit

    def observe(self, state: GridState) -> torch.Tensor:
        pos = state.pos
        if self.obs == "onehot":
            cells = torch.arange(NUM_CELLS, device=pos.device)
            return (pos.unsqueeze(1) == cells).to(torch.float32)
        if self.obs == "coords":
            col = (pos % COLS).to(torch.float32) / (COLS - 1)
            row = torch.div(pos, COLS, rounding_mode="floor").to(torch.float32) / (ROWS - 1)
            return torch.stack([col, row], dim=1)
        return _frames(pos.device).index_select(0, pos)

    def legal_actions(self, state: GridState) -> torch.Tensor:
        return torch.ones(state.pos.shape[0], 4, dtype=torch.bool, device=state.pos.device)

    def episode_extras(self, state: GridState) -> dict[str, torch.Tensor]:
        return {"success": state.pos == GOAL}

    # -- text for language encoders, rendering --------------------------------------------------

    @staticmethod
    def describe(state: GridState, index: int = 0) -> str:
        """Game ``index``'s position in words (what the ``hf-text`` encoder embeds)."""
        row, col = divmod(int(state.pos[index]), COLS)
        return describe_cell(row, col)

    def render_ansi(self, state: GridState, index: int = 0, color: bool = True) -> str:
        """Game ``index`` as terminal text: ``A`` agent, ``+`` goal, ``-`` pit, ``#`` wall."""
        agent = int(state.pos[index])
        marks = {GOAL: ("+1", 42), PIT: ("-1", 196), WALL: ("##", 240)}
        lines = []
        for row in range(ROWS):
            cells = []
            for col in range(COLS):
                index_ = cell(row, col)
                text, bg = marks.get(index_, (" .", None))
                if index_ == agent:
                    text, bg = " A", 33 if bg is None else bg
                if color and bg is not None:
                    text = f"\x1b[1;38;5;15;48;5;{bg}m{text}\x1b[0m"
                cells.append(text)
            lines.append(" ".join(cells))
        return "\n".join(lines)

    def render_rgb(self, state: GridState, index: int = 0, header: str | None = None):
        """Game ``index`` as an RGB frame (uint8 numpy ``[H, W, 3]``, 80-pixel cells), e.g. for
        GIFs; ``header`` adds a strip of text above the grid."""
        from PIL import Image, ImageDraw

        from renshu.envs.render import _draw_centered, _font, _text_box

        size, gap = 80, 4
        header_h = 40 if header is not None else 0
        width = COLS * size + (COLS + 1) * gap
        height = header_h + ROWS * size + (ROWS + 1) * gap
        image = Image.new("RGB", (width, height), _PAGE)
        draw = ImageDraw.Draw(image)
        if header is not None:
            draw.rectangle((0, 0, width - 1, header_h - 1), fill=(250, 248, 239))
            font = _font(22)
            left, top, _, bottom = _text_box(draw, header, font)
            draw.text((2 * gap - left, round((header_h - top - bottom) / 2)), header, font=font,
                      fill=(60, 60, 60))  # fmt: skip
        colours = {WALL: _WALL_RGB, GOAL: _GOAL_RGB, PIT: _PIT_RGB}
        labels = {GOAL: "+1", PIT: "-1", START: "start"}
        agent = int(state.pos[index])
        for index_ in range(NUM_CELLS):
            row, col = divmod(index_, COLS)
            x0 = gap + col * (size + gap)
            y0 = header_h + gap + row * (size + gap)
            draw.rectangle((x0, y0, x0 + size - 1, y0 + size - 1),
                           fill=colours.get(index_, _FLOOR))  # fmt: skip
            centre = (x0 + (size - 1) / 2, y0 + (size - 1) / 2)
            if index_ == agent:
                r = size * 0.32
                draw.ellipse((centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r),
                             fill=_AGENT_RGB)  # fmt: skip
            elif index_ in labels:
                fill = (255, 255, 255) if index_ != START else (120, 120, 120)
                _draw_centered(draw, centre, labels[index_], _font(24 if index_ != START else 16),
                               fill)  # fmt: skip
        return np.asarray(image, dtype=np.uint8).copy()


def describe_cell(row: int, col: int) -> str:
    """A cell in words, e.g. ``"The agent is in the bottom row, first column."`` (the start)."""
    vertical = ("top", "middle", "bottom")[row]
    ordinal = ("first", "second", "third", "fourth")[col]
    where = {GOAL: " It is on the goal.", PIT: " It is in the pit."}.get(cell(row, col), "")
    return f"The agent is in the {vertical} row, {ordinal} column.{where}"
