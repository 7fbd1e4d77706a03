"""The training loop: exact resume after an interrupt, budgets, run directories."""

import csv
import json
import os
import signal

import pytest
import torch

from renshu.envs.base import FunctionalEnv
from renshu.runner import LATEST, NonFiniteLossError, RunSpec, Trainer, resume_run, start_run
from renshu.runner.checkpoint import load_checkpoint

WALL_COLUMNS = ("wall_seconds", "charts/steps_per_second")

# name: (algo, env, config, steps, eval_every, stop_after_updates)
CASES = {
    "ppo-cartpole": (
        "ppo", "cartpole", dict(num_envs=4, num_steps=32, hidden=[16], update_epochs=2),
        2048, 512, 6,
    ),
    "a2c-cartpole": ("a2c", "cartpole", dict(num_envs=4, num_steps=8, hidden=[16]), 1024, 256, 12),
    "ppo-game2048": (
        "ppo", "game2048",
        dict(num_envs=8, num_steps=32, hidden=[16], num_minibatches=2, update_epochs=2),
        2048, 1024, 4,
    ),
    "dqn-cartpole": (
        "dqn", "cartpole",
        dict(num_envs=4, train_freq=32, gradient_steps=4, batch_size=16, hidden=[16],
             learning_starts=256, buffer_size=2_000, target_update_interval=128),
        1024, 256, 12,
    ),
    # A ring that wraps, n-step windows, prioritized replay (sum tree state) and dueling heads.
    "dqn-game2048": (
        "dqn", "game2048",
        dict(num_envs=8, train_freq=64, gradient_steps=2, batch_size=16, hidden=[16],
             learning_starts=256, buffer_size=800, n_step=3, prioritized=True, dueling=True,
             target_update_interval=256),
        2048, 1024, 18,
    ),
}  # fmt: skip


def _per_update(cfg: dict) -> int:
    return cfg["train_freq"] if "train_freq" in cfg else cfg["num_envs"] * cfg["num_steps"]


@pytest.fixture(autouse=True, scope="module")
def _no_final_artefacts():
    """The learning curve and GIF (tested end to end in test_cli_train) cost ~1 s a run."""
    finish = Trainer.finish
    Trainer.finish = lambda self: (self.run_dir / "finished").write_text("")
    yield
    Trainer.finish = finish


def _spec(case: str, **kw) -> RunSpec:
    algo, env, _, steps, eval_every, _ = CASES[case]
    values = dict(
        algo=algo, env=env, steps=steps, eval_every=eval_every, eval_episodes=4,
        checkpoint_seconds=1e9, animation=False,
    )  # fmt: skip
    values.update(kw)
    return RunSpec(**values)


def _config(case: str) -> dict:
    return dict(CASES[case][2])


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _without_wall(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in WALL_COLUMNS} for row in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run per case, made on first use."""
    runs = {}

    def get(case: str):
        if case not in runs:
            run_dir = tmp_path_factory.mktemp(case) / "run"
            torch.set_num_threads(1)
            _, summary = start_run(_spec(case), _config(case), run_dir=run_dir, progress=False)
            assert summary["status"] == "finished"
            runs[case] = run_dir
        return runs[case]

    return get


def assert_same_run(a, b, checkpoint_step: int, steps: int, steps_per_update: int) -> None:
    """metrics.csv equal but for wall-clock columns; episodes.csv identical."""
    rows_a, rows_b = _rows(a / "metrics.csv"), _rows(b / "metrics.csv")
    assert [int(r["env_steps"]) for r in rows_a] == list(
        range(steps_per_update, steps + 1, steps_per_update)
    )
    assert [r["env_steps"] for r in rows_b] == [r["env_steps"] for r in rows_a]
    # evaluations happened before and after the checkpoint, so their counter was restored too
    evals = [int(r["env_steps"]) for r in rows_a if r.get("eval/mean_return")]
    assert min(evals) <= checkpoint_step < max(evals)
    assert _without_wall(rows_b) == _without_wall(rows_a)
    episodes = _rows(a / "episodes.csv")
    assert any(int(r["env_steps"]) > checkpoint_step for r in episodes)  # not vacuous
    assert (b / "episodes.csv").read_bytes() == (a / "episodes.csv").read_bytes()


@pytest.mark.parametrize("case", list(CASES))
def test_resume_after_interrupt_is_exact(case, reference, tmp_path):
    algo, env, cfg, steps, _, stop = CASES[case]
    per_update = _per_update(cfg)
    run_b = tmp_path / "b"
    _, first = start_run(
        _spec(case), _config(case), run_dir=run_b, progress=False, stop_after_updates=stop
    )
    assert first["status"] == "interrupted" and first["env_steps"] == stop * per_update
    assert not (run_b / "finished").exists()  # final artefacts only when finished
    ckpt = load_checkpoint(run_b / LATEST)
    assert ckpt["algo"] == algo and ckpt["env"] == env
    assert ckpt["algo_state"]["env_steps"] == stop * per_update
    assert ckpt["runner"]["updates"] == stop

    summary = resume_run(run_b, progress=False)
    assert summary["status"] == "finished" and summary["env_steps"] == steps
    assert (run_b / "finished").exists()
    assert summary["updates"] == steps // per_update
    ref = reference(case)
    assert summary["last_eval"] == json.loads((ref / "summary.json").read_text())["last_eval"]
    assert_same_run(ref, run_b, stop * per_update, steps, per_update)


def _interrupt_at_env_step(monkeypatch, call: int, times: int) -> None:
    """Send ourselves ``times`` SIGINTs (Ctrl-C) on the ``call``-th step of the training env
    (the first env stepped; evaluation envs come later), that is in the middle of a rollout."""
    original = FunctionalEnv.step
    count = [0]
    train_env = []

    def step(self, actions):
        train_env[:] = train_env or [self]
        count[0] += self is train_env[0]
        if count[0] == call and self is train_env[0]:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return original(self, actions)

    monkeypatch.setattr(FunctionalEnv, "step", step)


def test_ctrl_c_mid_update_finishes_the_update_then_resumes_exactly(
    reference, tmp_path, monkeypatch, capsys
):
    # update k makes training-env steps (k-1)*32+1 .. k*32 (num_steps=32)
    _interrupt_at_env_step(monkeypatch, call=3 * 32 + 10, times=1)  # inside update 4
    handler = signal.getsignal(signal.SIGINT)  # what the runner must put back
    run_b = tmp_path / "b"
    _, first = start_run(_spec("ppo-cartpole"), _config("ppo-cartpole"), run_dir=run_b,
                         progress=False)  # fmt: skip
    monkeypatch.undo()
    assert first["status"] == "interrupted"
    assert first["env_steps"] == 4 * 128 and first["updates"] == 4  # update 4 completed
    assert "Ctrl-C again" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is handler  # handler restored
    assert load_checkpoint(run_b / LATEST)["algo_state"]["env_steps"] == 4 * 128
    resume_run(run_b, progress=False)
    assert_same_run(reference("ppo-cartpole"), run_b, 4 * 128, 2048, 128)


def test_second_ctrl_c_stops_at_once_and_keeps_the_previous_checkpoint(
    reference, tmp_path, monkeypatch
):
    _interrupt_at_env_step(monkeypatch, call=5 * 32 + 10, times=2)  # inside update 6
    handler = signal.getsignal(signal.SIGINT)  # what the runner must put back
    run_b = tmp_path / "b"
    spec = _spec("ppo-cartpole", checkpoint_seconds=0.0)  # a checkpoint after every update
    _, first = start_run(spec, _config("ppo-cartpole"), run_dir=run_b, progress=False)
    monkeypatch.undo()
    assert first["status"] == "interrupted" and first["updates"] == 5
    # the half-done update 6 was not saved: the checkpoint is the one after update 5
    assert load_checkpoint(run_b / LATEST)["algo_state"]["env_steps"] == 5 * 128
    assert "previous checkpoint is kept" in (run_b / "log.txt").read_text()
    assert signal.getsignal(signal.SIGINT) is handler
    resume_run(run_b, progress=False)
    assert_same_run(reference("ppo-cartpole"), run_b, 5 * 128, 2048, 128)


def test_resume_keeps_the_budget_raises_it_and_refuses_lowering(tmp_path):
    run = tmp_path / "run"
    cfg = _config("a2c-cartpole")
    start_run(_spec("a2c-cartpole", steps=512), cfg, run_dir=run, progress=False,
              stop_after_updates=4)  # fmt: skip
    config_before = (run / "config.json").read_bytes()
    ckpt_before = (run / LATEST).read_bytes()
    with pytest.raises(ValueError, match="below the run's budget of 512 steps"):
        resume_run(run, steps=256, progress=False)
    assert (run / "config.json").read_bytes() == config_before
    assert (run / LATEST).read_bytes() == ckpt_before

    summary = resume_run(run, progress=False)  # towards the same budget
    assert summary["status"] == "finished" and summary["env_steps"] == 512
    assert json.loads((run / "config.json").read_text())["run"]["steps"] == 512
    assert len(_rows(run / "metrics.csv")) == 512 // 32

    summary = resume_run(run, progress=False)  # already done: nothing more happens
    assert summary["env_steps"] == 512 and len(_rows(run / "metrics.csv")) == 512 // 32

    summary = resume_run(run, steps=768, progress=False)  # a raised budget
    assert summary["status"] == "finished" and summary["env_steps"] == 768
    assert json.loads((run / "config.json").read_text())["run"]["steps"] == 768
    steps = [int(r["env_steps"]) for r in _rows(run / "metrics.csv")]
    assert steps == list(range(32, 769, 32))


def test_resume_refuses_lowering_the_default_budget(tmp_path):
    run = tmp_path / "run"
    start_run(_spec("a2c-cartpole", steps=None), _config("a2c-cartpole"), run_dir=run,
              progress=False, stop_after_updates=1)  # fmt: skip
    with pytest.raises(ValueError, match="below the run's budget of 200000 steps"):
        resume_run(run, steps=1000, progress=False)


def test_resuming_a_run_that_reached_its_target_goes_on_to_the_budget(tmp_path):
    run = tmp_path / "run"
    spec = _spec("a2c-cartpole", steps=512, eval_every=128, target_return=1.0)
    _, first = start_run(spec, _config("a2c-cartpole"), run_dir=run, progress=False)
    assert first["status"] == "target_reached" and first["env_steps"] == 128  # any return >= 1
    assert first["target_reached_steps"] == 128
    summary = resume_run(run, progress=False)
    assert summary["status"] == "finished" and summary["env_steps"] == 512
    assert summary["target_reached_steps"] == 128  # the first time it was reached


def test_existing_run_directory_is_refused_untouched_or_replaced(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        start_run(_spec("a2c-cartpole", steps=64), _config("a2c-cartpole"), run_dir=run)
    assert sorted(os.listdir(run)) == ["config.json", "notes.txt"]
    # an invalid new config leaves the old run alone even with overwrite=True
    with pytest.raises(ValueError, match="gamma"):
        start_run(_spec("a2c-cartpole", steps=64), {"gamma": 2.0}, run_dir=run, overwrite=True)
    assert (run / "notes.txt").read_text() == "mine"
    _, summary = start_run(_spec("a2c-cartpole", steps=64), _config("a2c-cartpole"),
                           run_dir=run, overwrite=True, progress=False)  # fmt: skip
    assert summary["env_steps"] == 64 and not (run / "notes.txt").exists()
    assert json.loads((run / "config.json").read_text())["algo"] == "a2c"


def test_overwrite_never_deletes_a_directory_that_is_not_a_run(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not a renshu run directory"):
        start_run(_spec("a2c-cartpole", steps=64), {}, run_dir=folder, overwrite=True)
    assert (folder / "thesis.tex").read_text() == "precious"
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        start_run(_spec("a2c-cartpole", steps=64), {}, run_dir=afile, overwrite=True)
    assert afile.read_text() == "x"


def test_dqn_resume_without_the_replay_buffer_refills_it_first(tmp_path):
    cfg = dict(_config("dqn-cartpole"), checkpoint_buffer=False)
    run = tmp_path / "run"
    start_run(_spec("dqn-cartpole"), cfg, run_dir=run, progress=False, stop_after_updates=12)
    ckpt = load_checkpoint(run / LATEST)
    assert "buffer" not in ckpt["algo_state"] and "q" in ckpt["algo_state"]
    summary = resume_run(run, progress=False)
    assert summary["status"] == "finished" and summary["env_steps"] == 1024
    rows = _rows(run / "metrics.csv")
    after = [r for r in rows if int(r["env_steps"]) > 12 * 32]
    # Learning waits until 256 new transitions (learning_starts) refilled the buffer: 8 updates
    # of 32 transitions, the 8th of which learns.
    assert [bool(r["loss/td"]) for r in after[:7]] == [False] * 7
    assert all(r["loss/td"] for r in after[7:])
    assert int(after[6]["train/buffer_size"]) < 7 * 32 < 12 * 32


def test_nonfinite_loss_stops_with_a_message_and_the_last_good_checkpoint(tmp_path):
    # Rewards scaled past float32's range make the TD targets inf from the first gradient step
    # (learning starts at 256 env steps).
    cfg = dict(_config("dqn-cartpole"), reward_scale=1e39)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"NaN or inf at 256 env steps.*latest\.pt"):
        start_run(_spec("dqn-cartpole"), cfg, run_dir=run, progress=False)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "nonfinite_loss" and summary["env_steps"] == 256
    state = load_checkpoint(run / LATEST)["algo_state"]
    # The bad steps were skipped: the saved weights are the initial (last good) ones, finite.
    fresh = Trainer(tmp_path / "fresh", _spec("dqn-cartpole"), cfg, False, None).algo
    for name, value in state["q"].items():
        assert torch.isfinite(value).all()
        assert torch.equal(value, fresh.q.state_dict()[name])
    assert "non-finite" in (run / "log.txt").read_text()
