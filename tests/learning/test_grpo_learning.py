"""Learning bar for GRPO (seeded, CPU, one thread): the runner's CartPole preset, same-start
groups, no critic."""

from renshu.runner import RunSpec, start_run


def test_grpo_solves_cartpole_two_of_three_seeds(tmp_path):
    """Bar: mean return >= 475 over 100 greedy evaluation episodes for at least 2 of 3 seeds
    (evaluated every 10,000 env steps, budget 200,000 steps per seed)."""
    solved = []
    for seed in (0, 1, 2):
        spec = RunSpec(
            algo="grpo", env="cartpole", seed=seed, steps=200_000, target_return=475.0,
            eval_every=10_000, eval_episodes=100, animation=False, threads=1,
        )  # fmt: skip
        _, summary = start_run(spec, {}, run_dir=tmp_path / f"grpo-{seed}", progress=False)
        ev = summary["last_eval"]
        assert ev["episodes"] == 100
        solved.append(summary["target_reached_steps"] is not None and ev["mean_return"] >= 475)
        if sum(solved) >= 2:
            break
    assert sum(solved) >= 2, solved
