"""Learning bars for PPO and A2C (stated in each test; seeded, CPU, one thread)."""

import pytest
import torch

from renshu.runner import RunSpec, start_run


def _solve(tmp_path, algo: str, seed: int, steps: int) -> dict:
    spec = RunSpec(
        algo=algo, env="cartpole", seed=seed, steps=steps, target_return=475.0,
        eval_every=10_000, eval_episodes=100, animation=False, threads=1,
    )  # fmt: skip
    _, summary = start_run(spec, {}, run_dir=tmp_path / f"{algo}-{seed}", progress=False)
    return summary


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ppo_solves_cartpole(tmp_path, seed):
    """Bar: mean return >= 475 over 100 greedy evaluation episodes, for each of 3 seeds."""
    summary = _solve(tmp_path, "ppo", seed, steps=150_000)
    assert summary["target_reached_steps"] is not None, summary["last_eval"]
    assert summary["last_eval"]["episodes"] == 100
    assert summary["last_eval"]["mean_return"] >= 475.0


def test_a2c_solves_cartpole_two_of_three_seeds(tmp_path):
    """Bar: mean return >= 475 over 100 greedy evaluation episodes for at least 2 of 3 seeds."""
    solved = []
    for seed in (0, 1, 2):
        summary = _solve(tmp_path, "a2c", seed, steps=300_000)
        ev = summary["last_eval"]
        solved.append(summary["target_reached_steps"] is not None and ev["mean_return"] >= 475)
        if sum(solved) >= 2:
            break
    assert sum(solved) >= 2, solved


def test_ppo_2048_beats_random_play(tmp_path, random_2048_play):
    """Bar: after a short run, PPO's mean score over 1000 games is >= 2x random play's
    mean score over the same 1000 games (same seed, same number of games)."""
    torch.set_num_threads(2)
    spec = RunSpec(
        algo="ppo", env="game2048", seed=0, steps=600_000, eval_every=10**9,
        eval_episodes=1000, animation=False,
    )  # fmt: skip
    run_dir, summary = start_run(spec, {}, run_dir=tmp_path / "ppo2048", progress=False)
    trained = summary["last_eval"]
    assert trained["episodes"] == random_2048_play["episodes"] == 1000
    assert trained["mean_score"] >= 2 * random_2048_play["mean_score"], (trained, random_2048_play)
