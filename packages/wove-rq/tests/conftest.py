"""Real Redis and real ``rq worker`` processes.

The shared Redis on 127.0.0.1:6379 is used (started if nothing answers there); these tests own
database 3 and flush it once per session. Workers are the documented command line,
``rq worker --url ... -w wove_rq.worker.WoveWorker <queue>``, each a
:class:`backend_services.WorkerProcess` that is restarted whenever it dies (some tests kill
workers on purpose) and stopped by its process group.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq import Worker

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services

# Workers inherit the secret the test environments name as env:WOVE_SECRET.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

DATABASE = 3
QUEUE = "wove"
#: Worker processes serving QUEUE; the conformance suite runs tasks side by side.
WORKERS = 3
RQ = str(Path(sys.executable).with_name("rq"))
#: The worker class the tests start; set WOVE_RQ_TEST_WORKER_CLASS to compare others.
WORKER_CLASS = os.environ.get("WOVE_RQ_TEST_WORKER_CLASS", "wove_rq.worker.WoveWorker")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis's test database, emptied once per session."""
    server = backend_services.ensure_redis()
    url = server.url(DATABASE)
    with redis.Redis.from_url(url) as connection:
        connection.flushdb()
    return url


def start_worker(
    url: str, queue: str, label: str, tmp_path_factory: pytest.TempPathFactory
) -> backend_services.WorkerProcess:
    """One ``rq worker`` on ``queue``, ready once it has registered itself in Redis.

    Its name ends with its PID (``exec`` keeps the shell's), so a worker restarted after a kill
    never collides with the dead one's registration, and readiness means *this* process is
    registered and alive.
    """
    prefix = f"wove-test-{label}-{secrets.token_hex(3)}-"
    command = shlex.join([RQ, "worker", "--url", url, "-w", WORKER_CLASS, "--name", prefix])
    folder = tmp_path_factory.mktemp(f"rq-worker-{label}")
    return backend_services.WorkerProcess(
        ["/bin/sh", "-c", f"exec {command}$$ {shlex.quote(queue)}"],
        ready=_registered(url, prefix),
        cwd=folder,
        log=folder / "worker.log",
    )


def _registered(url: str, prefix: str) -> Callable[[], bool]:
    def ready() -> bool:
        with redis.Redis.from_url(url) as connection:
            for worker in Worker.all(connection=connection):
                if worker.name.startswith(prefix) and _alive(worker.pid):
                    return True
        return False

    return ready


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def rq_workers(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[backend_services.WorkerProcess]]:
    """WORKERS worker processes on QUEUE, for the whole session."""
    workers: list[backend_services.WorkerProcess] = []
    try:
        for index in range(WORKERS):
            workers.append(start_worker(redis_url, QUEUE, f"pool{index}", tmp_path_factory))
        yield workers
    finally:
        for worker in workers:
            worker.stop()


@pytest.fixture
def connection(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test database, for looking at jobs the way RQ sees them."""
    with redis.Redis.from_url(redis_url) as client:
        yield client
