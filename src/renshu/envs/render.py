"""Drawing 2048 boards: coloured terminal text, RGB frames, and a side panel for animations.

* :func:`board_ansi` turns a grid of tile values into box-drawn terminal text, coloured with
  256-colour escapes (or plain with ``color=False``).
* :func:`board_rgb` draws the grid as a ``uint8 [H, W, 3]`` image in the classic 2048 palette,
  with an optional header strip ("step 12  score 340").
* :func:`overlay_panel` adds a panel to the right of any frame with text lines and labelled bars
  (an agent's action probabilities or Q-values); training animations are built from these.

All three take tile values (0 for empty, 2, 4, 8, ...), as a nested list, a numpy array or a torch
tensor of shape ``[4, 4]`` — e.g. ``renshu.envs.game2048.tiles(board)[0]``. Every image has even
height and width, which video encoders require.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["board_ansi", "board_rgb", "overlay_panel"]

# ---------------------------------------------------------------------------------------------
# Palette: the classic 2048 colours for images, and their 256-colour counterparts for terminals.


def _hex(code: str) -> tuple[int, int, int]:
    code = code.lstrip("#")
    return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)


# Background per exponent: 0 (empty), 1 (tile 2), ..., 11 (tile 2048 and above).
_TILE_BG = tuple(
    _hex(c)
    for c in (
        "#cdc1b4",
        "#eee4da",
        "#ede0c8",
        "#f2b179",
        "#f59563",
        "#f67c5f",
        "#f65e3b",
        "#edcf72",
        "#edcc61",
        "#edc850",
        "#edc53f",
        "#edc22e",
    )
)
_DARK_TEXT = _hex("#776e65")
_LIGHT_TEXT = _hex("#f9f6f2")
_GRID = _hex("#bbada0")
_PAGE = _hex("#faf8ef")
_TRACK = _hex("#e6dfd6")
_BAR = _hex("#bbada0")
_BAR_BEST = _hex("#f67c5f")
_BAR_NEGATIVE = _hex("#8fa9c9")


def _palette_index(value: int) -> int:
    """0 for empty, 1 for 2, 2 for 4, ..., 11 for 2048 and above (larger tiles share it)."""
    return min(int(value).bit_length() - 1, len(_TILE_BG) - 1) if value > 0 else 0


def _tile_colors(value: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(background, text) RGB colours of a tile: dark text on 2 and 4, light text otherwise."""
    index = _palette_index(value)
    return _TILE_BG[index], (_DARK_TEXT if index <= 2 else _LIGHT_TEXT)


# The same palette in xterm 256-colour indices, picked by hand so that every tile up to 2048 has
# its own colour (the nearest-colour match merges the yellows of 128-2048).
_TILE_BG_ANSI = (250, 255, 223, 215, 209, 203, 196, 186, 185, 184, 220, 178)
_DARK_TEXT_ANSI = 241
_LIGHT_TEXT_ANSI = 255
_GRID_ANSI = 145


# ---------------------------------------------------------------------------------------------
# Input handling.


def _as_grid(tiles: Any) -> np.ndarray:
    """Tile values (list, numpy array or torch tensor, 2-D) as an int64 numpy array."""
    if isinstance(tiles, torch.Tensor):  # possibly on an accelerator
        tiles = tiles.detach().cpu().numpy()
    grid = np.asarray(tiles)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"tiles must be a 2-D grid of tile values like [4, 4], got {grid.shape}")
    if not (np.issubdtype(grid.dtype, np.integer) or np.issubdtype(grid.dtype, np.floating)):
        raise ValueError(f"tiles must hold numbers, got dtype {grid.dtype}")
    if np.issubdtype(grid.dtype, np.floating) and not np.all(grid == np.round(grid)):
        raise ValueError("tiles must hold whole tile values (0, 2, 4, ...), not fractions")
    grid = grid.astype(np.int64)
    if (grid < 0).any():
        raise ValueError("tiles must be >= 0 (0 marks an empty cell)")
    return grid


def _as_frame(frame: Any) -> np.ndarray:
    """An image as uint8 ``[H, W, 3]``: grey ``[H, W]`` is expanded, an alpha channel dropped."""
    image = np.asarray(frame)
    if image.dtype != np.uint8:
        raise ValueError(f"frame must be a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if (
        image.ndim != 3
        or image.shape[2] not in (3, 4)
        or image.shape[0] == 0
        or image.shape[1] == 0
    ):
        raise ValueError(f"frame must have shape [H, W, 3] (or [H, W, 4]), got {image.shape}")
    return np.ascontiguousarray(image[:, :, :3])


# ---------------------------------------------------------------------------------------------
# Terminal text.


def board_ansi(tiles: Any, color: bool = True) -> str:
    """A board as box-drawn terminal text, one line per grid line, no trailing newline.

    Numbers are right-aligned in equally wide cells; empty cells are blank. With ``color=True``
    each cell gets the background of its tile (256-colour escapes close to the classic 2048
    palette, a different one for every tile up to 2048) and the grid lines are drawn in the
    board colour; ``color=False`` gives plain text.
    """
    grid = _as_grid(tiles)
    rows, cols = grid.shape
    digits = max(4, len(str(int(grid.max()))))
    width = digits + 2  # one space of padding either side

    def paint(text: str, fg: int, bg: int | None = None) -> str:
        if not color:
            return text
        codes = f"\x1b[38;5;{fg}m"
        if bg is not None:
            codes = f"\x1b[1m{codes}\x1b[48;5;{bg}m"
        return f"{codes}{text}\x1b[0m"

    def rule(left: str, middle: str, right: str) -> str:
        return paint(left + middle.join(["─" * width] * cols) + right, _GRID_ANSI)

    lines = [rule("┌", "┬", "┐")]
    for r in range(rows):
        cells = []
        for c in range(cols):
            value = int(grid[r, c])
            index = _palette_index(value)
            fg = _DARK_TEXT_ANSI if index <= 2 else _LIGHT_TEXT_ANSI
            text = f" {value:>{digits}} " if value else " " * width
            cells.append(paint(text, fg, _TILE_BG_ANSI[index]))
        bar = paint("│", _GRID_ANSI)
        lines.append(bar + bar.join(cells) + bar)
        if r < rows - 1:
            lines.append(rule("├", "┼", "┤"))
    lines.append(rule("└", "┴", "┘"))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Images.


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` pixels (Pillow >= 10.1), else its small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError, AttributeError):
        return ImageFont.load_default()


def _text_box(draw: ImageDraw.ImageDraw, text: str, font: Any) -> tuple[int, int, int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(left), int(top), int(right), int(bottom)


def _draw_centered(
    draw: ImageDraw.ImageDraw, center: tuple[float, float], text: str, font: Any, fill: Any
) -> None:
    left, top, right, bottom = _text_box(draw, text, font)
    x = center[0] - (left + right) / 2
    y = center[1] - (top + bottom) / 2
    draw.text((round(x), round(y)), text, font=font, fill=fill)


def _pad_even(image: np.ndarray, fill: tuple[int, int, int]) -> np.ndarray:
    """Pad one row/column at the bottom/right where height/width is odd."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    out = _solid(h + h % 2, w + w % 2, fill).copy()
    out[:h, :w] = image
    return out


@functools.lru_cache(maxsize=64)
def _solid(height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    """A read-only image of one colour; copy it to draw on (faster than filling)."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = colour
    image.flags.writeable = False
    return image


@functools.lru_cache(maxsize=256)
def _tile(value: int, cell: int) -> np.ndarray:
    """One tile (its rounded square on the board colour, with its number), drawn once."""
    image = Image.new("RGB", (cell, cell), _GRID)
    draw = ImageDraw.Draw(image)
    bg, fg = _tile_colors(value)
    draw.rounded_rectangle((0, 0, cell - 1, cell - 1), max(1, cell // 12), fill=bg)
    if value:
        text = str(value)
        scale = {1: 0.55, 2: 0.5, 3: 0.42, 4: 0.34}.get(len(text), 0.28)
        font = _font(max(8, int(cell * scale)))
        _draw_centered(draw, ((cell - 1) / 2, (cell - 1) / 2), text, font, fg)
    return np.asarray(image, dtype=np.uint8)


def board_rgb(tiles: Any, cell: int = 64, header: str | None = None) -> np.ndarray:
    """A board as a ``uint8 [H, W, 3]`` image in the classic 2048 palette.

    Each tile is a ``cell``-pixel rounded square on the board colour, with its number centred
    (dark text on 2 and 4, light text otherwise; the font shrinks for long numbers). ``header``
    adds a strip above the board with that text. Height and width are even. Each kind of tile
    is drawn once and pasted, so a board costs a few array copies.
    """
    grid = _as_grid(tiles)
    if not isinstance(cell, int) or isinstance(cell, bool) or cell < 8:
        raise ValueError(f"cell must be an int >= 8 (pixels per tile), got {cell!r}")
    rows, cols = grid.shape
    gap = max(2, cell // 16)
    header_h = max(16, cell // 2) if header is not None else 0
    width = cols * cell + (cols + 1) * gap
    height = header_h + rows * cell + (rows + 1) * gap

    image = _solid(height, width, _GRID).copy()
    if header is not None:
        image[:header_h] = _solid(header_h, width, _PAGE)
        size = max(8, int(header_h * 0.6))
        _, top, _, bottom = _stamp(header, size)[1:]
        _paste_text(image, (gap * 2, round((header_h - (top + bottom)) / 2)), header, size,
                    _DARK_TEXT)  # fmt: skip
    for r in range(rows):
        for c in range(cols):
            x0 = gap + c * (cell + gap)
            y0 = header_h + gap + r * (cell + gap)
            image[y0 : y0 + cell, x0 : x0 + cell] = _tile(int(grid[r, c]), cell)
    return _pad_even(image, _GRID)


def with_header(frame: Any, header: str | None) -> np.ndarray:
    """``frame`` with a strip of text above it (as :func:`board_rgb` draws its header);
    ``header=None`` returns the frame unchanged."""
    image = _as_frame(frame)
    if header is None:
        return image
    h, w = image.shape[:2]
    strip_h = 24
    strip = Image.new("RGB", (w, strip_h), _PAGE)
    draw = ImageDraw.Draw(strip)
    font = _font(14)
    left, top, _, bottom = _text_box(draw, header, font)
    draw.text((6 - left, round((strip_h - (top + bottom)) / 2)), header, font=font, fill=_DARK_TEXT)
    return _pad_even(np.concatenate([np.asarray(strip, dtype=np.uint8), image]), _PAGE)


def _format_value(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.2f}" if abs(value) < 1000 else f"{value:.3g}"


@functools.lru_cache(maxsize=4096)
def _stamp(text: str, size: int) -> tuple[np.ndarray, int, int, int, int]:
    """``text`` drawn once as a coverage mask (float32 ``[h, w]`` in 0..1) with its bounding
    box ``(left, top, right, bottom)`` relative to the drawing origin; panels paste it."""
    font = _font(size)
    left, top, right, bottom = _text_box(ImageDraw.Draw(Image.new("L", (1, 1))), text, font)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255)
    return np.asarray(mask, dtype=np.float32) / 255.0, left, top, right, bottom


def _paste_text(image: np.ndarray, origin: tuple[int, int], text: str, size: int, colour) -> None:
    """Blend ``text`` (colour ``colour``) into ``image`` as ``ImageDraw.text`` at ``origin``."""
    if not text:
        return
    mask, left, top, _, _ = _stamp(text, size)
    x0, y0 = origin[0] + left, origin[1] + top
    h, w = mask.shape
    ys, xs = (
        slice(max(0, y0), min(image.shape[0], y0 + h)),
        slice(max(0, x0), min(image.shape[1], x0 + w)),
    )
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return
    m = mask[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0, None]
    region = image[ys, xs].astype(np.float32)
    image[ys, xs] = (region + (np.asarray(colour, dtype=np.float32) - region) * m + 0.5).astype(
        np.uint8
    )


def overlay_panel(
    frame: np.ndarray,
    lines: list[str],
    bars: dict[str, float] | None = None,
    width: int = 200,
) -> np.ndarray:
    """``frame`` with a panel of ``width`` pixels to its right showing text and labelled bars.

    ``lines`` are drawn top to bottom; ``bars`` (e.g. ``{"left": 0.7, "right": 0.1, ...}`` action
    probabilities, or Q-values) below them, one row each: label, a bar whose length is
    ``|value| / max |value|`` of the track, and the value. The largest value's bar is highlighted
    and negative values are drawn in blue. The result keeps the frame's height unless the panel
    needs more, in which case the frame is extended downwards; height and width are even. Text
    is drawn once per distinct string and pasted (an animation repeats most of its labels).
    """
    image = _as_frame(frame)
    h, w = image.shape[:2]
    panel = info_panel(lines, bars, width, min_height=h)
    height = panel.shape[0]
    out = np.empty((height, w + width, 3), dtype=np.uint8)
    if height > h:
        out[h:, :w] = _solid(height - h, w, _PAGE)
    out[:h, :w] = image
    out[:, w:] = panel[:, :width]
    return _pad_even(out, _PAGE)


def info_panel(
    lines: list[str],
    bars: dict[str, float] | None = None,
    width: int = 200,
    min_height: int = 0,
    size: int = 14,
) -> np.ndarray:
    """The panel :func:`overlay_panel` draws beside a frame, on its own: ``lines`` of text and
    labelled ``bars``, ``width`` pixels wide, at least ``min_height`` high (and as high as its
    content needs), text ``size`` pixels; height and width are even."""
    if not isinstance(width, int) or isinstance(width, bool) or width < 40:
        raise ValueError(f"width must be an int >= 40 (panel pixels), got {width!r}")
    lines = [str(line) for line in lines]
    bars = {str(k): float(v) for k, v in (bars or {}).items()}

    _, top, _, bottom = _stamp("Ag|", size)[1:]
    line_h = (bottom - top) + 6
    pad = 8
    content_h = pad + line_h * len(lines) + (pad if lines and bars else 0) + line_h * len(bars)
    height = max(min_height, content_h + pad)

    panel = _solid(height, width, _PAGE).copy()
    y = pad
    for line in lines:
        _paste_text(panel, (pad, y - top), line, size, _DARK_TEXT)
        y += line_h
    if bars:
        y += pad if lines else 0
        labels = list(bars)
        values = [bars[k] for k in labels]
        texts = [_format_value(v) for v in values]
        label_w = max(_stamp(k, size)[3] for k in labels)
        value_w = max(_stamp(t, size)[3] for t in texts)
        x0 = pad + label_w + 6
        x1 = width - pad - value_w - 6
        finite = [abs(v) for v in values if math.isfinite(v)]
        scale = max(finite, default=0.0)
        best = max((v for v in values if math.isfinite(v)), default=None)
        for label, value, text in zip(labels, values, texts, strict=True):
            _paste_text(panel, (pad, y - top), label, size, _DARK_TEXT)
            bar_top, bar_bottom = y + 1, y + line_h - 5
            if x1 > x0:
                panel[bar_top : bar_bottom + 1, x0 : x1 + 1] = _TRACK
                if scale > 0 and math.isfinite(value) and value != 0:
                    length = round(abs(value) / scale * (x1 - x0))
                    colour = _BAR_NEGATIVE if value < 0 else _BAR
                    if value == best and value > 0:
                        colour = _BAR_BEST
                    if length > 0:
                        panel[bar_top : bar_bottom + 1, x0 : x0 + length + 1] = colour
            value_x = width - pad - _stamp(text, size)[3]
            _paste_text(panel, (value_x, y - top), text, size, _DARK_TEXT)
            y += line_h
    return _pad_even(panel, _PAGE)
