"""Shared pytest setup: makes helper modules in ``tests/`` (``reference_2048``) importable."""

import sys
from pathlib import Path

import pytest
import torch

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The test machine has 2 shared cores: every test runs torch on one thread."""
    torch.set_num_threads(1)
    yield
