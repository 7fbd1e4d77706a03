"""Fault injection: a training process killed with SIGKILL at random (seeded) moments, at least
half of them inside checkpoint writes (checked), many times over; every time the latest
checkpoint loads and the run resumed from it goes on, and in the end finishes. The same with
SIGTERM, checking that no update's work is lost: the checkpoint a stopped run leaves holds every
update it logged, and the resumed run continues from exactly there."""

from __future__ import annotations

import json
import random
import signal
import time

import pytest
from renshu_proc import finish, renshu, wait_for

from renshu.runner import LATEST
from renshu.runner.checkpoint import load_checkpoint
from renshu.runner.logging import read_csv

pytestmark = pytest.mark.long

# DQN on CartPole with a large replay memory (about 12 MB per checkpoint) saved after every
# update: a good part of the process's time goes to checkpoint writes.
TRAIN = ("train", "dqn", "cartpole", "--steps", "6000", "--no-progress", "--threads", "1",
         "--animation", "false", "--checkpoint-seconds", "0", "--buffer-size", "300000",
         "--train-freq", "32", "--gradient-steps", "4", "--learning-starts", "256",
         "--eval-every", "6000", "--eval-episodes", "4", "--milestones", "0")  # fmt: skip


def _temporaries(run_dir):
    folder = run_dir / "checkpoints"
    return [p for p in folder.iterdir() if ".tmp" in p.name] if folder.is_dir() else []


def _updates(run_dir) -> int:
    return load_checkpoint(run_dir / LATEST)["runner"]["updates"]


def test_sigkill_during_checkpoint_writes_never_loses_the_checkpoint(tmp_path):
    rng = random.Random(18)
    run_dir = tmp_path / "run"
    proc = renshu(*TRAIN, "--run-dir", str(run_dir))
    kills, mid_save, updates = 0, 0, 0
    while kills < 8:
        wait_for(lambda: (run_dir / LATEST).is_file(), proc, "a checkpoint")
        if rng.random() < 0.75:  # as a save starts (its temporary appears), then a little later
            wait_for(lambda: _temporaries(run_dir), proc, "a checkpoint write", limit=60)
            time.sleep(rng.uniform(0.0, 0.03))
        else:  # any moment
            time.sleep(rng.uniform(0.0, 0.5))
        saving = bool(_temporaries(run_dir))
        proc.send_signal(signal.SIGKILL)
        finish(proc)
        kills += 1
        mid_save += saving
        now = _updates(run_dir)  # loads: never a torn or half-written latest.pt
        assert now >= updates  # and never an older one than before
        updates = now
        proc = renshu("train", "--resume", str(run_dir), "--no-progress")
    rc, out, err = finish(proc, limit=180)
    assert rc == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["env_steps"] >= 6000
    assert mid_save >= 4, f"only {mid_save} of {kills} kills came inside a save"
    assert not _temporaries(run_dir)  # the killed saves' temporaries were removed on resume


def test_sigterm_at_random_moments_loses_no_update(tmp_path):
    rng = random.Random(1918)
    run_dir = tmp_path / "run"
    proc = renshu(*TRAIN, "--run-dir", str(run_dir))
    for _ in range(4):
        wait_for(lambda: (run_dir / LATEST).is_file(), proc, "a checkpoint")
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGTERM)
        rc, _, err = finish(proc)
        assert rc == 143, err
        summary = json.loads((run_dir / "summary.json").read_text())
        data = load_checkpoint(run_dir / LATEST)
        steps = data["algo_state"]["env_steps"]
        # every update the run logged is in the checkpoint it left
        assert data["runner"]["updates"] == summary["updates"]
        assert steps == summary["env_steps"]
        logged = read_csv(run_dir / "metrics.csv")["env_steps"]
        assert logged[-1] == steps
        proc = renshu("train", "--resume", str(run_dir), "--no-progress")
        # the resumed run starts from exactly there: its first row follows the last one kept
        kept = len(logged)
        wait_for(lambda kept=kept: len(read_csv(run_dir / "metrics.csv")["env_steps"]) > kept,
                 proc, "the resumed run's first update")  # fmt: skip
        rows = read_csv(run_dir / "metrics.csv")["env_steps"]
        assert rows[: len(logged)] == logged
        assert rows[len(logged)] > steps
    rc, _, err = finish(proc, limit=180)
    assert rc == 0, err
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
