"""Learning bars for DQN (stated in each test; seeded, CPU)."""

import pytest

from renshu.runner import RunSpec, start_run


def test_dqn_solves_cartpole_two_of_three_seeds(tmp_path):
    """Bar: mean return >= 475 over 100 greedy evaluation episodes for at least 2 of 3 seeds
    (CartPole preset, evaluated every 5,000 env steps, stopping at the first pass)."""
    solved = []
    for seed in (0, 1, 2):
        spec = RunSpec(
            algo="dqn", env="cartpole", seed=seed, steps=100_000, target_return=475.0,
            eval_every=5_000, eval_episodes=100, animation=False, threads=1,
        )  # fmt: skip
        _, summary = start_run(spec, {}, run_dir=tmp_path / f"dqn-{seed}", progress=False)
        ev = summary["last_eval"]
        solved.append(summary["target_reached_steps"] is not None and ev["mean_return"] >= 475)
        if sum(solved) >= 2:
            break
    assert sum(solved) >= 2, solved


@pytest.mark.long
def test_dqn_2048_beats_random_play(tmp_path, random_2048_play):
    """Bar: after a 1.6M-step run with the 2048 preset (one CPU thread, 7-13 min), DQN's
    greedy mean score over 1000 games is >= 2x random play's mean score over the same 1000
    games (same evaluation seed, same number of games)."""
    spec = RunSpec(
        algo="dqn", env="game2048", seed=0, steps=1_600_000, eval_every=10**9,
        eval_episodes=1000, animation=False, threads=1,
    )  # fmt: skip
    _, summary = start_run(spec, {}, run_dir=tmp_path / "dqn2048", progress=False)
    trained = summary["last_eval"]
    assert trained["episodes"] == random_2048_play["episodes"] == 1000
    assert trained["mean_score"] >= 2 * random_2048_play["mean_score"], (trained, random_2048_play)
