"""Ray for the distributed tests: one local Ray (2 CPUs, loopback) for the tests in this
folder, stopped after them.

The tests skip only when Ray is not installed (CI installs the ``distributed`` extra).
"""

import signal

import pytest


@pytest.fixture(scope="package")
def ray_session():
    ray = pytest.importorskip("ray")
    sigint = signal.getsignal(signal.SIGINT)  # Ray (or Tune) may leave its own behind
    started = not ray.is_initialized()
    if started:
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
            _node_ip_address="127.0.0.1",
        )  # fmt: skip
    yield ray
    if started:
        ray.shutdown()
    signal.signal(signal.SIGINT, sigint)
