"""Joining an existing Ray cluster (a real head started with `ray start`), and bad input."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from renshu.distributed import check_reachable, require_ray  # noqa: E402
from renshu.runner import RunSpec, start_run  # noqa: E402

RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"  # loopback-only test cluster
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head in its own process tree (`ray start --head --block`), stopped afterwards."""
    if RAY is None:
        pytest.skip("the `ray` command is not installed")
    port = _free_port()
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
         "--disable-usage-stats"],
        env=_env(), stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # the head is up once its GCS answers
            try:
                check_reachable(address, timeout=2)
                break
            except ConnectionError:
                if head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "head.log").read_text()) from None
                time.sleep(0.5)
        yield address
    finally:
        head.terminate()  # --block: stops the head's processes too
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, 9)
            head.wait()


def test_train_joins_an_external_head(tmp_path, ray_head):
    """`renshu train ... --backend ray --ray-address` on a head started by `ray start`: the run
    finishes on that cluster (its log names the address) and writes a normal run directory."""
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "renshu.cli", "train", "ppo", "cartpole", "--backend", "ray",
        "--num-workers", "2", "--ray-address", ray_head, "--steps", "4096",
        "--eval-episodes", "10", "--run-dir", str(run_dir), "--no-progress", "--threads", "1",
    ]  # fmt: skip
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "finished: 4,096 env steps" in out.stdout
    log = (run_dir / "log.txt").read_text()
    assert f"ray backend: 2 workers on {ray_head}" in log
    for name in ("config.json", "metrics.csv", "summary.json", "checkpoints/latest.pt",
                 "learning_curve.png"):  # fmt: skip
        assert (run_dir / name).is_file(), name


def test_unreachable_address_fails_within_seconds():
    """A closed port fails in seconds with the address in the message (the CLI: one line)."""
    address = f"127.0.0.1:{_free_port()}"
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "renshu.cli", "train", "ppo", "cartpole", "--backend", "ray",
         "--ray-address", address, "--steps", "100", "--no-progress"],
        env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.monotonic() - start < 20
    assert out.returncode == 2
    assert address in out.stderr and "cannot reach the Ray cluster" in out.stderr
    assert "Traceback" not in out.stderr


def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "renshu\[distributed\]"'):
        require_ray()


def test_too_many_workers(tmp_path):
    spec = RunSpec(algo="ppo", env="cartpole", steps=100, backend="ray", num_workers=3)
    with pytest.raises(ValueError, match="3 workers need at least 3 envs"):
        start_run(spec, {"num_envs": 2}, run_dir=tmp_path / "ppo", progress=False)
    assert not (tmp_path / "ppo").exists()
