"""Fixtures of the learning tests."""

import pytest

from renshu.envs.registry import make_env
from renshu.envs.specs import resolve
from renshu.runner.evaluate import evaluate, summarize
from renshu.runner.record import random_policy

# The runner's first evaluation of a seed-0 run uses seed 0 + 1_000_003: the same boards.
FIRST_EVAL_SEED = 1_000_003


@pytest.fixture(scope="session")
def random_2048_play() -> dict:
    """Uniformly random legal moves on 2048: the summary of 1000 games started from the boards
    of a seed-0 run's first evaluation."""
    act, _ = random_policy(0)
    env = make_env("game2048", num_envs=1000, seed=0)
    return summarize(evaluate(act, env, 1000, seed=FIRST_EVAL_SEED), resolve("game2048"))
