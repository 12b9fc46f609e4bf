"""The shared Redis and real ``taskiq worker`` processes.

Workers are started with :class:`backend_services.WorkerProcess` (restarted when a test kills
one), from ``worker_app.py`` in this directory. Each child process of a worker drops a marker
file named after its PID when its broker starts; a worker is ready once as many live children
have done so as it was started with.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services

# The weave signs payloads with this secret; the workers inherit it as WOVE_SECRET.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

#: The Redis database these tests own on the shared server (flushed once per session).
REDIS_DATABASE = 5
HERE = Path(__file__).resolve().parent


def _is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its reaper is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def start_worker(
    broker_url: str,
    *,
    queue: str = "taskiq",
    workers: int = 2,
    env: dict[str, str] | None = None,
) -> backend_services.WorkerProcess:
    """``taskiq worker worker_app:broker`` on ``broker_url``/``queue``, once it listens."""
    ready_dir = Path(tempfile.mkdtemp(prefix="wove-taskiq-ready-"))

    def ready() -> bool:
        live = [marker for marker in ready_dir.iterdir() if _is_running(int(marker.name))]
        return len(live) >= workers

    return backend_services.WorkerProcess(
        [
            sys.executable,
            "-m",
            "taskiq",
            "worker",
            "worker_app:broker",
            "--workers",
            str(workers),
            "--shutdown-timeout",
            "1",
            "--log-level",
            "INFO",
        ],
        ready=ready,
        env={
            "WOVE_TASKIQ_TEST_BROKER_URL": broker_url,
            "WOVE_TASKIQ_TEST_QUEUE": queue,
            "WOVE_TASKIQ_TEST_READY_DIR": str(ready_dir),
            **(env or {}),
        },
        cwd=HERE,
    )


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """DB 5 of the shared Redis (started if nothing answers), emptied before the tests."""
    import redis

    server = backend_services.ensure_redis()
    url = server.url(REDIS_DATABASE)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    yield url
    if server.started_here:
        server.stop()


@pytest.fixture
def worker_factory() -> Iterator[Callable[..., backend_services.WorkerProcess]]:
    """:func:`start_worker` for one test; whatever it started is stopped afterwards."""
    started: list[backend_services.WorkerProcess] = []

    def start(broker_url: str, **options: Any) -> backend_services.WorkerProcess:
        worker = start_worker(broker_url, **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def taskiq_worker(redis_url: str) -> Iterator[backend_services.WorkerProcess]:
    """Two worker processes on the default queue, for the whole session."""
    worker = start_worker(redis_url)
    yield worker
    worker.stop()


@pytest.fixture
def environment_config(
    redis_url: str, taskiq_worker: backend_services.WorkerProcess
) -> dict[str, object]:
    """A ``taskiq`` environment served by :func:`taskiq_worker`, with quick heartbeats."""
    return {
        "executor": "taskiq",
        "executor_config": {
            "broker_url": redis_url,
            "security": "env:WOVE_SECRET",
            "worker_heartbeat_seconds": 0.5,
            "status_interval": 0.25,
        },
    }
