"""Finding Ray and a cluster: a clear message when Ray is missing or an address is unreachable."""

from __future__ import annotations

import os
import socket
from types import ModuleType

RAY_EXTRA = 'pip install "renshu[distributed]"'
CONNECT_TIMEOUT_S = 3.0
DEFAULT_RAY_PORT = 6379


def require_ray() -> ModuleType:
    """The ``ray`` module, or an ImportError that names the extra to install."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"the Ray backend and sweeps need Ray: {RAY_EXTRA}") from e
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port``, ``ray://host:port`` or ``[v6]:port``; None for
    ``auto`` (Ray finds the local cluster itself)."""
    if address == "auto":
        return None
    rest = address.removeprefix("ray://")
    default = 10001 if address.startswith("ray://") else DEFAULT_RAY_PORT
    host, sep, port = rest.rpartition(":")
    if not sep or "]" in port:
        host, port = rest, str(default)
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(
            f"Ray address {address!r} is not host:port (e.g. 127.0.0.1:6379 or ray://host:10001)"
        ) from None
    if not host or not 0 < number < 65536:
        raise ValueError(f"Ray address {address!r} is not host:port (e.g. 127.0.0.1:6379)")
    return host, number


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ConnectionError naming ``address`` unless a TCP connection opens within
    ``timeout`` seconds (Ray itself would retry for a long time)."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ConnectionError(
            f"cannot reach the Ray cluster at {address} ({reason} within {timeout:g} s); start "
            "one with `ray start --head --port 6379` and pass its address, or leave out "
            "--ray-address to start a local Ray"
        ) from None
    if not address.startswith("ray://"):
        _probe_gcs(address, f"{target[0]}:{target[1]}", timeout)


def _probe_gcs(address: str, target: str, timeout: float) -> None:
    """Ask the address for its Ray cluster id (one gRPC call): a port that answers but is no
    Ray head fails here at once, where ``ray.init`` would retry for about 20 s."""
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:  # Ray's internals moved: leave the check to ray.init
        return
    channel = grpc.insecure_channel(target)
    try:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout)
    except grpc.RpcError as e:
        # A Ray head answers (with an id, or asking for its auth token); anything else is not one.
        if e.code() == grpc.StatusCode.UNAUTHENTICATED:
            if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                raise ConnectionError(
                    f"the Ray cluster at {address} uses token authentication; set "
                    "RAY_AUTH_MODE=token (the token is read from RAY_AUTH_TOKEN or "
                    "~/.ray/auth_token, which `ray start` writes on the head) and try again"
                ) from None
            return
        if e.code() != grpc.StatusCode.OK:
            raise ConnectionError(
                f"{address} answers but is not a Ray cluster head ({e.code().name}: "
                f"{(e.details() or '').strip()[:120]}); pass the address `ray start --head` "
                "printed (host:port of its GCS, port 6379 by default)"
            ) from None
    finally:
        channel.close()


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Make sure this process is connected to Ray. Returns True when this call started or
    joined it (so the caller should ``ray.shutdown()`` at the end), False when it already was.

    Without ``address`` a local Ray starts with ``num_cpus`` logical CPUs (at least the cores).
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address:
        check_reachable(address)
        ray.init(address=address, logging_level="ERROR", log_to_driver=True)
    else:
        cpus = max(os.cpu_count() or 1, num_cpus or 1)
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="ERROR")
    return True
