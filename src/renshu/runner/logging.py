"""A run's metrics as CSV files (and TensorBoard events) that survive being killed.

:class:`RunLogger` writes into a run directory:

* ``metrics.csv``: one row per training iteration, columns ``env_steps, wall_seconds`` and then
  every metric key seen so far, in first-seen order. Keys may come and go between iterations
  (evaluation metrics appear only some iterations): a missing or None/NaN value is an empty cell,
  and when a new key appears the file is rewritten with the extended header (older rows get
  empty cells).
* ``episodes.csv``: one row per finished episode, columns ``env_steps, return, length`` and then
  the game's extras (``score``, ``max_tile``, ...), grown the same way.
* ``log.txt``: timestamped free-text lines (:meth:`RunLogger.log_text`).
* ``tensorboard/``: every metric as a scalar at ``global_step=env_steps``, and the batch means of
  the finished episodes as ``episode/return``, ``episode/length``, ``episode/score``, ...

Every write is flushed, and rewrites go to a temporary file moved into place, so a process
killed at any moment leaves valid files (a half-written last line is dropped when the file is
read again). Existing files are never thrown away: a new logger appends to them, and a logger
created with ``resume_step`` keeps exactly the rows with ``env_steps <= resume_step`` (the rows a
killed run wrote after its last checkpoint would otherwise appear twice) and purges TensorBoard
events after that step.

:func:`read_csv` reads either CSV back as ``{column: [float | None, ...]}`` (used by the plots).
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any, TextIO

import torch

from renshu.fileio import atomic_open, writing

__all__ = ["RunLogger", "read_csv"]

METRICS_FILE = "metrics.csv"
EPISODES_FILE = "episodes.csv"
TEXT_FILE = "log.txt"
TENSORBOARD_DIR = "tensorboard"

_METRICS_LEADING = ("env_steps", "wall_seconds")
_EPISODES_LEADING = ("env_steps", "return", "length")
# Tensors of these dtypes carry ~7 significant digits: 8 print them without float32 noise
# (12.3 rather than 12.300000190734863) and still hold every integer up to 2**24 exactly.
_SHORT_FLOATS = (torch.float32, torch.float16, torch.bfloat16)


# -- cells ---------------------------------------------------------------------------------------


def _cell(value: Any, short: bool = False) -> str:
    """The CSV text of one value: '' for None/NaN, ints as ints, floats round-tripping."""
    if value is None:
        return ""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"a metric must be a single number, got a tensor of shape {value.shape}"
            )
        short = value.dtype in _SHORT_FLOATS
        value = value.item()
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return ""
        return format(value, ".8g") if short else repr(value)
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as a number")


def _number(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _complete_lines(path: Path) -> Iterator[str]:
    """The lines of ``path`` that end with a newline (a half-written last line is dropped)."""
    with open(path, newline="", encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                yield line


def _header(path: Path) -> list[str]:
    """The column names of a CSV file ([] when it has no complete first line)."""
    lines = _complete_lines(path)
    try:
        return next(csv.reader(lines), [])
    finally:
        lines.close()


def _data_rows(path: Path) -> Iterator[list[str]]:
    """The data rows of a CSV file (after the header), complete lines only."""
    reader = csv.reader(_complete_lines(path))
    next(reader, None)
    return (row for row in reader if row)


def read_csv(path: str | Path) -> dict[str, list[float | None]]:
    """Read a renshu CSV file as ``{column: values}``: floats, empty cells as None.

    Every column has one value per row (short rows are padded with None). A half-written last
    line, as a killed process may leave, is ignored. An empty file gives ``{}``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    text = path.read_text(encoding="utf-8")
    text = text[: text.rfind("\n") + 1]  # drop a half-written last line
    head, _, body = text.partition("\n")
    header = next(csv.reader([head]), [])
    width = len(header)
    lines = body.splitlines()
    # Data cells are plain numbers, so a split is enough (and several times faster than csv).
    rows = csv.reader(lines) if '"' in body else (line.split(",") for line in lines if line)
    table = [row if len(row) == width else (row + [""] * width)[:width] for row in rows if row]
    return {name: _numbers([row[i] for row in table]) for i, name in enumerate(header)}


def _numbers(cells: Sequence[str]) -> list[float | None]:
    """A column's cells as floats (None for empty, unreadable or NaN cells)."""
    try:  # fast path: every cell is empty or a number
        values = [float(c) if c else None for c in cells]
    except ValueError:
        return [_number(c) for c in cells]
    return [None if v != v else v for v in values]  # NaN -> None


# -- one growing CSV file ------------------------------------------------------------------------


class _CsvTable:
    """An append-only CSV file whose header grows by rewriting the file atomically."""

    def __init__(self, path: Path, leading: tuple[str, ...], resume_step: int | None) -> None:
        self.path = path
        self.columns: list[str] = list(leading)
        self._file: TextIO | None = None
        self._writer: Any = None
        if path.exists() and path.stat().st_size > 0:
            header = _header(path)
            if header and header[0] != "env_steps":
                raise ValueError(
                    f"{path} exists but is not a renshu log (its first column is {header[0]!r}, "
                    f"not 'env_steps'); move it away or choose another run directory"
                )
            if header:  # keep the file's columns; add any leading one it lacks
                self.columns = header + [c for c in leading if c not in header]
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                partial = f.read(1) != b"\n"
            if resume_step is not None or partial or self.columns != header:
                self._rewrite(resume_step)
        self._open()

    def _open(self) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with writing(self.path):  # a failed write: one line naming the file (fileio)
            self._file = open(self.path, "a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file, lineterminator="\n")
            if new:
                self._writer.writerow(self.columns)
                self._file.flush()

    def _rewrite(self, max_step: int | None = None) -> None:
        """Rewrite the file under ``self.columns``, keeping rows with env_steps <= max_step."""
        if self._file is not None:
            self._file.close()
            self._file = None
        width = len(self.columns)
        old_rows = list(_data_rows(self.path)) if self.path.exists() else []
        with atomic_open(self.path, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(self.columns)
            for row in old_rows:
                if max_step is not None:
                    step = _number(row[0])
                    if step is None or step > max_step:
                        continue
                writer.writerow((row + [""] * (width - len(row)))[:width])

    def append(self, keys: list[str], rows: Iterable[Sequence[str]]) -> None:
        """Append rows of cell texts, each ordered like ``keys`` (which may name new columns)."""
        new = [k for k in keys if k not in self.columns]
        if new:
            for key in new:
                if "\n" in key or "\r" in key:
                    raise ValueError(f"a column name cannot contain a line break: {key!r}")
            self.columns.extend(new)
            self._rewrite()
            self._open()
        assert self._file is not None
        if keys != self.columns:
            where = {k: i for i, k in enumerate(keys)}
            order = [where.get(c, -1) for c in self.columns]
            rows = ([row[i] if i >= 0 else "" for i in order] for row in rows)
        with writing(self.path):
            self._writer.writerows(rows)
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# -- the logger ----------------------------------------------------------------------------------


def _summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError(
            "TensorBoard logging needs the tensorboard package: pip install tensorboard "
            "(or pass tensorboard=False to RunLogger)"
        ) from e
    return SummaryWriter


class RunLogger:
    """Writes a run's metrics, finished episodes and notes into ``run_dir`` (module docstring).

    Args:
        run_dir: the run directory (created if missing).
        resume_step: when resuming from a checkpoint taken at this many env steps, drop the rows
            (and TensorBoard events) written after it. None: keep everything and append.
        tensorboard: also write TensorBoard events to ``run_dir/tensorboard``.
    """

    def __init__(
        self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = True
    ) -> None:
        if resume_step is not None and resume_step < 0:
            raise ValueError(f"resume_step must be >= 0 or None, got {resume_step}")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._writer = None
        if tensorboard:  # fail on a missing package before touching any file
            _summary_writer_class()
        opened: list[_CsvTable] = []
        try:
            self._metrics = _CsvTable(self.run_dir / METRICS_FILE, _METRICS_LEADING, resume_step)
            opened.append(self._metrics)
            self._episodes = _CsvTable(self.run_dir / EPISODES_FILE, _EPISODES_LEADING, resume_step)
            opened.append(self._episodes)
            if tensorboard:
                purge = None if resume_step is None else int(resume_step) + 1
                log_dir = str(self.run_dir / TENSORBOARD_DIR)
                with writing(log_dir):
                    self._writer = _summary_writer_class()(log_dir=log_dir, purge_step=purge)
        except BaseException:
            for table in opened:
                table.close()
            raise
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this RunLogger is closed")

    def log_iteration(
        self, env_steps: int, wall_seconds: float, metrics: Mapping[str, Any]
    ) -> None:
        """Append one row to metrics.csv (and each metric to TensorBoard at ``env_steps``)."""
        self._check_open()
        for key in _METRICS_LEADING:
            if key in metrics:
                raise ValueError(f"{key!r} is a column of its own; remove it from the metrics")
        cells = {key: _cell(value) for key, value in metrics.items()}
        keys = [*_METRICS_LEADING, *cells]
        row = [_cell(int(env_steps)), _cell(float(wall_seconds)), *cells.values()]
        self._metrics.append(keys, [row])
        if self._writer is not None:
            with writing(self.run_dir / TENSORBOARD_DIR):
                for key, text in cells.items():
                    if text:
                        self._writer.add_scalar(key, float(text), global_step=int(env_steps))
                self._writer.flush()

    def log_episodes(self, env_steps: int, episodes: Mapping[str, Any]) -> None:
        """Append one row per finished episode to episodes.csv.

        ``episodes`` maps ``"return"``, ``"length"`` and extras (``"score"``, ...) to 1-D tensors
        of equal length, one entry per finished episode (empty: nothing is written).
        """
        self._check_open()
        if "env_steps" in episodes:
            raise ValueError("'env_steps' is a column of its own; remove it from the episodes")
        columns: dict[str, list[str]] = {}
        means: dict[str, float] = {}
        count = None
        for key, values in episodes.items():
            tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(values)
            if tensor.dim() != 1:
                raise ValueError(
                    f"episodes[{key!r}] must be a 1-D tensor (one entry per finished episode), "
                    f"got shape {tuple(tensor.shape)}"
                )
            if count is None:
                count = tensor.shape[0]
            elif tensor.shape[0] != count:
                raise ValueError(
                    f"episode tensors must have equal lengths, got {count} and "
                    f"{tensor.shape[0]} for {key!r}"
                )
            if tensor.dtype == torch.bool:
                tensor = tensor.long()
            short = tensor.dtype in _SHORT_FLOATS
            items = tensor.tolist()
            columns[key] = [_cell(v, short) for v in items]
            if items:
                finite = [v for v in items if not (isinstance(v, float) and math.isnan(v))]
                if finite:
                    means[key] = sum(finite) / len(finite)
        if not count:
            return
        keys = ["env_steps", *columns]
        self._episodes.append(keys, zip(repeat(_cell(int(env_steps))), *columns.values()))
        if self._writer is not None:
            with writing(self.run_dir / TENSORBOARD_DIR):
                for key, mean in means.items():
                    self._writer.add_scalar(f"episode/{key}", mean, global_step=int(env_steps))

    def log_text(self, message: str) -> None:
        """Append ``message`` to log.txt, each line prefixed with the local date and time."""
        self._check_open()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        lines = str(message).splitlines() or [""]
        path = self.run_dir / TEXT_FILE
        with writing(path), open(path, "a", encoding="utf-8") as f:
            f.writelines(f"{stamp} {line}\n" for line in lines)

    def close(self) -> None:
        """Close the files and the TensorBoard writer (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        self._metrics.close()
        self._episodes.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
