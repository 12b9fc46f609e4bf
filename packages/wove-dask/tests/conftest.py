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

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services
import dask_service

# Workers inherit the secret from this process's environment; environments name it.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

__all__ = ["backend_services", "dask_service"]


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[dask_service.DaskCluster]:
    """The session's cluster; tests that stop or restart a cluster start one of their own."""
    cluster = dask_service.DaskCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def dask_address(dask_cluster: dask_service.DaskCluster) -> str:
    return dask_cluster.address
