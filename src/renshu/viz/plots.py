"""Learning curves from a run directory's ``episodes.csv`` and ``metrics.csv``.

* :func:`plot_learning_curve`: one run. Top: every finished episode's return (faint dots),
  their moving average (strong line), the 10th, 50th and 90th percentiles of the same trailing
  window of episodes (a band and a dashed median), and the evaluation returns when
  ``metrics.csv`` has ``eval/mean_return``. For an env whose spec reports an extra summarised
  as ``counts`` (2048's ``max_tile``), a panel of stacked areas: the share of the trailing
  window's episodes that ended with each value (which tile the games reached). Below: one small
  panel per ``loss/*`` metric.
* :func:`plot_compare`: several runs, the moving average of their episode returns.
* :func:`plot_groups`: groups of runs (seeds of one setting, :mod:`renshu.runner.group`), each
  as the mean of its runs' moving averages with a band of one standard deviation.

Every plot takes ``x``: ``"steps"`` (env steps), ``"episodes"`` (finished episodes) or
``"seconds"`` (wall-clock, interpolated from metrics.csv), and ``window``: the episodes the
moving average and percentiles span (default: a fiftieth of the run's episodes, at least 10).

Plots never fail on a short run: a run without episodes (or losses) yet gets a note in place of
the curve. Figures are drawn with matplotlib's Agg backend and written to a temporary file moved
into place, so a crash never leaves a half-written image.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from renshu.fileio import atomic_open
from renshu.runner.logging import EPISODES_FILE, METRICS_FILE, read_csv

__all__ = ["X_AXES", "moving_average", "plot_compare", "plot_groups", "plot_learning_curve"]

FIGSIZE = (10.0, 7.0)
COUNTS_PANEL_HEIGHT = 2.8  # inches added to the figure per counts panel (2048's tiles)
DPI = 100
# More points than this are thinned (evenly) before drawing: a million dots render slowly and
# look no different from twenty thousand.
_MAX_DRAWN = 20_000
# Trailing percentiles and shares are computed at this many points along the run at most.
_MAX_STAT_POINTS = 400
_LOSS_COLUMNS_PER_ROW = 3
# A counts panel shows at most this many values; the smallest are merged into one "<= v" band.
_MAX_CLASSES = 7
BAND_ALPHA = 0.25  # the 10-90 percentile band of returns
_GROUP_GRID = 200  # points on the common x grid of a group's mean and std

X_AXES = {"steps": "env steps", "episodes": "finished episodes", "seconds": "wall-clock seconds"}
_X_ALIASES = {"env_steps": "steps", "wall_seconds": "seconds"}  # older names


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


def trailing_percentiles(
    values: np.ndarray, ends: np.ndarray, window: int, qs: Sequence[float] = (10, 50, 90)
) -> np.ndarray:
    """``[len(qs), len(ends)]``: the percentiles ``qs`` of ``values[max(0, e - window + 1) :
    e + 1]`` for each index ``e`` in ``ends`` (the same trailing window as the moving average)."""
    out = np.empty((len(qs), len(ends)))
    for j, end in enumerate(ends):
        out[:, j] = np.percentile(values[max(0, int(end) - window + 1) : int(end) + 1], qs)
    return out


def trailing_shares(
    values: np.ndarray, ends: np.ndarray, window: int, max_classes: int = _MAX_CLASSES
) -> tuple[list[str], np.ndarray]:
    """(labels, shares ``[classes, len(ends)]``): among the episodes of the trailing window
    ending at each index of ``ends``, the fraction whose value is each class (NaN values are
    left out). Classes are the distinct values, smallest first; beyond ``max_classes`` the
    smallest are merged into one ``"<= v"`` class. Each column sums to 1 (0 with no values)."""
    finite = np.isfinite(values)
    distinct = np.unique(values[finite])
    if distinct.size == 0:
        return [], np.zeros((0, len(ends)))
    merged = distinct.size > max_classes
    kept = distinct[distinct.size - max_classes + 1 :] if merged else distinct
    cls = np.searchsorted(kept, np.where(finite, values, kept[0]))  # merged values -> class 0
    if merged:
        cls = np.where(values < kept[0], 0, cls + 1)
    labels = [f"{v:g}" for v in kept]
    if merged:
        labels = [f"\u2264 {distinct[distinct.size - max_classes]:g}", *labels]
    onehot = np.zeros((values.size, len(labels)))
    onehot[np.flatnonzero(finite), cls[finite]] = 1.0
    sums = np.concatenate((np.zeros((1, len(labels))), np.cumsum(onehot, axis=0)))
    ends = np.asarray(ends, dtype=np.int64)
    counts = sums[ends + 1] - sums[np.maximum(ends + 1 - window, 0)]
    total = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    return labels, shares.T


def _curve_window(n: int) -> int:
    return max(10, n // 50)


def _x_kind(x: str) -> str:
    kind = _X_ALIASES.get(x, x)
    if kind not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    return kind


def _check_window(window: int | None) -> None:
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                               or window < 1):  # fmt: skip
        raise ValueError(f"window must be an integer >= 1 (episodes), got {window!r}")


# -- reading a run -------------------------------------------------------------------------------


def _run_dir(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {path} does not exist")
    return path


def _table(path: Path) -> dict[str, list[float | None]]:
    return read_csv(path) if path.is_file() else {}


def _column(table: dict[str, list[float | None]], name: str) -> np.ndarray:
    return np.array(table.get(name, []), dtype=np.float64)  # None -> NaN


def _pairs(table: dict[str, list[float | None]], x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) arrays of the rows where both columns have a finite value."""
    if x not in table or y not in table:
        return np.zeros(0), np.zeros(0)
    xs, ys = _column(table, x), _column(table, y)
    keep = np.isfinite(xs) & np.isfinite(ys)
    return xs[keep], ys[keep]


def _config(run_dir: Path) -> dict:
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _title(run_dir: Path) -> str:
    config = _config(run_dir)
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


def _count_extras(run_dir: Path) -> list[str]:
    """The episode extras the run's env spec summarises as counts (2048: ``max_tile``)."""
    env = _config(run_dir).get("env")
    if not isinstance(env, str):
        return []
    from renshu.envs.specs import resolve

    try:
        spec = resolve(env)
    except (ValueError, ImportError):
        return []
    return [name for name, how in spec.extras.items() if how == "counts"]


@dataclass
class _Run:
    """One run's finished episodes (in the order they finished) and its metrics rows."""

    path: Path
    episodes: dict[str, list[float | None]]
    metrics: dict[str, list[float | None]]
    steps: np.ndarray  # env steps at which each episode finished
    returns: np.ndarray
    rows: np.ndarray  # the episodes.csv row of each (rows without a return are left out)

    @classmethod
    def read(cls, run_dir: str | Path) -> _Run:
        path = _run_dir(run_dir)
        episodes = _table(path / EPISODES_FILE)
        steps, returns = _column(episodes, "env_steps"), _column(episodes, "return")
        rows = np.flatnonzero(np.isfinite(steps) & np.isfinite(returns))
        return cls(path, episodes, _table(path / METRICS_FILE), steps[rows], returns[rows], rows)

    def extra(self, name: str) -> np.ndarray:
        """An episodes.csv column aligned with :attr:`returns` (NaN where it is empty)."""
        values = _column(self.episodes, name)
        return values[self.rows] if values.size else np.full(self.rows.size, np.nan)

    def x_at(self, steps: np.ndarray, kind: str) -> np.ndarray | None:
        """``steps`` (env steps) on the ``kind`` axis; None if the run lacks what it needs
        (seconds: metrics.csv's timings)."""
        if kind == "steps":
            return steps
        if kind == "episodes":  # episodes finished by then
            return np.searchsorted(self.steps, steps, side="right").astype(np.float64)
        known_steps, known_wall = _pairs(self.metrics, "env_steps", "wall_seconds")
        if not known_steps.size:
            return None
        order = np.argsort(known_steps, kind="stable")
        known_steps, known_wall = known_steps[order], known_wall[order]
        if known_steps[0] > 0:  # the run started at step 0, second 0
            known_steps = np.concatenate(([0.0], known_steps))
            known_wall = np.concatenate(([0.0], known_wall))
        return np.interp(steps, known_steps, known_wall)

    def episode_x(self, kind: str) -> np.ndarray | None:
        if kind == "episodes":
            return np.arange(1, self.steps.size + 1, dtype=np.float64)
        return self.x_at(self.steps, kind)

    def smooth(self, kind: str, window: int | None) -> tuple[np.ndarray, np.ndarray, int] | None:
        """(x, moving average there, window) at the last episode of each logged step, or None
        without episodes (or without the timings ``seconds`` needs)."""
        xs = self.episode_x(kind)
        if not self.steps.size or xs is None:
            return None
        last, smooth, used = _smooth_curve(self.steps, self.returns, window)
        return xs[last], smooth, used


def _thin(*arrays: np.ndarray, limit: int = _MAX_DRAWN) -> tuple[np.ndarray, ...]:
    n = arrays[0].size
    if n <= limit:
        return arrays
    idx = np.linspace(0, n - 1, limit).round().astype(np.int64)
    return tuple(a[idx] for a in arrays)


def _last_of_each_step(steps: np.ndarray) -> np.ndarray:
    """Indices of the last episode finished at each logged env step.

    Many episodes end at the same logged env step; drawing statistics only where the step
    changes keeps the line from zig-zagging vertically within a batch.
    """
    return np.flatnonzero(np.r_[steps[1:] != steps[:-1], True])


def _smooth_curve(
    steps: np.ndarray, returns: np.ndarray, window: int | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(episode indices, moving average there, window): the last episode of each logged step."""
    window = window if window is not None else _curve_window(steps.size)
    smooth = moving_average(returns, window)
    last = _last_of_each_step(steps)
    return last, smooth[last], min(window, steps.size)


def _marker(n: int) -> str | None:
    return "o" if n < 2 else ("." if n < 40 else None)


# -- drawing -------------------------------------------------------------------------------------


def _figure(size: tuple[float, float] = FIGSIZE):
    """A figure on the Agg canvas, without pyplot (whose import costs more than the drawing)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out: Path) -> Path:
    """Write ``fig`` to ``out`` atomically (PNG at a light compression: a third of the time of
    the default for files about 1.3x larger)."""
    fmt = out.suffix.lstrip(".").lower() or "png"
    extra = {"pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format=fmt, dpi=DPI, **extra)
    return out


def _fixed_margins(size: tuple[float, float], rows: int, legend_right: bool) -> dict:
    """Subplot margins and gaps in inches, as gridspec fractions: the learning curve's layout
    is fixed (``tight_layout`` would measure every label first, a third of the drawing time).
    Room is left for a title and axis label per row and, with a counts panel, its legend."""
    width, height = size
    left, right, top, bottom, gap = 0.8, (1.15 if legend_right else 0.25), 0.4, 0.55, 0.8
    axes_height = (height - top - bottom - gap * (rows - 1)) / rows
    return {
        "left": left / width,
        "right": 1 - right / width,
        "top": 1 - top / height,
        "bottom": bottom / height,
        "hspace": gap / axes_height,
        "wspace": 0.3,
    }


def _count_label(value: float, _pos: Any = None) -> str:
    """Tick labels of large counts: 250k, 1.5M (``2.5e6`` offsets are hard to read)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


def _x_ticks(ax: Any, kind: str) -> None:
    from matplotlib.ticker import FuncFormatter

    if kind != "seconds":
        ax.xaxis.set_major_formatter(FuncFormatter(_count_label))


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


def _returns_panel(ax: Any, run: _Run, kind: str, window: int | None) -> None:
    """Episode returns: dots, moving average, 10-50-90 percentile band, evaluations."""
    xs = run.episode_x(kind)
    eval_steps, eval_returns = _pairs(run.metrics, "env_steps", "eval/mean_return")
    eval_x = run.x_at(eval_steps, kind) if eval_steps.size else None
    drawn = False
    if run.steps.size and xs is not None:
        last, smooth, used = _smooth_curve(run.steps, run.returns, window)
        s, r = _thin(xs, run.returns)
        # Grey dots under the blue statistics: tens of thousands of them would hide a blue band.
        dots = 0.3 if s.size < 2_000 else 0.12
        ax.plot(s, r, ".", ms=2.5, alpha=dots, color="0.45", label="episode return",
                rasterized=True, zorder=1)  # fmt: skip
        if last.size >= 2:
            at = _thin(last, limit=_MAX_STAT_POINTS)[0]
            low, mid, high = trailing_percentiles(run.returns, at, used or 1)
            ax.fill_between(xs[at], low, high, color="tab:blue", alpha=BAND_ALPHA, lw=0, zorder=2,
                            label=f"10th-90th percentile (last {used} episodes)")  # fmt: skip
            ax.plot(xs[at], mid, "--", lw=1.3, color="navy", zorder=3,
                    label=f"median (last {used} episodes)")  # fmt: skip
        x_line, smooth = _thin(xs[last], smooth)
        ax.plot(x_line, smooth, "-", lw=2.2, marker=_marker(x_line.size), color="tab:blue",
                label=f"mean (last {used} episodes)", zorder=3)  # fmt: skip
        drawn = True
    if eval_x is not None:
        ax.plot(eval_x, eval_returns, "o-", ms=4, lw=1.2, color="tab:orange", zorder=4,
                label="evaluation (mean return)")  # fmt: skip
        drawn = True
    if not run.steps.size:
        _note(ax, "no finished episodes yet")
    elif xs is None:
        _note(ax, "no timings in metrics.csv yet")
    if drawn:
        ax.legend(loc="best", fontsize=9, framealpha=0.85)
    ax.set_xlabel(X_AXES[kind])
    ax.set_ylabel("episode return")
    _x_ticks(ax, kind)
    ax.grid(alpha=0.3)


def _counts_panel(ax: Any, run: _Run, name: str, kind: str, window: int | None) -> None:
    """Stacked areas: the share of the trailing window's episodes ending with each value."""
    label = name.replace("_", " ")
    xs = run.episode_x(kind)
    values = run.extra(name)
    ends = _last_of_each_step(run.steps) if run.steps.size else np.zeros(0, np.int64)
    ends = _thin(ends, limit=_MAX_STAT_POINTS)[0]
    used = min(window if window is not None else _curve_window(run.steps.size), run.steps.size)
    classes, shares = trailing_shares(values, ends, max(used, 1))
    if xs is None or not classes:
        _note(ax, f"no {label} values yet")
    else:
        import matplotlib

        colours = matplotlib.colormaps["viridis"](np.linspace(0.05, 0.95, len(classes)))
        at = xs[ends]
        if at.size == 1:  # one point: a visible strip instead of a zero-width area
            at, shares = np.r_[at, at + 1.0], np.repeat(shares, 2, axis=1)
        areas = ax.stackplot(at, 100.0 * shares, colors=colours, labels=classes, alpha=0.95)
        handles = areas[::-1]  # the legend lists the largest value first, as stacked
        ax.legend(handles, classes[::-1], title=label, loc="upper left", bbox_to_anchor=(1.005, 1),
                  fontsize=9, title_fontsize=9, frameon=False)  # fmt: skip
        ax.set_xlim(at[0], at[-1])
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of episodes")
    ax.set_title(f"{label} at the end of the episode (share of the last {used} episodes)",
                 fontsize=10)  # fmt: skip
    ax.set_xlabel(X_AXES[kind])
    _x_ticks(ax, kind)
    ax.grid(alpha=0.3)


def plot_learning_curve(
    run_dir: str | Path,
    out: str | Path | None = None,
    title: str | None = None,
    x: str = "steps",
    window: int | None = None,
) -> Path:
    """Plot one run's learning curve, its counts panels and losses; return the image path.

    ``out`` defaults to ``run_dir/learning_curve.png``; ``title`` to "<algo> on <env>" from the
    run's config.json (or the directory name). ``x``: steps, episodes or seconds; ``window``:
    episodes per moving average (see the module docstring).
    """
    kind = _x_kind(x)
    _check_window(window)
    run = _Run.read(run_dir)
    out = Path(out) if out is not None else run.path / "learning_curve.png"
    title = title if title is not None else _title(run.path)
    counts = [name for name in _count_extras(run.path) if name in run.episodes]
    losses = [c for c in run.metrics if c.startswith("loss/")]

    size = (FIGSIZE[0], FIGSIZE[1] + COUNTS_PANEL_HEIGHT * len(counts))
    fig = _figure(size)
    rows = math.ceil(len(losses) / _LOSS_COLUMNS_PER_ROW)
    cols = max(1, min(len(losses), _LOSS_COLUMNS_PER_ROW))
    ratios = [2.0] + [1.3] * len(counts) + [1.0] * rows
    grid = fig.add_gridspec(
        len(ratios), cols, height_ratios=ratios, **_fixed_margins(size, len(ratios), counts)
    )
    ax = fig.add_subplot(grid[0, :])
    _returns_panel(ax, run, kind, window)
    ax.set_title(title)
    for i, name in enumerate(counts):
        _counts_panel(fig.add_subplot(grid[1 + i, :], sharex=ax), run, name, kind, window)

    first_loss_row = 1 + len(counts)
    for i, name in enumerate(losses):
        lax = fig.add_subplot(grid[first_loss_row + i // cols, i % cols])
        steps, y = _pairs(run.metrics, "env_steps", name)
        at = run.x_at(steps, kind) if steps.size else None
        if at is not None:
            lax.plot(at, y, "-", lw=1.0, marker=_marker(at.size), color="tab:red")
        else:
            _note(lax, "no values yet")
        lax.set_title(name, fontsize=10)
        lax.tick_params(labelsize=8)
        _x_ticks(lax, kind)
        lax.grid(alpha=0.3)
        if i // cols == rows - 1:
            lax.set_xlabel(X_AXES[kind], fontsize=9)
    return _save(fig, out)


def plot_compare(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    x: str = "steps",
    window: int | None = None,
) -> Path:
    """Plot the moving average of episode return of several runs in one figure.

    ``x`` is ``"steps"``, ``"episodes"`` or ``"seconds"`` (episodes' env steps mapped to wall
    time by interpolating metrics.csv; ``"env_steps"`` and ``"wall_seconds"`` are accepted as
    well). Labels default to the run directory names.
    """
    kind = _x_kind(x)
    _check_window(window)
    runs = [_Run.read(r) for r in run_dirs]
    if not runs:
        raise ValueError("plot_compare needs at least one run directory")
    if labels is None:
        labels = [r.path.name for r in runs]
    elif len(labels) != len(runs):
        raise ValueError(f"got {len(labels)} labels for {len(runs)} run directories")

    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    drawn = 0
    missing: list[str] = []
    windows = set()
    for run, label in zip(runs, labels, strict=True):
        curve = run.smooth(kind, window)
        if curve is None:
            missing.append(str(label))
            continue
        at, smooth, used = curve
        windows.add(used)
        at, smooth = _thin(at, smooth)
        ax.plot(at, smooth, "-", lw=2.0, marker=_marker(at.size), label=str(label))
        drawn += 1
    _missing_note(ax, missing, kind)
    if not drawn:
        _note(ax, "no finished episodes yet")
    ax.legend(loc="best", fontsize=9)
    ax.set_xlabel(X_AXES[kind])
    _x_ticks(ax, kind)
    ax.set_ylabel(f"episode return (mean of the last {_windows_text(windows)} episodes)")
    ax.set_title("episode return")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(out))


def _windows_text(windows: set[int]) -> str:
    if not windows:
        return "N"
    lo, hi = min(windows), max(windows)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _missing_note(ax: Any, missing: list[str], kind: str) -> None:
    if missing:
        why = "no episodes or timings" if kind == "seconds" else "no episodes"
        ax.plot([], [], " ", label=f"({why}: {', '.join(missing)})")


def group_curve(
    runs: Sequence[_Run], kind: str, window: int | None, points: int = _GROUP_GRID
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list] | None:
    """(x grid, mean, std, [(x, curve) per run]) of the runs' moving averages on a common grid
    from the latest first point to the earliest last point (where every run has a value), or
    None when no run has episodes."""
    curves = [c for c in (r.smooth(kind, window) for r in runs) if c is not None]
    if not curves:
        return None
    lo = max(float(c[0][0]) for c in curves)
    hi = min(float(c[0][-1]) for c in curves)
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    values = np.stack([np.interp(grid, c[0], c[1]) for c in curves])
    return grid, values.mean(axis=0), values.std(axis=0), [(c[0], c[1]) for c in curves]


def plot_groups(
    groups: Sequence[Sequence[str | Path]],
    out: str | Path,
    labels: Sequence[str] | None = None,
    x: str = "steps",
    window: int | None = None,
    title: str | None = None,
) -> Path:
    """Plot groups of runs (e.g. the seeds of one setting): per group, the mean over its runs
    of their moving-average return, a band of plus and minus one standard deviation and each
    run as a thin line. The mean is taken where every run of the group has data (up to its
    shortest run). ``x`` and ``window`` as in :func:`plot_learning_curve`."""
    kind = _x_kind(x)
    _check_window(window)
    if not groups:
        raise ValueError("plot_groups needs at least one group of run directories")
    members = [[_Run.read(r) for r in group] for group in groups]
    if any(not group for group in members):
        raise ValueError("every group needs at least one run directory")
    if labels is None:
        labels = [f"group {i + 1}" for i in range(len(members))]
    elif len(labels) != len(members):
        raise ValueError(f"got {len(labels)} labels for {len(members)} groups")

    fig = _figure()
    import matplotlib

    ax = fig.add_subplot(1, 1, 1)
    colours = matplotlib.colormaps["tab10"].colors
    missing: list[str] = []
    windows: set[int] = set()
    for i, (runs, label) in enumerate(zip(members, labels, strict=True)):
        result = group_curve(runs, kind, window)
        if result is None:
            missing.append(str(label))
            continue
        grid, mean, std, curves = result
        windows |= {c[2] for c in (r.smooth(kind, window) for r in runs) if c is not None}
        colour = colours[i % len(colours)]
        for at, smooth in curves:
            at, smooth = _thin(at, smooth)
            ax.plot(at, smooth, "-", lw=0.8, alpha=0.35, color=colour)
        ax.fill_between(grid, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
        n = len(curves)
        text = f"{label}: mean \u00b1 std of {n} run{'s' if n != 1 else ''}"
        ax.plot(grid, mean, "-", lw=2.4, marker=_marker(grid.size), color=colour, label=text)
    if len(missing) < len(members):
        ax.plot([], [], "-", lw=0.8, alpha=0.6, color="0.4", label="each run (thin lines)")
    _missing_note(ax, missing, kind)
    if len(missing) == len(members):
        _note(ax, "no finished episodes yet")
    ax.legend(loc="best", fontsize=9)
    ax.set_xlabel(X_AXES[kind])
    _x_ticks(ax, kind)
    ax.set_ylabel(f"episode return (mean of the last {_windows_text(windows)} episodes)")
    ax.set_title(title if title is not None else "episode return: mean \u00b1 std over runs")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(out))
