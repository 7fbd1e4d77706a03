"""Checkpoint files: plain tensors and data, atomic writes, and refusal of anything else."""

import io
import os
import pickle

import pytest
import torch

from renshu.runner import checkpoint
from renshu.runner.checkpoint import (
    VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)


class Planted:
    """Unpickling this calls ``open(path, "w")``: a marker file appears if a loader runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _payload() -> dict:
    gen = torch.Generator().manual_seed(3)
    return {
        "algo": "ppo",
        "algo_state": {
            "policy": {
                "w": torch.randn(3, 4, generator=gen),
                "b": torch.arange(4, dtype=torch.int64),
            },
            "generator": gen.get_state(),
            "betas": (0.9, 0.999),
            "params": [0, 1, 2],
            "fused": None,
            "env_steps": 4096,
        },
        "env_state": {"state": {"board": torch.tensor([[1, 2], [3, 0]], dtype=torch.int64)}},
        "runner": {"recent": [9.0, 10.5], "target_reached": None, "ok": True, "lr": 2.5e-4},
    }


def test_round_trip_keeps_tensors_nested_data_and_dtypes(tmp_path):
    payload = _payload()
    path = save_checkpoint(tmp_path / "checkpoints" / "latest.pt", payload)
    assert path == tmp_path / "checkpoints" / "latest.pt"
    data = load_checkpoint(path)
    assert data["format"] == "renshu-checkpoint" and data["version"] == VERSION
    state = data["algo_state"]
    assert torch.equal(state["policy"]["w"], payload["algo_state"]["policy"]["w"])
    assert state["policy"]["w"].dtype == torch.float32
    assert (
        state["policy"]["b"].tolist() == [0, 1, 2, 3] and state["policy"]["b"].dtype == torch.int64
    )
    assert torch.equal(state["generator"], payload["algo_state"]["generator"])
    assert state["betas"] == (0.9, 0.999) and state["params"] == [0, 1, 2]
    assert state["fused"] is None and state["env_steps"] == 4096
    assert data["env_state"]["state"]["board"].tolist() == [[1, 2], [3, 0]]
    assert data["runner"] == {
        "recent": [9.0, 10.5],
        "target_reached": None,
        "ok": True,
        "lr": 2.5e-4,
    }
    # the restored generator continues the very same random stream
    a = torch.Generator().manual_seed(0)
    a.set_state(state["generator"])
    b = torch.Generator().manual_seed(3)
    torch.randn(3, 4, generator=b)  # what _payload drew before saving the state
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))


def test_file_is_readable_by_plain_torch_load_weights_only(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _payload())
    data = torch.load(path, weights_only=True)
    assert data["format"] == "renshu-checkpoint" and data["algo_state"]["env_steps"] == 4096


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "ckpt" / "latest.pt"
    save_checkpoint(path, {"step": 1})
    save_checkpoint(path, {"step": 2})  # replaces the first
    assert sorted(os.listdir(path.parent)) == ["latest.pt"]
    assert load_checkpoint(path)["step"] == 2


def test_file_gets_the_usual_permissions_not_0600(tmp_path):
    umask = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "latest.pt", {"step": 1})
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    assert os.listdir(tmp_path) == ["latest.pt"]
    assert path.read_bytes() == before


def test_save_refuses_an_arbitrary_object_and_writes_nothing(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(TypeError, match=r"payload\['runner'\]\['x'\] is a Planted"):
        save_checkpoint(tmp_path / "c.pt", {"runner": {"x": Planted(marker)}})
    with pytest.raises(TypeError, match="must be a str or int"):
        save_checkpoint(tmp_path / "c.pt", {"runner": {(1, 2): 3}})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("how", ["torch.save inner", "torch.save top", "pickle"])
def test_load_refuses_arbitrary_objects_without_running_them(tmp_path, how):
    marker = tmp_path / "code-ran"
    evil = Planted(marker)
    path = tmp_path / "c.pt"
    if how == "torch.save inner":  # the marker, and an object inside
        torch.save({"format": "renshu-checkpoint", "version": 1, "x": evil}, path)
    elif how == "torch.save top":
        torch.save(evil, path)
    else:
        path.write_bytes(pickle.dumps(evil))
    with pytest.raises(CheckpointError, match="could run code") as e:
        load_checkpoint(path)
    assert not marker.exists()
    assert "\n" not in str(e.value) and "\x1b" not in str(e.value)
    assert "weights_only` set to `False`" not in str(e.value)  # no advice to load it unsafely


def test_foreign_and_wrong_version_files(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="no 'renshu-checkpoint' marker"):
        load_checkpoint(foreign)
    listed = tmp_path / "list.pt"
    torch.save([1, 2, 3], listed)
    with pytest.raises(CheckpointError, match="not a renshu checkpoint"):
        load_checkpoint(listed)
    future = tmp_path / "future.pt"
    torch.save({"format": "renshu-checkpoint", "version": 99}, future)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(future)
    older = tmp_path / "older.pt"  # renshu 0.1's format: refused, saying why
    torch.save({"format": "renshu-checkpoint", "version": 1, **_payload()}, older)
    with pytest.raises(CheckpointError, match="version 1; this renshu reads version 2.*older"):
        load_checkpoint(older)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path)  # a directory


def test_corrupt_bytes_always_give_a_checkpoint_error(tmp_path):
    """Random bytes and every kind of truncation: one CheckpointError, never another error."""
    good = io.BytesIO()
    torch.save({"format": "renshu-checkpoint", "version": VERSION, **_payload()}, good)
    good = good.getvalue()
    gen = torch.Generator().manual_seed(0)
    blobs = [b"", good[:10], good[: len(good) // 2], good[:-1], good[:-100]]
    for _ in range(60):
        n = int(torch.randint(1, 2000, (1,), generator=gen))
        blobs.append(bytes(torch.randint(0, 256, (n,), generator=gen, dtype=torch.uint8).tolist()))
    blobs.append(b"\x80\x02" + blobs[-1])  # looks like the start of a pickle
    path = tmp_path / "bad.pt"
    for blob in blobs:
        path.write_bytes(blob)
        with pytest.raises(CheckpointError, match="corrupt or not a renshu checkpoint") as e:
            load_checkpoint(path)
        assert "\n" not in str(e.value)
