"""Schedules: numbers that change over a run, as pure functions of ``progress``.

``progress`` is the share of the run's budget used (0 at the start, 1 at the end, by steps or by
wall-clock, whichever the run is limited by). Algorithms receive it as an argument of
``collect`` and ``learn`` and compute their schedules from it here.
"""

from __future__ import annotations

import torch


def linear(start: float, end: float, progress: float, fraction: float = 1.0) -> float:
    """``start`` -> ``end`` linearly over the first ``fraction`` of the run, then ``end``."""
    if fraction <= 0:
        return end
    return start + (end - start) * min(1.0, max(0.0, progress) / fraction)


def annealed(value: float, anneal: bool, progress: float) -> float:
    """``value`` falling linearly to 0 over the run when ``anneal``, else ``value``."""
    return linear(value, 0.0, progress) if anneal else value


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> float:
    """Set every parameter group's learning rate; returns ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
