"""A write that fails keeps the last good state and stops with one line: the file, the error
and, for a full disk, the bytes needed and free. The failures are real ones from the kernel:
writes into /dev/full (ENOSPC), a read-only directory (EACCES; as root only where chmod bites)
and /sys (EACCES or EPERM even for root). The free-space check before a checkpoint is driven by
renshu's own ``fileio.free_bytes``, which a test may make report a nearly full disk.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

import pytest
import torch

from renshu import fileio
from renshu.cli import main
from renshu.errors import WriteError
from renshu.runner import LATEST, RunSpec, start_run
from renshu.runner.checkpoint import load_checkpoint, save_checkpoint

DEV_FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not DEV_FULL.exists(), reason="no /dev/full here")


def _root_bypasses_permissions(tmp_path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").touch()
    except PermissionError:
        return False
    finally:
        probe.chmod(0o755)
    return True


def _run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _one_error_line(err: str, command: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"renshu {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _small_run(run_dir: Path) -> Path:
    spec = RunSpec(algo="a2c", env="cartpole", steps=100_000, eval_episodes=2,
                   checkpoint_seconds=0.0, animation=False)  # fmt: skip
    config = dict(num_envs=4, num_steps=8, hidden=[16])
    start_run(spec, config, run_dir=run_dir, progress=False, stop_after_updates=2)
    return run_dir


@pytest.fixture
def checkpoints_into_dev_full(monkeypatch):
    """Every temporary of a checkpoint (``latest.pt``) is a link to /dev/full: torch.save's
    bytes hit a device that is always full (ENOSPC), as on a disk with no space left."""
    made = []

    def temporary(path: Path) -> Path:
        tmp = original(path)
        if path.name == "latest.pt":
            tmp.symlink_to(DEV_FULL)
            made.append(tmp)
        return tmp

    original = fileio.temporary_name
    monkeypatch.setattr(fileio, "temporary_name", temporary)
    return made


@needs_dev_full
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, checkpoints_into_dev_full):
    path = tmp_path / "checkpoints" / "latest.pt"
    checkpoints_into_dev_full.clear()
    good = save_checkpoint(tmp_path / "checkpoints" / "other.pt", {"w": torch.ones(10)})
    os.replace(good, path)
    before = path.read_bytes()
    with pytest.raises(WriteError) as failed:
        save_checkpoint(path, {"w": torch.zeros(100_000)})
    text = str(failed.value)
    assert failed.value.errno == errno.ENOSPC
    assert text.startswith(f"cannot write {path}: No space left on device (ENOSPC)")
    assert re.search(r"it needs .*\(4\d\d,\d{3} bytes\), .* free", text), text
    assert path.read_bytes() == before  # the previous checkpoint is untouched
    assert checkpoints_into_dev_full and not any(p.is_symlink() for p in checkpoints_into_dev_full)
    assert sorted(os.listdir(path.parent)) == ["latest.pt"]


@needs_dev_full
def test_full_disk_stops_training_with_one_line(tmp_path, capsys, checkpoints_into_dev_full):
    run_dir = tmp_path / "run"
    argv = ["train", "a2c", "cartpole", "--run-dir", run_dir, "--steps", "4096"]
    code, err = _run_cli(capsys, *argv, "--no-progress", "--num-envs", "4", "--num-steps", "8")
    assert code == 2
    line = _one_error_line(err, "train")
    assert f"cannot write {run_dir / LATEST}: No space left on device (ENOSPC)" in line
    assert "needs" in line and "free" in line
    assert not (run_dir / LATEST).exists()
    assert not [n for n in os.listdir(run_dir / "checkpoints") if ".tmp" in n]


def test_a_checkpoint_larger_than_the_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "latest.pt", {"w": torch.ones(10)})
    before = path.read_bytes()
    monkeypatch.setattr(fileio, "free_bytes", lambda directory: 300_000)
    writes = []
    monkeypatch.setattr(torch, "save", lambda *a, **k: writes.append(a))
    with pytest.raises(
        WriteError,
        match=r"not enough space on the disk .* \(ENOSPC\); it needs "
        r"4\d\d\.\d kB \(4\d\d,\d{3} bytes\), 300\.0 kB \(300,000 bytes\) free",
    ):
        save_checkpoint(path, {"w": torch.zeros(100_000)})  # 400 kB of tensor
    assert writes == []  # nothing was tried
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["latest.pt"]
    save_checkpoint(path, {"w": torch.zeros(1000)})  # what fits is written


def test_resume_of_a_run_whose_disk_is_full_says_so_and_keeps_the_checkpoint(
    tmp_path, capsys, monkeypatch
):
    run_dir = _small_run(tmp_path / "run")
    before = (run_dir / LATEST).read_bytes()
    monkeypatch.setattr(fileio, "free_bytes", lambda directory: 1000)
    code, err = _run_cli(capsys, "train", "--resume", run_dir, "--no-progress")
    assert code == 2
    line = _one_error_line(err, "train")
    assert f"cannot write {run_dir / LATEST}: not enough space" in line
    assert "(1,000 bytes) free" in line
    assert (run_dir / LATEST).read_bytes() == before
    assert load_checkpoint(run_dir / LATEST)["runner"]["updates"] == 2


@needs_dev_full
@pytest.mark.parametrize("name", ["metrics.csv", "episodes.csv", "log.txt"])
def test_a_log_file_on_a_full_disk_stops_the_run_naming_it(tmp_path, capsys, name):
    run_dir = _small_run(tmp_path / "run")
    before = (run_dir / LATEST).read_bytes()
    (run_dir / name).unlink()
    (run_dir / name).symlink_to(DEV_FULL)  # every write of it fails with ENOSPC
    code, err = _run_cli(capsys, "train", "--resume", run_dir, "--no-progress")
    assert code == 2
    line = _one_error_line(err, "train")
    assert f"cannot write {run_dir / name}: No space left on device (ENOSPC)" in line
    assert (run_dir / LATEST).read_bytes() == before  # stopped before anything was learned


def test_a_missing_tensorboard_directory_names_it(tmp_path, capsys):
    run_dir = _small_run(tmp_path / "run")
    before = (run_dir / LATEST).read_bytes()
    import shutil

    shutil.rmtree(run_dir / "tensorboard")
    (run_dir / "tensorboard").write_text("not a directory")
    code, err = _run_cli(capsys, "train", "--resume", run_dir, "--no-progress")
    assert code == 2
    line = _one_error_line(err, "train")
    assert f"cannot write {run_dir / 'tensorboard'}" in line
    assert (run_dir / LATEST).read_bytes() == before


def test_read_only_checkpoint_directory_keeps_the_checkpoint(tmp_path, capsys):
    if _root_bypasses_permissions(tmp_path):
        pytest.skip("running as root: chmod does not stop writes (see the /sys test)")
    run_dir = _small_run(tmp_path / "run")
    before = (run_dir / LATEST).read_bytes()
    folder = run_dir / "checkpoints"
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, err = _run_cli(capsys, "train", "--resume", run_dir, "--no-progress")
    finally:
        folder.chmod(0o755)
    assert code == 2
    line = _one_error_line(err, "train")
    assert f"cannot write {run_dir / LATEST}: Permission denied (EACCES)" in line
    assert (run_dir / LATEST).read_bytes() == before


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="no /sys")
def test_unwritable_places_give_one_line_naming_the_file(tmp_path, capsys):
    with pytest.raises(WriteError, match=r"cannot write /sys/renshu-test/latest.pt: "):
        save_checkpoint("/sys/renshu-test/latest.pt", {"w": torch.ones(2)})
    code, err = _run_cli(capsys, "record", "--env", "cartpole", "--out", "/proc/x.gif",
                         "--max-steps", "5")  # fmt: skip
    assert code == 2
    line = _one_error_line(err, "record")
    assert "cannot write /proc/x.gif:" in line and ".tmp" not in line
