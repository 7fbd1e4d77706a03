"""SIGTERM and SIGHUP stop a run like Ctrl-C: the update finishes, the checkpoint is written,
summary.json says ``interrupted`` and the exit status is the shell's 128 + signal; a second
signal stops at once and keeps the previous checkpoint. The first checkpoint follows the first
update (a run killed at any time after it can resume); a run directory with a config but no
checkpoint resumes as a fresh start of the same run.

Each test runs ``python -m renshu.cli train ...`` in a subprocess, as a user (or ``timeout``,
Slurm, Kubernetes, a closing terminal) would.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from renshu_proc import finish, renshu, wait_for

from renshu.runner import LATEST
from renshu.runner.checkpoint import load_checkpoint, resume_run

# A budget it never reaches: the signal stops it.
TRAIN = ("train", "ppo", "cartpole", "--steps", "10000000", "--no-progress", "--threads", "1",
         "--animation", "false")  # fmt: skip


def _start(run_dir, *extra):
    proc = renshu(*TRAIN, "--run-dir", str(run_dir), *extra)
    wait_for(lambda: (run_dir / LATEST).is_file(), proc, "a first checkpoint")
    return proc


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_finishes_the_update_saves_and_exits_128_plus_signal(tmp_path, sig, status):
    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    proc.send_signal(sig)
    rc, out, err = finish(proc)
    assert rc == status, err
    assert "Traceback" not in err
    assert f"{signal.Signals(sig).name}: stopping after this update" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["signal"] == signal.Signals(sig).name
    data = load_checkpoint(run_dir / LATEST)
    # the checkpoint was written at the stop: it holds every update the summary counts
    assert data["runner"]["updates"] == summary["updates"] >= 1
    assert data["algo_state"]["env_steps"] == summary["env_steps"]
    assert f"renshu train --resume {run_dir}" in out
    # and the run goes on from there
    resumed = resume_run(run_dir, progress=False, stop_after_updates=summary["updates"] + 1)
    assert resumed["updates"] == summary["updates"] + 1
    assert resumed["env_steps"] > summary["env_steps"]


def test_a_second_signal_stops_at_once_and_keeps_a_loadable_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    rc, _, err = finish(proc)
    assert rc == 143, err
    assert "Traceback" not in err
    data = load_checkpoint(run_dir / LATEST)  # the previous one, or the one the stop wrote
    assert data["runner"]["updates"] >= 1
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name != "latest.pt"]
    assert not [n for n in leftovers if ".tmp" in n]


def test_first_checkpoint_right_after_the_first_update_then_every_checkpoint_seconds(tmp_path):
    run_dir = tmp_path / "run"
    # with --checkpoint-seconds far off, the only periodic checkpoint is the first one
    proc = _start(run_dir, "--checkpoint-seconds", "1e9")
    proc.kill()  # SIGKILL: nothing more is written
    proc.communicate()
    assert json.loads((run_dir / "config.json").read_text())["run"]["checkpoint_seconds"] == 1e9
    data = load_checkpoint(run_dir / LATEST)
    assert data["runner"]["updates"] == 1
    resumed = resume_run(run_dir, progress=False, stop_after_updates=2)
    assert resumed["updates"] == 2


def test_checkpoint_seconds_zero_saves_after_every_update(tmp_path):
    from renshu.runner import RunSpec
    from renshu.runner.loop import Trainer

    run_dir = tmp_path / "run"
    spec = RunSpec(algo="ppo", env="cartpole", steps=10_000, checkpoint_seconds=0.0,
                   animation=False).resolved()  # fmt: skip
    trainer = Trainer(run_dir, spec, {"num_envs": 4, "num_steps": 8}, progress=False)
    saved = []
    save = trainer.save
    trainer.save = lambda wall: (save(wall), saved.append(trainer.state.updates))
    run_dir.mkdir()
    trainer.stop_after_updates = 3
    trainer.train()
    # after updates 1, 2 (periodic), then at the stop after update 3 (periodic and final)
    assert saved[:2] == [1, 2] and saved[-1] == 3


def test_a_run_dir_with_a_config_but_no_checkpoint_resumes_as_a_fresh_start(tmp_path):
    run_dir = tmp_path / "run"
    proc = renshu(*TRAIN, "--run-dir", str(run_dir), "--steps", "2048", "--eval-episodes", "4")
    # kill it as soon as the config is written (usually before the first update has ended);
    # whatever it reached, remove the checkpoint: the state of a run stopped before it
    wait_for(lambda: (run_dir / "config.json").is_file(), proc, "config.json")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    for name in ("checkpoints/latest.pt", "summary.json"):
        (run_dir / name).unlink(missing_ok=True)
    (run_dir / "metrics.csv").write_text("env_steps,wall_seconds\n999999,1.0\n")  # a stale row
    again = renshu("train", "--resume", str(run_dir), "--no-progress")
    rc, out, err = finish(again)
    assert rc == 0, err
    assert "no checkpoint yet: starting the run afresh" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["env_steps"] >= 2048
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert not [row for row in rows if row.startswith("999999,")]
    assert load_checkpoint(run_dir / LATEST)["algo_state"]["env_steps"] == summary["env_steps"]


def test_a_ray_run_stops_on_sigterm_like_a_local_one(tmp_path):
    """--backend ray runs the same loop: the learner finishes its update (the workers' batch),
    saves and exits 143."""
    pytest.importorskip("ray")
    run_dir = tmp_path / "ray"
    proc = _start(run_dir, "--backend", "ray", "--num-workers", "1")
    proc.send_signal(signal.SIGTERM)
    rc, out, err = finish(proc)
    assert rc == 143, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
    assert load_checkpoint(run_dir / LATEST)["runner"]["updates"] == summary["updates"]
