"""A real single-node Ray cluster.

The cluster is ``ray start --head --block`` on 127.0.0.1 (a free port), started once per
session by ``tests-integration/ray_service.py`` and stopped by its PID at the end, its
temporary directory removed. Its workers inherit ``WOVE_SECRET`` from this process, which sets
it before the head starts; the test process is the Ray driver, with the environment variables a
driver of that cluster needs.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services  # noqa: F401 - re-exported for the tests
import ray_service

# Workers inherit the secret the test environments name as env:WOVE_SECRET.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))
ray_service.configure_driver_environment()

#: CPUs each Wove task asks for: the 2-CPU node then runs four tasks at once, as the
#: conformance suite needs (it runs tasks side by side).
TASK_CPUS = 0.5


@pytest.fixture(scope="session")
def ray_head() -> Iterator[ray_service.RayHead]:
    """The session's Ray cluster; some tests restart it (same port)."""
    head = ray_service.RayHead(num_cpus=2)
    try:
        head.start()
        yield head
    finally:
        import ray

        # A connected driver keeps the node draining for 30 s on SIGTERM; disconnect first.
        ray.shutdown()
        head.close()


def ray_config(address: str | None, **extra: object) -> dict[str, object]:
    config: dict[str, object] = {
        "security": "env:WOVE_SECRET",
        "worker_heartbeat_seconds": 0.5,
        "status_interval": 0.25,
        "remote_options": {"num_cpus": TASK_CPUS},
        **extra,
    }
    if address is not None:
        config["address"] = address
    return config
