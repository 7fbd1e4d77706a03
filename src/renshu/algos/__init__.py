"""Algorithms by name. Each is one file implementing :class:`~renshu.algos.base.Algorithm`;
what suits a given environment (presets) lives in its :mod:`~renshu.envs.specs`."""

from __future__ import annotations

import difflib

from renshu.config import import_object

ALGORITHMS: dict[str, str] = {
    "ppo": "renshu.algos.ppo:PPO",
    "a2c": "renshu.algos.a2c:A2C",
    "grpo": "renshu.algos.grpo:GRPO",
    "dqn": "renshu.algos.dqn:DQN",
    "ntuple": "renshu.algos.ntuple:NTuple",
}


def algorithm_names() -> list[str]:
    return sorted(ALGORITHMS)


def get_algorithm(name: str):
    """The algorithm class for ``name`` or a ValueError listing the valid names."""
    if name not in ALGORITHMS:
        close = difflib.get_close_matches(str(name), ALGORITHMS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown algorithm {name!r}.{hint} Valid algorithms: {', '.join(algorithm_names())}"
        )
    return import_object(ALGORITHMS[name])
