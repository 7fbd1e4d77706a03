"""Learning bar for DQN with hf-text features (the real all-MiniLM-L6-v2) on the 4x3 grid world
(seeded, CPU, one thread, offline)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers / huggingface_hub load

import pytest  # noqa: E402

pytest.importorskip("transformers", reason="needs the llm extra: renshu[llm]")

from renshu.runner import RunSpec, start_run  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1])
def test_dqn_with_minilm_features_solves_gridworld(seed, tmp_path):
    """Bar: after 20,000 env steps with the gridworld preset, the greedy agent — its Q-network
    fed the MiniLM embedding of "The agent is in the ... row, ... column." next to the one-hot
    cell — reaches the goal in >= 90% of 500 evaluation episodes (with slips; the optimal
    policy reaches it in 98.6%). The LRU cache keeps the 11 cells' embeddings, so MiniLM runs on
    each distinct cell once, and the encoder never runs during gradient steps."""
    spec = RunSpec(
        algo="dqn", env="gridworld", seed=seed, steps=20_000, eval_every=10**9,
        eval_episodes=500, animation=False, threads=1, encoder="hf-text",
        encoder_options={"cache": "64", "device": "cpu"},
    )  # fmt: skip
    _, summary = start_run(spec, {}, run_dir=tmp_path / "run", progress=False)
    result = summary["last_eval"]
    assert result["episodes"] == 500
    assert result["success_rate"] >= 0.90, result
