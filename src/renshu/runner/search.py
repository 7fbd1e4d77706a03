"""Play-time search for evaluation, recording and hints (``--search NAME --depth D``).

An algorithm declares the searches it offers in its ``searches`` class attribute and computes
them with ``search_values(obs, mask, depth, cutoff)``; this module checks a requested search
against that declaration (naming the algorithms that do offer it when this one does not) and
turns it into the ``act`` and ``values`` functions the evaluation loop, the recorder and the
terminal hint call. Nothing here knows which algorithm it drives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

DEPTHS = (1, 2, 3)
"""search depths the command line accepts (1 is the greedy one-ply choice)"""


@dataclass(frozen=True)
class Search:
    """A play-time search: its name (one of an algorithm's ``searches``), depth and the
    probability below which a chance node is valued without expanding it (0: exact)."""

    name: str
    depth: int = 2
    cutoff: float = 0.0

    @property
    def label(self) -> str:
        cut = f", cut-off {self.cutoff:g}" if self.cutoff > 0 else ""
        return f"{self.name} depth {self.depth}{cut}"


def searching_algorithms(name: str | None = None) -> dict[str, tuple[str, ...]]:
    """``{algorithm: its searches}`` of the algorithms that offer ``name`` (any search when
    None), from their declared ``searches``."""
    from renshu.algos import ALGORITHMS, get_algorithm

    found = {}
    for algo in sorted(ALGORITHMS):
        searches = tuple(get_algorithm(algo).searches)
        if searches and (name is None or name in searches):
            found[algo] = searches
    return found


def parse_search(name: str | None, depth: int | None, cutoff: float | None) -> Search | None:
    """The search the flags ``--search NAME --depth D --cutoff P`` ask for (None without
    ``--search``); a ValueError naming the flag for a value out of range."""
    if name is None:
        if depth is not None or cutoff is not None:
            given = "--depth" if depth is not None else "--cutoff"
            raise ValueError(f"{given} goes with --search (e.g. --search expectimax --depth 2)")
        return None
    known = sorted({s for searches in searching_algorithms().values() for s in searches})
    if name not in known:
        raise ValueError(f"unknown --search {name!r}; searches: {', '.join(known)}")
    depth = 2 if depth is None else depth
    if depth not in DEPTHS:
        raise ValueError(
            f"--depth must be one of {', '.join(map(str, DEPTHS))}, got {depth} (1 is greedy; "
            "each level multiplies the work by about 100)"
        )
    cutoff = 0.0 if cutoff is None else cutoff
    if not (math.isfinite(cutoff) and 0 <= cutoff < 1):
        raise ValueError(f"--cutoff is a probability in [0, 1), got {cutoff}")
    return Search(name, depth, cutoff)


def check_search(algo_name: str, search: Search) -> None:
    """A ValueError unless algorithm ``algo_name`` offers ``search``, naming those that do."""
    from renshu.algos import get_algorithm

    if search.name in get_algorithm(algo_name).searches:
        return
    offered = ", ".join(searching_algorithms(search.name)) or "none"
    raise ValueError(
        f"--search {search.name}: a {algo_name} run does not search at play time; "
        f"algorithms that do: {offered}"
    )


ActFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ValuesFn = Callable[[torch.Tensor, torch.Tensor], tuple[str, torch.Tensor]]


def search_policy(algo, search: Search) -> tuple[ActFn, ValuesFn]:
    """``act(obs, mask)`` playing ``algo``'s best move under ``search`` and ``values(obs, mask)
    -> (label, [B, A])`` giving every move's searched value (``-inf`` where illegal); both take
    and return CPU tensors, as the evaluation loop and the recorder expect."""
    check_search(algo.name, search)
    device = algo.device

    def values(obs: torch.Tensor, mask: torch.Tensor) -> tuple[str, torch.Tensor]:
        q = algo.search_values(obs.to(device), mask.to(device), search.depth, search.cutoff)
        return f"{search.label} values", q.cpu()

    def act(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return values(obs, mask)[1].argmax(1).to(obs.device)

    return act, values
