"""Learning curves from a run directory's ``episodes.csv`` and ``metrics.csv``.

* :func:`plot_learning_curve`: one run. Top: every finished episode's return (faint dots) and
  their moving average (strong line) against env steps, plus the evaluation returns when
  ``metrics.csv`` has ``eval/mean_return``. Below: one small panel per ``loss/*`` metric.
* :func:`plot_compare`: several runs, the moving average of their episode returns against env
  steps or wall-clock seconds.

Plots never fail on a short run: a run without episodes (or losses) yet gets a note in place of
the curve. Figures are drawn with matplotlib's Agg backend and written to a temporary file moved
into place, so a crash never leaves a half-written image.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from renshu.fileio import atomic_open
from renshu.runner.logging import EPISODES_FILE, METRICS_FILE, read_csv

__all__ = ["moving_average", "plot_compare", "plot_learning_curve"]

FIGSIZE = (10.0, 7.0)
DPI = 100
# More points than this are thinned (evenly) before drawing: a million dots render slowly and
# look no different from twenty thousand.
_MAX_DRAWN = 20_000
_LOSS_COLUMNS_PER_ROW = 3


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over ``window`` values, same length as ``values``.

    ``out[i]`` is the mean of ``values[max(0, i - window + 1) : i + 1]``: the first points average
    what exists so far.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return x
    sums = np.concatenate(([0.0], np.cumsum(x)))
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(idx - window, 0)
    return (sums[idx] - sums[lo]) / (idx - lo)


def _curve_window(n: int) -> int:
    return max(10, n // 50)


# -- reading a run -------------------------------------------------------------------------------


def _run_dir(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {path} does not exist")
    return path


def _table(path: Path) -> dict[str, list[float | None]]:
    return read_csv(path) if path.is_file() else {}


def _pairs(table: dict[str, list[float | None]], x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) arrays of the rows where both columns have a finite value."""
    if x not in table or y not in table:
        return np.zeros(0), np.zeros(0)
    xs = np.array(table[x], dtype=np.float64)  # None -> NaN
    ys = np.array(table[y], dtype=np.float64)
    keep = np.isfinite(xs) & np.isfinite(ys)
    return xs[keep], ys[keep]


def _episode_returns(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return _pairs(_table(run_dir / EPISODES_FILE), "env_steps", "return")


def _title(run_dir: Path) -> str:
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return run_dir.name
    if not isinstance(config, dict):
        return run_dir.name
    parts = [_name(config.get("algo")), _name(config.get("env"))]
    parts = [p for p in parts if p]
    return " on ".join(parts) if parts else run_dir.name


def _name(value: Any) -> str:
    if isinstance(value, dict):  # a nested config: its name or id
        for key in ("name", "id", "env_id", "algo"):
            if isinstance(value.get(key), str):
                return value[key]
        return ""
    return str(value) if value is not None else ""


def _thin(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    n = arrays[0].size
    if n <= _MAX_DRAWN:
        return arrays
    idx = np.linspace(0, n - 1, _MAX_DRAWN).round().astype(np.int64)
    return tuple(a[idx] for a in arrays)


def _smooth_curve(steps: np.ndarray, returns: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(episode indices, moving average there, window): the last episode of each logged step.

    Many episodes end at the same logged env step; drawing the average only where the step
    changes keeps the line from zig-zagging vertically within a batch.
    """
    window = _curve_window(steps.size)
    smooth = moving_average(returns, window)
    last = np.flatnonzero(np.r_[steps[1:] != steps[:-1], True])
    return last, smooth[last], min(window, steps.size)


def _marker(n: int) -> str | None:
    return "o" if n < 2 else ("." if n < 40 else None)


# -- drawing -------------------------------------------------------------------------------------


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=FIGSIZE, dpi=DPI)


def _save(plt: Any, fig: Any, out: Path) -> Path:
    """Write ``fig`` to ``out`` atomically and close it."""
    fmt = out.suffix.lstrip(".").lower() or "png"
    try:
        with atomic_open(out, "wb") as f:
            fig.savefig(f, format=fmt, dpi=DPI)
    finally:
        plt.close(fig)
    return out


def _note(ax: Any, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.4",
        fontsize=12,
    )


def plot_learning_curve(
    run_dir: str | Path, out: str | Path | None = None, title: str | None = None
) -> Path:
    """Plot one run's learning curve and losses; return the image path.

    ``out`` defaults to ``run_dir/learning_curve.png``; ``title`` to "<algo> on <env>" from the
    run's config.json (or the directory name).
    """
    run = _run_dir(run_dir)
    out = Path(out) if out is not None else run / "learning_curve.png"
    title = title if title is not None else _title(run)
    steps, returns = _episode_returns(run)
    metrics = _table(run / METRICS_FILE)
    eval_steps, eval_returns = _pairs(metrics, "env_steps", "eval/mean_return")
    losses = [c for c in metrics if c.startswith("loss/")]

    plt, fig = _figure()
    try:
        rows = math.ceil(len(losses) / _LOSS_COLUMNS_PER_ROW)
        cols = max(1, min(len(losses), _LOSS_COLUMNS_PER_ROW))
        grid = fig.add_gridspec(1 + rows, cols, height_ratios=[2.0] + [1.0] * rows)
        ax = fig.add_subplot(grid[0, :])

        if steps.size:
            last, smooth, window = _smooth_curve(steps, returns)
            s, r = _thin(steps, returns)
            ax.plot(
                s,
                r,
                ".",
                ms=2.5,
                alpha=0.25,
                color="tab:blue",
                label="episode return",
                rasterized=True,
            )
            xs, smooth = _thin(steps[last], smooth)
            ax.plot(
                xs,
                smooth,
                "-",
                lw=2.2,
                marker=_marker(xs.size),
                color="tab:blue",
                label=f"moving average ({window} episodes)",
            )
        if eval_steps.size:
            ax.plot(
                eval_steps,
                eval_returns,
                "o-",
                ms=4,
                lw=1.2,
                color="tab:orange",
                label="evaluation",
            )
        if not steps.size:
            _note(ax, "no finished episodes yet")
        if steps.size or eval_steps.size:
            ax.legend(loc="best", fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel("episode return")
        ax.set_title(title)
        ax.grid(alpha=0.3)

        for i, name in enumerate(losses):
            lax = fig.add_subplot(grid[1 + i // cols, i % cols])
            x, y = _pairs(metrics, "env_steps", name)
            if x.size:
                lax.plot(x, y, "-", lw=1.0, marker=_marker(x.size), color="tab:red")
            else:
                _note(lax, "no values yet")
            lax.set_title(name, fontsize=10)
            lax.tick_params(labelsize=8)
            lax.grid(alpha=0.3)
            if i // cols == rows - 1:
                lax.set_xlabel("env steps", fontsize=9)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return _save(plt, fig, out)


def _wall_seconds(run: Path, steps: np.ndarray) -> np.ndarray | None:
    """Wall seconds at ``steps``, interpolated from metrics.csv (None: no timing rows)."""
    known_steps, known_wall = _pairs(_table(run / METRICS_FILE), "env_steps", "wall_seconds")
    if not known_steps.size:
        return None
    order = np.argsort(known_steps, kind="stable")
    known_steps, known_wall = known_steps[order], known_wall[order]
    if known_steps[0] > 0:  # the run started at step 0, second 0
        known_steps = np.concatenate(([0.0], known_steps))
        known_wall = np.concatenate(([0.0], known_wall))
    return np.interp(steps, known_steps, known_wall)


def plot_compare(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    x: str = "env_steps",
) -> Path:
    """Plot the moving average of episode return of several runs in one figure.

    ``x`` is ``"env_steps"`` or ``"wall_seconds"`` (episodes' env steps mapped to wall time by
    interpolating metrics.csv). Labels default to the run directory names.
    """
    if x not in ("env_steps", "wall_seconds"):
        raise ValueError(f"x must be 'env_steps' or 'wall_seconds', got {x!r}")
    runs = [_run_dir(r) for r in run_dirs]
    if not runs:
        raise ValueError("plot_compare needs at least one run directory")
    if labels is None:
        labels = [r.name for r in runs]
    elif len(labels) != len(runs):
        raise ValueError(f"got {len(labels)} labels for {len(runs)} run directories")

    plt, fig = _figure()
    try:
        ax = fig.add_subplot(1, 1, 1)
        drawn = 0
        missing: list[str] = []
        for run, label in zip(runs, labels, strict=True):
            steps, returns = _episode_returns(run)
            xs = steps if x == "env_steps" else _wall_seconds(run, steps)
            if not steps.size or xs is None:
                missing.append(str(label))
                continue
            last, smooth, _ = _smooth_curve(steps, returns)
            at, smooth = _thin(xs[last], smooth)
            ax.plot(at, smooth, "-", lw=2.0, marker=_marker(at.size), label=str(label))
            drawn += 1
        if missing:
            why = "no episodes" if x == "env_steps" else "no episodes or timings"
            ax.plot([], [], " ", label=f"({why}: {', '.join(missing)})")
        if not drawn:
            _note(ax, "no finished episodes yet")
        ax.legend(loc="best", fontsize=9)
        ax.set_xlabel("env steps" if x == "env_steps" else "wall-clock seconds")
        ax.set_ylabel("episode return (moving average)")
        ax.set_title("episode return")
        ax.grid(alpha=0.3)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return _save(plt, fig, Path(out))
