"""Shared pytest setup: makes helper modules in ``tests/`` (``reference_2048``) importable,
runs torch on one thread per test, and starts the long tests first."""

import sys
from pathlib import Path

import pytest
import torch

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests run torch on one thread (results are the same for any count; small ops are
    faster without OpenMP hand-offs, and the machine's 2 cores may be shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``long`` (minutes each) go first: ``./scripts/test`` spreads the suite over
    two pytest-xdist workers, and one long test started last would keep the run waiting."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)  # stable sort
