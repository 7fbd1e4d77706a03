"""One writer per run directory (``RUN/.lock``, an flock held for the whole run, with the
holder's PID), and the temporaries of killed saves (``.NAME.PID.HEX.tmp.*`` of dead processes)
removed when a run is resumed, evaluated or overwritten."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from renshu_proc import finish, renshu, wait_for

from renshu.cli import main
from renshu.fileio import RunLock, remove_stale_temporaries
from renshu.runner import LATEST, RunSpec, start_run
from renshu.runner.checkpoint import load_checkpoint, resume_run

TRAIN = ("train", "ppo", "cartpole", "--steps", "10000000", "--no-progress", "--threads", "1",
         "--animation", "false")  # fmt: skip


def _run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _small_run(run_dir):
    spec = RunSpec(algo="a2c", env="cartpole", steps=100_000, eval_episodes=2,
                   checkpoint_seconds=1e9, animation=False)  # fmt: skip
    start_run(spec, dict(num_envs=4, num_steps=8, hidden=[16]), run_dir=run_dir,
              progress=False, stop_after_updates=2)  # fmt: skip
    return run_dir


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_run_refuses_a_second_writer_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "run"
    proc = renshu(*TRAIN, "--run-dir", str(run_dir))
    wait_for(lambda: (run_dir / LATEST).is_file(), proc, "a first checkpoint")
    assert (run_dir / ".lock").read_text().strip() == str(proc.pid)
    code, err = _run_cli(capsys, "train", "--resume", run_dir, "--no-progress")
    assert code == 2
    assert f"renshu train: error: run directory {run_dir} is in use by process {proc.pid}" in err
    code, err = _run_cli(capsys, "train", "ppo", "cartpole", "--run-dir", run_dir,
                         "--overwrite", "--no-progress")  # fmt: skip
    assert code == 2 and f"in use by process {proc.pid}" in err
    assert (run_dir / LATEST).is_file()  # --overwrite removed nothing of the live run
    # reading is not writing: eval of the live run works
    code, err = _run_cli(capsys, "eval", run_dir, "--episodes", "2", "--json")
    assert code == 0, err
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    # the kernel dropped the dead process's flock: the next writer takes the lock over
    summary = resume_run(run_dir, progress=False, stop_after_updates=1)
    assert summary["status"] == "interrupted"
    assert (run_dir / ".lock").read_text() == ""  # released at the end of the run


def test_run_lock_reports_a_dead_holder_it_took_over(tmp_path):
    (tmp_path / ".lock").write_text(f"{_dead_pid()}\n")
    with RunLock(tmp_path) as lock:
        assert lock.previous_pid is not None
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
        again = RunLock(tmp_path)  # a second lock in this process is refused too (flock)
        try:
            again.acquire()
        except Exception as e:
            assert f"in use by process {os.getpid()}" in str(e)
        else:
            raise AssertionError("a second lock was granted")


def _plant(folder, dead: int) -> dict[str, bool]:
    """Temporaries of a dead and a live process, and files that only look alike: name ->
    whether it should survive."""
    names = {
        f".latest.pt.{dead}.0123456789ab.tmp.pt": False,  # a killed save
        f".config.json.{dead}.a1b2c3d4e5f6.tmp.json": False,
        f".metrics.csv.{dead}.ffffffffffff.tmp.csv": False,
        f".latest.pt.{os.getpid()}.0123456789ab.tmp.pt": True,  # a living process's save
        f".latest.pt.{dead}.0123.tmp.pt": True,  # not renshu's pattern (4 hex digits)
        "latest.pt.backup": True,
        f"notes.{dead}.0123456789ab.tmp": True,  # not hidden
    }
    for name in names:
        (folder / name).write_bytes(b"x" * 100)
    return names


def _check(folder, names):
    for name, survives in names.items():
        assert (folder / name).exists() == survives, name


def test_stale_temporaries_removed_on_resume(tmp_path):
    run_dir = _small_run(tmp_path / "run")
    names = _plant(run_dir / "checkpoints", _dead_pid())
    resume_run(run_dir, progress=False, stop_after_updates=3)
    _check(run_dir / "checkpoints", names)
    assert load_checkpoint(run_dir / LATEST)["runner"]["updates"] == 3


def test_stale_temporaries_removed_on_eval_and_record(tmp_path, capsys):
    run_dir = _small_run(tmp_path / "run")
    dead = _dead_pid()
    names = _plant(run_dir / "checkpoints", dead)
    top = _plant(run_dir, dead)
    code, err = _run_cli(capsys, "eval", run_dir, "--episodes", "2")
    assert code == 0, err
    _check(run_dir / "checkpoints", names)
    _check(run_dir, top)
    names = _plant(run_dir / "checkpoints", _dead_pid())
    code, err = _run_cli(capsys, "record", run_dir, "--out", tmp_path / "a.gif", "--max-steps",
                         "5")  # fmt: skip
    assert code == 0, err
    _check(run_dir / "checkpoints", names)


def test_stale_temporaries_gone_on_overwrite(tmp_path, capsys):
    run_dir = _small_run(tmp_path / "run")
    _plant(run_dir / "checkpoints", _dead_pid())
    argv = ["train", "a2c", "cartpole", "--run-dir", run_dir, "--overwrite", "--steps", "64"]
    argv += ["--num-envs", "4", "--num-steps", "8", "--eval-episodes", "2", "--animation", "false"]
    code, err = _run_cli(capsys, *argv, "--no-progress")
    assert code == 0, err
    assert not [n for n in os.listdir(run_dir / "checkpoints") if ".tmp" in n]
    assert load_checkpoint(run_dir / LATEST)["runner"]["updates"] == 2  # the new run's


def test_remove_stale_temporaries_returns_what_it_removed(tmp_path):
    dead = _dead_pid()
    names = _plant(tmp_path, dead)
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, keep in names.items() if not keep)
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_killed_save_temporary_is_cleaned_by_the_next_resume(tmp_path):
    """The issue's case: kill -9 during a save leaves .latest.pt.<pid>.<hex>.tmp.pt behind."""
    run_dir = tmp_path / "run"
    proc = renshu(*TRAIN, "--run-dir", str(run_dir), "--checkpoint-seconds", "0")
    wait_for(lambda: (run_dir / LATEST).is_file(), proc, "a first checkpoint")
    proc.kill()
    finish(proc)
    leftover = run_dir / "checkpoints" / f".latest.pt.{proc.pid}.00000000beef.tmp.pt"
    leftover.write_bytes(b"half a checkpoint")  # as if the kill had come inside the save
    resume_run(run_dir, progress=False, stop_after_updates=1)
    assert not leftover.exists()
