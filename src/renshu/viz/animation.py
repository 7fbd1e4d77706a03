"""Writing a list of RGB frames as an animated GIF or an MP4 video.

GIFs need only Pillow. MP4s need ``imageio`` and ``imageio-ffmpeg`` (``pip install imageio
imageio-ffmpeg``), are encoded with H.264 in yuv420p (plays everywhere), and so need even frame
sizes: odd sizes are padded by one pixel.

Frames of different sizes are padded at the bottom and right to the largest, with each frame's
top-left pixel colour (the background of renshu's renders). The file is written to a temporary
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


def _import_mp4_writer():
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio's FFMPEG plugin runs)
    except ImportError as e:
        raise ImportError(
            "writing .mp4 animations needs imageio and imageio-ffmpeg: "
            "pip install imageio imageio-ffmpeg (or save a .gif, which needs only Pillow)"
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
            first, *rest = (Image.fromarray(im) for im in images)
            first.save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=rest,
                duration=max(10, round(1000 / fps)),
                loop=0,
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
