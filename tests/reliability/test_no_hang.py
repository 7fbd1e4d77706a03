"""No hang, no idling: every evaluated or recorded episode has a step limit; a greedy policy
that repeats a 2048 move changing nothing is truncated; Atari evaluation follows the published
protocol (10 episodes, 108k frames, epsilon 0.05 for value-based agents, sampled actions for
policy-gradient ones), so an untrained agent cannot idle."""

from __future__ import annotations

import json

import pytest
import torch

from renshu.algos import get_algorithm
from renshu.cli import main
from renshu.envs.specs import resolve
from renshu.runner import LATEST, RunSpec
from renshu.runner.checkpoint import load_trained
from renshu.runner.evaluate import (
    EVAL_STEP_LIMIT,
    epsilon_greedy,
    eval_policy,
    evaluate,
    make_eval_env,
)

LEFT = 0


def _always(action: int):
    return lambda obs, mask: torch.full((obs.shape[0],), action, dtype=torch.int64)


def test_greedy_noop_repeats_in_2048_are_truncated_not_endless():
    spec = RunSpec(env="game2048", env_options={"invalid_move": "noop"}).resolved()
    env = make_eval_env(spec, 50, "cpu")
    stuck = resolve("game2048").eval.stuck_steps
    assert stuck == 100 and env.max_episode_steps == 200_000
    # "left" for ever: once the tiles are packed to the left, nothing moves and no tile comes
    stats = evaluate(_always(LEFT), env, 50, seed=3)
    assert stats["length"].numel() == 50
    assert int(stats["length"].max()) < 300  # a few real moves, then 100 unchanged boards
    assert int(stats["length"].min()) >= stuck
    # the same policy without the truncation plays to the step limit, however long it is
    env = make_eval_env(
        RunSpec(env="game2048", env_options={"invalid_move": "noop", "max_episode_steps": 1000})
        .resolved(), 5, "cpu",
    )  # fmt: skip
    env.stuck_steps = None  # (the run's own limit applies; only the truncation is off here)
    assert evaluate(_always(LEFT), env, 5, seed=3)["length"].tolist() == [1000] * 5


def test_a_random_policy_in_noop_mode_is_not_truncated():
    """Stochastic play in noop mode repeats no-change moves by chance, never 100 in a row."""
    from renshu.runner.record import random_policy

    spec = RunSpec(env="game2048", env_options={"invalid_move": "noop"}).resolved()
    act, _ = random_policy(0)
    truncating = evaluate(act, make_eval_env(spec, 64, "cpu"), 64, seed=1)
    plain = make_eval_env(spec, 64, "cpu")
    plain.stuck_steps = None
    act, _ = random_policy(0)
    untouched = evaluate(act, plain, 64, seed=1)
    # the same games to the same ends: each one over when its board filled up
    assert torch.equal(truncating["length"], untouched["length"])
    assert torch.equal(truncating["score"], untouched["score"])


def test_every_evaluated_env_has_a_step_limit():
    for name in ("game2048", "cartpole", "gridworld", "CartPole-v1", "CliffWalking-v1"):
        env = make_eval_env(RunSpec(env=name).resolved(), 4, "cpu")
        assert env.max_episode_steps is not None, name
        env.close()
    cliff = make_eval_env(RunSpec(env="CliffWalking-v1").resolved(), 2, "cpu")
    assert cliff.max_episode_steps == EVAL_STEP_LIMIT  # registered without a time limit
    cliff.close()


def test_atari_eval_protocol_is_in_the_env_spec():
    ev = resolve("ALE/Breakout-v5").eval
    assert (ev.episodes, ev.max_episode_steps, ev.epsilon, ev.sample_policy) == (
        10, 27_000, 0.05, True,
    )  # fmt: skip
    assert resolve("BreakoutNoFrameskip-v4").eval == ev
    assert RunSpec(env="ALE/Breakout-v5").resolved().episodes_per_eval() == 10
    assert RunSpec(env="ALE/Breakout-v5", eval_episodes=3).resolved().episodes_per_eval() == 3
    # value-based agents declare it (no isinstance checks)
    assert [a for a in ("ppo", "a2c", "dqn", "grpo", "ntuple")
            if get_algorithm(a).value_based] == ["dqn", "ntuple"]  # fmt: skip


def test_epsilon_greedy_takes_random_legal_actions_at_rate_epsilon():
    act = epsilon_greedy(_always(0), 0.05, seed=0, device="cpu")
    mask = torch.ones(200_000, 4, dtype=torch.bool)
    mask[:, 3] = False  # never an illegal action
    actions = act(torch.zeros(200_000, 1), mask)
    assert int((actions == 3).sum()) == 0
    # a random action is one of 3 legal ones: it differs from the greedy 0 in 2/3 of cases
    changed = float((actions != 0).double().mean())
    assert changed == pytest.approx(0.05 * 2 / 3, abs=0.002)
    for a in (1, 2):
        assert float((actions == a).double().mean()) == pytest.approx(0.05 / 3, abs=0.0015)


def _train(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured


def test_ppo_2048_noop_mode_trains_and_evaluates(tmp_path, capsys):
    run_dir = tmp_path / "noop"
    _train(capsys, "train", "ppo", "game2048", "--env-option", "invalid_move=noop", "--steps",
           "4096", "--num-envs", "32", "--num-steps", "32", "--eval-episodes", "32",
           "--run-dir", run_dir, "--no-progress", "--animation", "false")  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["env_steps"] == 4096
    assert summary["last_eval"]["episodes"] == 32
    assert summary["last_eval"]["mean_length"] < 200_000
    out = _train(capsys, "eval", run_dir, "--episodes", "16", "--json").out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["episodes"] == 16
    _train(capsys, "record", run_dir, "--out", tmp_path / "noop.gif", "--max-steps", "100000")
    assert (tmp_path / "noop.gif").stat().st_size > 0


def test_eval_policy_follows_the_env_protocol(tmp_path, capsys):
    pytest.importorskip("ale_py")
    run_dir = tmp_path / "dqn"
    _train(capsys, "train", "dqn", "ALE/Breakout-v5", "--steps", "256", "--buffer-size",
           "512", "--learning-starts", "128", "--eval-every", "256", "--threads", "1",
           "--run-dir", run_dir, "--no-progress", "--animation", "false")  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    ev = summary["last_eval"]
    assert ev["episodes"] == 10  # the Atari default
    # an untrained agent with 5% random actions presses FIRE: no episode ran to the cap
    assert ev["mean_length"] < 5_000
    assert (run_dir / LATEST).is_file()
    algo, spec = load_trained(run_dir)
    assert eval_policy(algo, spec.env_spec, 0)[1] == "epsilon-greedy 0.05"
    out = _train(capsys, "eval", run_dir, "--episodes", "2", "--checkpoint", "latest").out
    assert "dqn (epsilon-greedy 0.05)" in out
    ppo = get_algorithm("ppo")
    assert not ppo.value_based
