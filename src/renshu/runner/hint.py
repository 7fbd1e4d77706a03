"""A trained run's advice while a person plays (``renshu play 2048 --hint RUN``).

:func:`hint_from_run` turns a loaded run into the ``hint(state) -> Hint`` that the terminal
game (:func:`renshu.play.play_2048`) calls before each move: the move the agent would play and
what it thinks of each of the four, computed on the run's own observation of the board (a PPO
run trained on one-hot planes sees one-hot planes). The values are the algorithm's
``action_values`` (an n-tuple run's ``r + V(afterstate)``, PPO's action probabilities, DQN's
Q-values), or with a search its searched values (:mod:`renshu.runner.search`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch


class Hint(NamedTuple):
    action: int
    """the move the agent suggests (always a legal one)"""
    label: str
    """what ``values`` are, e.g. ``ntuple: r + V(afterstate)``"""
    values: list[float | None]
    """each move's value, None for a move that changes nothing"""


HintFn = Callable[[object], Hint]


def hint_from_run(algo, spec, search=None) -> HintFn:
    """``hint(state)`` for a one-board 2048 state of the terminal game, from ``algo`` (the run
    ``spec``'s agent, loaded); ``search`` (:class:`~renshu.runner.search.Search`) uses its
    play-time search instead of the greedy move. A ValueError when the run does not play the
    game the terminal does."""
    from renshu.envs.base import FunctionalEnv
    from renshu.envs.game2048 import Game2048
    from renshu.envs.registry import make_env

    env = make_env(spec.env_spec, num_envs=1, seed=0, **spec.env_options)
    game = env.game if isinstance(env, FunctionalEnv) else None
    env.close()
    if not isinstance(game, Game2048):
        raise ValueError(f"--hint takes a run trained on game2048; this run plays {spec.env}")
    if search is not None:
        from renshu.runner.search import search_policy

        act, values = search_policy(algo, search)
    else:
        device = algo.device

        def act(obs, mask):
            return algo.act(obs.to(device), mask.to(device), deterministic=True).cpu()

        def values(obs, mask):
            label, vals = algo.action_values(obs.to(device), mask.to(device))
            return label, vals.cpu()

    @torch.no_grad()
    def hint(state) -> Hint:
        obs = game.observe(state)
        legal = state.legal  # moves that change the board, whatever the run's invalid_move
        action = int(act(obs, legal)[0])
        label, vals = values(obs, legal)
        shown = [float(v) if bool(ok) else None for v, ok in zip(vals[0], legal[0])]
        return Hint(action, f"{spec.algo}: {label}", shown)

    return hint
