"""A real Dask cluster in separate processes.

The cluster is ``dask scheduler`` plus one ``dask worker`` (a nanny and its worker process, 4
threads) on 127.0.0.1, started once per session by ``tests-integration/dask_service.py`` with
:class:`backend_services.WorkerProcess`, which restarts the worker when a test kills it. The
workers inherit ``WOVE_SECRET`` from this process.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services
import dask_service

# Workers inherit the secret from this process's environment; environments name it.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

__all__ = ["NOWHERE", "backend_services", "dask_service", "scheduler_state", "worker_holds"]

#: A resource no worker offers: a task asking for it waits in the scheduler ("no-worker").
NOWHERE = {"resources": {"wove-test-nowhere": 1}}


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[dask_service.DaskCluster]:
    """The session's cluster; tests that stop or restart a cluster start one of their own."""
    cluster = dask_service.DaskCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def dask_address(dask_cluster: dask_service.DaskCluster) -> str:
    return dask_cluster.address


@pytest.fixture
def observer(dask_address: str) -> Iterator[Client]:
    """A client of the session's scheduler of the test's own, to look at Dask's view."""
    with Client(dask_address, timeout=30, set_as_default=False) as client:
        yield client


def scheduler_state(client: Client, key: str) -> str | None:
    """The scheduler's state of the task ``key`` (``None``: it does not know the key)."""
    states: dict[str, str | None] = client.sync(client.scheduler.get_task_status, keys=[key])
    return states[key]


def worker_holds(client: Client, key: str) -> bool:
    """Whether any worker still has the task ``key`` (running it, or keeping its result)."""

    def holds(dask_worker: Any, key: str = key) -> bool:
        return key in dask_worker.state.tasks

    return any(client.run(holds).values())
