"""The CLI answers `renshu --help`, `renshu envs` and other subcommands' help without loading
torch or any other heavy module (issue 21: these must take well under a second). Each case
runs in a fresh interpreter, so modules imported by other tests cannot hide an import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = [
    "torch", "matplotlib", "tensorboard", "ale_py", "transformers", "ray", "imageio", "optuna",
    "numba", "stable_baselines3", "tqdm",
]  # fmt: skip

PROBE = """
import contextlib, io, json, sys
from renshu.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main({argv!r})
    except SystemExit as e:
        code = e.code
print(json.dumps({{"code": code, "out": out.getvalue(), "loaded": sorted(
    m for m in {heavy!r} if m in sys.modules)}}))
"""


def _probe(argv: list[str]) -> dict:
    code = PROBE.format(argv=argv, heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["envs"], ["envs", "game2048"], ["eval", "--help"], ["record", "--help"],
     ["plot", "--help"], ["play", "--help"], ["sweep", "--help"], ["tune", "--help"]],
)  # fmt: skip
def test_cli_answers_without_heavy_modules(argv):
    result = _probe(argv)
    assert result["code"] in (0, None)
    assert result["loaded"] == [], f"`renshu {' '.join(argv)}` imported {result['loaded']}"
    assert "usage: renshu" in result["out"] or "game2048" in result["out"]


def test_top_level_help_still_lists_train():
    result = _probe(["--help"])
    assert "train" in result["out"] and "train an agent" in result["out"]


def test_train_help_lists_the_algorithm_fields():
    # `train` builds its full parser (torch is needed there): the PPO and run fields appear.
    result = _probe(["train", "ppo", "--help"])
    assert result["code"] == 0
    assert "--learning-rate" in result["out"] and "--target-return" in result["out"]
