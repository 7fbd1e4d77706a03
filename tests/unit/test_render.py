"""Board rendering (terminal text, RGB frames, side panel) and animation files."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from renshu.envs.game2048 import board_from_tiles, tiles
from renshu.envs.render import board_ansi, board_rgb, overlay_panel
from renshu.viz.animation import save_animation

BOARD = [
    [0, 2, 4, 8],
    [16, 32, 64, 128],
    [256, 512, 1024, 2048],
    [2, 0, 0, 4],
]
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

EMPTY_RGB = (0xCD, 0xC1, 0xB4)
TWO_RGB = (0xEE, 0xE4, 0xDA)
EIGHT_RGB = (0xF2, 0xB1, 0x79)
TILE_2048_RGB = (0xED, 0xC2, 0x2E)
DARK_TEXT = (0x77, 0x6E, 0x65)
BAR_RGB = (0xBB, 0xAD, 0xA0)
BAR_BEST_RGB = (0xF6, 0x7C, 0x5F)
BAR_NEGATIVE_RGB = (0x8F, 0xA9, 0xC9)


def parse_plain(text: str) -> list[list[int]]:
    """Tile values from the rows of a plain-text board."""
    rows = []
    for line in text.splitlines():
        if line.startswith("│"):
            cells = line.strip("│").split("│")
            rows.append([int(c) if c.strip() else 0 for c in cells])
    return rows


# ---------------------------------------------------------------------------------------------
# board_ansi


def test_plain_text_has_numbers_in_their_rows_and_columns():
    text = board_ansi(BOARD, color=False)
    lines = text.splitlines()
    assert "\x1b" not in text
    assert len(lines) == 9  # 4 rows, 3 separators, top and bottom rules
    assert lines[0].startswith("┌") and lines[-1].startswith("└")
    assert len({len(line) for line in lines}) == 1  # a rectangle
    assert parse_plain(text) == BOARD
    # Right-aligned: each number ends just before the cell's padding space.
    assert lines[1] == "│      │    2 │    4 │    8 │"
    assert lines[5] == "│  256 │  512 │ 1024 │ 2048 │"


def test_cells_widen_for_five_digit_tiles():
    text = board_ansi([[32768, 2, 0, 0]] + [[0] * 4] * 3, color=False)
    assert text.splitlines()[1] == "│ 32768 │     2 │       │       │"


def test_coloured_text_strips_to_the_plain_text_and_colours_tiles_apart():
    coloured = board_ansi(BOARD)
    assert "\x1b[48;5;" in coloured
    assert ANSI_ESCAPE.sub("", coloured) == board_ansi(BOARD, color=False)
    # Background colour of every cell, in reading order: every tile value 0..2048 differs.
    backgrounds = [int(code) for code in re.findall(r"\x1b\[48;5;(\d+)m", coloured)]
    assert len(backgrounds) == 16
    by_value = dict(zip(np.ravel(BOARD).tolist(), backgrounds, strict=True))
    assert len(by_value) == 12 and len(set(by_value.values())) == 12


def test_accepts_lists_numpy_and_torch():
    board = board_from_tiles(torch.tensor(BOARD)).view(1)
    from_torch = board_ansi(tiles(board)[0], color=False)
    assert from_torch == board_ansi(np.array(BOARD), color=False) == board_ansi(BOARD, color=False)


@pytest.mark.parametrize(
    "bad",
    [[2, 4, 8, 16], [[-2, 0], [0, 0]], [[0.5, 0], [0, 0]], np.zeros((0, 4))],
)
def test_bad_boards_are_refused(bad):
    with pytest.raises(ValueError, match="tile"):
        board_ansi(bad)
    with pytest.raises(ValueError, match="tile"):
        board_rgb(bad)


# ---------------------------------------------------------------------------------------------
# board_rgb


def cell_origin(r: int, c: int, cell: int = 64, header_h: int = 0) -> tuple[int, int]:
    gap = max(2, cell // 16)
    return header_h + gap + r * (cell + gap), gap + c * (cell + gap)


def test_rgb_size_dtype_and_header_strip():
    frame = board_rgb(BOARD)
    assert frame.dtype == np.uint8 and frame.shape == (276, 276, 3)  # 4*64 + 5*4
    with_header = board_rgb(BOARD, header="step 12  score 340")
    assert with_header.shape == (276 + 32, 276, 3)
    assert np.array_equal(with_header[32:], frame)
    strip = with_header[:32]
    assert (strip != strip[0, -1]).any(axis=2).sum() > 50  # the text is drawn
    other = board_rgb(BOARD, header="step 13  score 344")
    assert not np.array_equal(other[:32], strip)


@pytest.mark.parametrize("cell", [8, 33, 45, 64, 101])
def test_rgb_sizes_are_even(cell):
    for header in (None, "x"):
        h, w, _ = board_rgb(BOARD, cell=cell, header=header).shape
        assert h % 2 == 0 and w % 2 == 0


def test_tile_colours_and_text():
    frame = board_rgb(BOARD)

    # Top-middle of a cell: inside the rounded square, above the number.
    def tile_colour(r, c):
        y, x = cell_origin(r, c)
        return tuple(int(v) for v in frame[y + 6, x + 32])

    assert tile_colour(0, 0) == EMPTY_RGB
    assert tile_colour(0, 1) == TWO_RGB
    assert tile_colour(3, 0) == TWO_RGB
    assert tile_colour(0, 3) == EIGHT_RGB
    assert tile_colour(2, 3) == TILE_2048_RGB
    assert len({tile_colour(r, c) for r in range(4) for c in range(4)}) == 12

    def interior(r, c):
        y, x = cell_origin(r, c)
        return frame[y + 8 : y + 56, x + 8 : x + 56].reshape(-1, 3)

    # The empty cell is plain; a numbered one has its number drawn: dark on 2, light on 8.
    assert (interior(0, 0) == EMPTY_RGB).all()
    two = interior(0, 1).astype(int)
    assert (np.abs(two - DARK_TEXT).sum(axis=1) < 30).sum() > 20
    eight = interior(0, 3).astype(int)
    assert (eight.sum(axis=1) > sum(EIGHT_RGB) + 60).sum() > 20  # light text on orange


def test_rgb_refuses_tiny_cells():
    with pytest.raises(ValueError, match="cell"):
        board_rgb(BOARD, cell=4)


# ---------------------------------------------------------------------------------------------
# overlay_panel


def count(image: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((image == rgb).all(axis=2).sum())


def test_panel_sits_right_of_the_unchanged_frame():
    frame = board_rgb(BOARD, header="step 1")
    out = overlay_panel(frame, ["step 1", "score 0"], {"left": 0.7, "right": 0.3}, width=200)
    assert out.dtype == np.uint8 and out.shape == (frame.shape[0], frame.shape[1] + 200, 3)
    assert np.array_equal(out[:, : frame.shape[1]], frame)
    assert count(out[:, frame.shape[1] :], BAR_BEST_RGB) > 0


def test_bar_lengths_are_proportional_to_the_values():
    frame = board_rgb(BOARD)
    panel = overlay_panel(frame, [], {"a": 1.0, "b": 0.5})[:, frame.shape[1] :]
    best, half = count(panel, BAR_BEST_RGB), count(panel, BAR_RGB)
    assert best > 0 and best / half == pytest.approx(2.0, rel=0.05)
    # Scaled by the largest magnitude: -2 is a full bar (in the negative colour), 1 half of one.
    panel = overlay_panel(frame, ["q"], {"a": -2.0, "b": 1.0})[:, frame.shape[1] :]
    negative, positive = count(panel, BAR_NEGATIVE_RGB), count(panel, BAR_BEST_RGB)
    assert negative / positive == pytest.approx(2.0, rel=0.05)


def test_panel_handles_zero_nan_and_odd_widths():
    frame = board_rgb(BOARD)
    zeros = overlay_panel(frame, ["x"], {"a": 0.0, "b": 0.0})[:, frame.shape[1] :]
    assert count(zeros, BAR_BEST_RGB) == count(zeros, BAR_RGB) == 0
    nan = overlay_panel(frame, ["x"], {"a": float("nan"), "b": 1.0}, width=151)
    assert nan.shape[1] % 2 == 0 and nan.shape[1] >= frame.shape[1] + 151


def test_panel_grows_to_fit_many_lines():
    frame = board_rgb(BOARD, cell=16)
    out = overlay_panel(frame, [f"line {i}" for i in range(30)])
    assert out.shape[0] > frame.shape[0] and out.shape[0] % 2 == 0
    assert np.array_equal(out[: frame.shape[0], : frame.shape[1]], frame)


def test_panel_refuses_non_images():
    with pytest.raises(ValueError, match="uint8"):
        overlay_panel(np.zeros((10, 10, 3), dtype=np.float32), ["x"])
    with pytest.raises(ValueError, match="shape"):
        overlay_panel(np.zeros((10, 10, 2), dtype=np.uint8), ["x"])


# ---------------------------------------------------------------------------------------------
# save_animation


def solid(rgb, h=20, w=30) -> np.ndarray:
    frame = np.empty((h, w, 3), dtype=np.uint8)
    frame[:] = rgb
    return frame


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 0, 0)]


def test_gif_round_trips_through_pillow(tmp_path):
    path = tmp_path / "deep" / "er" / "episode.gif"
    written = save_animation([solid(c) for c in COLOURS], path, fps=10)
    assert written == path and path.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["episode.gif"]  # no temp left
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.size == (30, 20)
        assert gif.n_frames == len(COLOURS)
        assert gif.info["loop"] == 0
        for i, colour in enumerate(COLOURS):
            gif.seek(i)
            assert gif.info["duration"] == 100
            assert gif.convert("RGB").getpixel((15, 10)) == colour


def test_gif_of_real_boards_and_padding_to_the_largest_frame(tmp_path):
    small = board_rgb(BOARD, cell=16)
    large = overlay_panel(board_rgb(BOARD, cell=32), ["step 2"], {"left": 1.0})
    path = save_animation([small, large], tmp_path / "a.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 2 and gif.size == (large.shape[1], large.shape[0])
        gif.seek(0)
        first = np.asarray(gif.convert("RGB")).astype(int)
    # A GIF holds 256 colours per frame; anti-aliased text has more, so compare loosely.
    assert np.abs(first[: small.shape[0], : small.shape[1]] - small).max() <= 24
    assert (first[small.shape[0] :] == small[0, 0]).all()  # padded with the background


def test_bad_arguments_write_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"\.gif, \.mp4"):
        save_animation([solid(COLOURS[0])], tmp_path / "a.avi")
    with pytest.raises(ValueError, match="empty"):
        save_animation([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="fps"):
        save_animation([solid(COLOURS[0])], tmp_path / "a.gif", fps=0)
    with pytest.raises(ValueError, match="uint8"):
        save_animation([np.zeros((4, 4, 3))], tmp_path / "a.gif")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_existing_file(tmp_path, monkeypatch):
    path = tmp_path / "a.gif"
    path.write_bytes(b"old")

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_animation([solid(COLOURS[0])], path)
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]


def test_mp4_without_imageio_ffmpeg_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import now raises ImportError
    with pytest.raises(ImportError, match="pip install imageio imageio-ffmpeg"):
        save_animation([solid(COLOURS[0])], tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


def test_mp4_is_written_with_even_size(tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    frames = [solid(c, h=33, w=47) for c in COLOURS]
    path = save_animation(frames, tmp_path / "out" / "a.mp4", fps=5)
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.mp4"]
    reader = imageio.get_reader(path)
    try:
        assert reader.get_meta_data()["fps"] == pytest.approx(5)
        decoded = [np.asarray(f) for f in reader]
    finally:
        reader.close()
    assert len(decoded) == len(COLOURS)
    for frame, colour in zip(decoded, COLOURS, strict=True):
        assert frame.shape == (34, 48, 3)
        centre = frame[16, 23].astype(int)
        assert np.abs(centre - colour).max() < 40  # lossy, but the colour survives
