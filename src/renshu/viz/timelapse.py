"""Drawing a timelapse: several agents' episodes side by side, one panel each.

A panel is a title strip (e.g. ``step 40,960 (50%)``), the env's picture scaled to the panel's
width, and under it the text lines and labelled bars of
:func:`~renshu.envs.render.info_panel` (score, action, action probabilities or Q-values).
:func:`timelapse_frames` lays the panels out in a row for every shown step; an episode that
ended earlier holds its last panel. Pictures are drawn only when shown, and a held panel is
drawn once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from renshu.envs.render import info_panel, with_header

# (picture(header) -> RGB uint8 [H, W, 3], text lines, bars {label: value} or None)
PanelSpec = tuple[Callable[[str | None], np.ndarray], list[str], dict[str, float] | None]

GAP = 8  # pixels between panels


def _fit_width(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` scaled (keeping its aspect) to ``width`` pixels when it is wider."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    height = max(2, round(h * width / w))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def _title_strip(title: str, width: int) -> np.ndarray:
    """The strip :func:`~renshu.envs.render.with_header` draws above a ``width``-pixel frame."""
    blank = np.zeros((2, width, 3), dtype=np.uint8)
    return with_header(blank, title)[:-2, :width]


def draw_panel(
    spec: PanelSpec, title: str | np.ndarray, max_width: int = 280, size: int = 14
) -> np.ndarray:
    """One panel: ``title`` (a text, or its strip from a panel before) above the picture
    (scaled down to ``max_width`` when wider), the info panel below, all as wide as the
    picture."""
    picture, lines, bars = spec
    image = _fit_width(np.asarray(picture(None), dtype=np.uint8)[..., :3], max_width)
    width = max(image.shape[1], 40)
    strip = _title_strip(title, width) if isinstance(title, str) else title[:, :width]
    below = info_panel(lines, bars, width=width + width % 2, size=size)[:, :width]
    height = strip.shape[0] + image.shape[0] + below.shape[0]
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = below[0, 0]
    h0, h1 = strip.shape[0], strip.shape[0] + image.shape[0]
    out[:h0, : strip.shape[1]] = strip
    out[h0:h1, : image.shape[1]] = image
    out[h1:] = below
    return out


def side_by_side(panels: Sequence[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Panels in a row, top-aligned, ``gap`` pixels apart, on the first panel's background."""
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    width += width % 2
    height += height % 2
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = panels[0][-1, -1]
    x = 0
    for p in panels:
        out[: p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def timelapse_frames(
    columns: Sequence[Sequence[PanelSpec]],
    titles: Sequence[str],
    shown: int,
    panel_width: int = 280,
) -> list[np.ndarray]:
    """``shown + 1`` frames of the panels in a row: frame ``j`` shows entry ``j`` of every
    column, or its last entry once the column has no more (an episode that ended). Pictures
    wider than ``panel_width`` are scaled down to it."""
    if not columns:
        raise ValueError("a timelapse needs at least one panel")
    if len(titles) != len(columns):
        raise ValueError(f"{len(titles)} titles for {len(columns)} panels")
    cache: dict[tuple[int, int], np.ndarray] = {}
    strips: dict[int, np.ndarray] = {}  # each title drawn once

    def panel(c: int, j: int) -> np.ndarray:
        j = min(j, len(columns[c]) - 1)
        if (c, j) not in cache:
            image = draw_panel(columns[c][j], strips.get(c, titles[c]), panel_width)
            strips.setdefault(c, image[: _title_strip("", 40).shape[0]])
            cache[(c, j)] = image
        return cache[(c, j)]

    frames = []
    for j in range(shown + 1):
        frames.append(side_by_side([panel(c, j) for c in range(len(columns))]))
        for key in [k for k in cache if k[1] < j and k[1] < len(columns[k[0]]) - 1]:
            del cache[key]  # only the held last panels are needed again
    return frames
