"""Writing a list of RGB frames as an animated GIF or an MP4 video.

GIFs need only Pillow. MP4s need ``imageio`` and ``imageio-ffmpeg`` (``pip install imageio
imageio-ffmpeg``), are encoded with H.264 in yuv420p (plays everywhere), and so need even frame
sizes: odd sizes are padded by one pixel.

Frames of different sizes are padded at the bottom and right to the largest, with each frame's
top-left pixel colour (the background of renshu's renders). A GIF uses one palette for all its
frames (at most 256 colours, chosen once from a few of them by median cut), and every frame is
mapped to it with one table lookup per pixel: renshu's renders are flat colours, so nothing is
lost, and a 150-frame animation is written in a fraction of a second instead of quantizing
each frame on its own. The file is written to a temporary
file next to ``path`` and moved into place only when complete, so a crash never leaves a
half-written animation and an existing file is replaced only by a finished one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from renshu.fileio import atomic_path

__all__ = ["SUPPORTED_SUFFIXES", "save_animation"]

SUPPORTED_SUFFIXES = (".gif", ".mp4")


def _as_rgb(frame: np.ndarray, index: int) -> np.ndarray:
    image = np.asarray(frame)
    if image.dtype != np.uint8:
        raise ValueError(f"frame {index} must be a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape[:2]:
        raise ValueError(
            f"frame {index} must have shape [H, W, 3] (or [H, W, 4]), got {image.shape}"
        )
    return image[:, :, :3]


def _pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return np.ascontiguousarray(image)
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = image[0, 0]
    out[:h, :w] = image
    return out


def _codes(image: np.ndarray) -> np.ndarray:
    """The 15-bit colour of every pixel (5 bits of red, green and blue)."""
    rgb = image >> 3
    return (
        (rgb[..., 0].astype(np.uint16) << 10) | (rgb[..., 1].astype(np.uint16) << 5) | rgb[..., 2]
    )


def _palette(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One palette for all frames and the table from 15-bit colour to palette index.

    The palette holds the 256 most frequent 15-bit colours of the frames (every third pixel of
    up to 16 frames spread over the animation), each as the mean of its pixels, so flat colours
    stay exact; every 15-bit colour maps to its nearest palette entry.
    """
    counts = np.zeros(1 << 15, dtype=np.int64)
    sums = np.zeros((1 << 15, 3), dtype=np.int64)
    picks = sorted({round(i * (len(images) - 1) / 15) for i in range(16)})
    for im in (images[i] for i in picks):
        sample = im[::3, ::3].reshape(-1, 3)
        codes = _codes(sample).astype(np.int64)
        counts += np.bincount(codes, minlength=1 << 15)
        for c in range(3):
            sums[:, c] += np.bincount(codes, weights=sample[:, c], minlength=1 << 15).astype(
                np.int64
            )
    chosen = np.argsort(-counts, kind="stable")[:256]
    chosen = chosen[counts[chosen] > 0]
    palette = (sums[chosen] + counts[chosen, None] // 2) // counts[chosen, None]
    levels = (np.arange(32) << 3) | 4  # the centre of each 5-bit bucket
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    seen = counts > 0
    grid[seen] = (sums[seen] + counts[seen, None] // 2) // counts[seen, None]
    grid, colours = grid.astype(np.float32), palette.astype(np.float32)
    # nearest palette colour: |g - p|^2 = |g|^2 - 2 g.p + |p|^2, the first term the same for all p
    distance = (colours**2).sum(1)[None, :] - 2.0 * grid @ colours.T
    lut = distance.argmin(1).astype(np.uint8)
    full = np.zeros((256, 3), dtype=np.uint8)
    full[: len(palette)] = palette
    return full, lut


def _indexed(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return lut[_codes(image)]


def _import_mp4_writer():
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio's FFMPEG plugin runs)
    except ImportError as e:
        raise ImportError(
            "writing .mp4 animations needs imageio and imageio-ffmpeg: "
            'pip install "renshu[viz]" (that is, pip install imageio imageio-ffmpeg), or save '
            "a .gif, which needs only Pillow"
        ) from e
    return imageio


def save_animation(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 8) -> Path:
    """Write ``frames`` (uint8 ``[H, W, 3]`` images) to ``path`` at ``fps`` frames per second.

    The suffix picks the format: ``.gif`` (Pillow, loops forever) or ``.mp4`` (imageio +
    imageio-ffmpeg). Parent folders are created. Returns the path written.

    Pillow merges identical consecutive GIF frames into one longer frame, so a GIF may hold
    fewer frames than given while playing for the same time.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"cannot write an animation to {str(path)!r}: "
            f"unsupported suffix {suffix or '(none)'!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    frames = list(frames)
    if not frames:
        raise ValueError("no frames to save: frames is empty")
    imageio = _import_mp4_writer() if suffix == ".mp4" else None

    images = [_as_rgb(f, i) for i, f in enumerate(frames)]
    height = max(im.shape[0] for im in images)
    width = max(im.shape[1] for im in images)
    if suffix == ".mp4":  # H.264 in yuv420p needs even sizes
        height += height % 2
        width += width % 2
    images = [_pad_to(im, height, width) for im in images]

    with atomic_path(path) as tmp:
        if suffix == ".gif":
            palette, lut = _palette(images)
            indexed = []
            for im in images:
                frame = Image.fromarray(_indexed(im, lut), mode="P")
                frame.putpalette(palette.reshape(-1).tolist())
                indexed.append(frame)
            first, *rest = indexed
            first.save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=rest,
                duration=max(10, round(1000 / fps)),
                loop=0,
                optimize=False,
            )
        else:
            writer = imageio.get_writer(
                tmp,
                format="FFMPEG",
                mode="I",
                fps=fps,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=1,
            )
            try:
                for im in images:
                    writer.append_data(im)
            finally:
                writer.close()
    return path
