"""Helpers shared by the benchmark scripts: what machine and versions a table was made on."""

from __future__ import annotations

import importlib.metadata
import platform


def version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def set_threads(threads: int) -> list[int]:
    """Pin the process to ``threads`` cores (when fewer than it may use) and run torch on
    ``threads`` threads. Returns the cores used. Call before jax is imported."""
    import os

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cores and threads < len(cores):
        cores = cores[:threads]
        os.sched_setaffinity(0, cores)
    import torch

    torch.set_num_threads(threads)
    return cores


def fmt_rate(x: float | None) -> str:
    """A rate such as steps/s: ``4.34 M``, ``19.1 k``, ``925``."""
    if x is None:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:,.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:,.1f} k"
    return f"{x:,.0f}"


def fmt_ratio(x: float | None) -> str:
    """A ratio: ``338x``, ``11.8x``, ``2.47x``."""
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}x"
    if x >= 10:
        return f"{x:.1f}x"
    return f"{x:.2f}x"
