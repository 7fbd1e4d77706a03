"""Learning bar for PPO on the 4x3 grid world (seeded, CPU, one thread)."""

from renshu.runner import RunSpec, start_run


def test_ppo_solves_gridworld(tmp_path):
    """Bar: after 30,000 env steps with the default config, the greedy agent reaches the goal
    in >= 95% of 500 evaluation episodes (with slips) and its mean return is >= 0.65 (the
    optimal policy, by value iteration: expected return 0.745, success 98.6%)."""
    spec = RunSpec(
        algo="ppo", env="gridworld", seed=0, steps=30_000, eval_every=10**9,
        eval_episodes=500, animation=False, threads=1,
    )  # fmt: skip
    _, summary = start_run(spec, {}, run_dir=tmp_path / "run", progress=False)
    result = summary["last_eval"]
    assert result["episodes"] == 500
    assert result["success_rate"] >= 0.95, result
    assert result["mean_return"] >= 0.65, result
