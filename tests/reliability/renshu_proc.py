"""Running `renshu` as a user does, in a subprocess, and waiting on what it writes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def renshu(*args: str, **kwargs) -> subprocess.Popen:
    """Start ``python -m renshu.cli ARGS`` (one torch thread, output captured)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RENSHU_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "renshu.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=kwargs.pop("cwd", ROOT),
        **kwargs,
    )


def wait_for(condition, proc: subprocess.Popen, what: str, limit: float = 120.0) -> None:
    """Poll ``condition()`` until it holds; fail if ``proc`` ends first (with its output)."""
    deadline = time.monotonic() + limit
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"renshu ended (rc {proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} after {limit} s")
        time.sleep(0.02)


def finish(proc: subprocess.Popen, limit: float = 120.0) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=limit)
    return proc.returncode, out, err
