"""Real services for the ``celery`` tests: Redis (and RabbitMQ), and Celery workers as processes.

Each worker is ``celery -A celery_app worker --pool=prefork`` started by
``backend_services.WorkerProcess`` (restarted when a test kills it), consuming a queue of its
own, so tests against different brokers never share workers. It is ready once the marker its
``worker_ready`` handler writes names a live process: after a restart the old marker names a
dead one.
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services

# The test process and every worker it starts share this secret (workers inherit it).
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

TESTS = Path(__file__).resolve().parent
BROKER_DB = 1
BACKEND_DB = 2


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class CeleryWorker:
    """One Celery worker process on ``queue``, restarted when it dies."""

    def __init__(self, broker: str, backend: str | None, queue: str, folder: Path) -> None:
        self.broker = broker
        self.backend = backend
        self.queue = queue
        self.marker = folder / f"{queue}.ready"
        self.process = backend_services.WorkerProcess(
            [
                sys.executable, "-m", "celery", "-A", "celery_app", "worker",
                "--pool=prefork", "--concurrency=3", "--loglevel=INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-Q", queue, "-n", f"{queue}@%h",
            ],
            ready=self.ready,
            env={
                "WOVE_CELERY_BROKER": broker,
                "WOVE_CELERY_BACKEND": backend or "",
                "WOVE_CELERY_READY": str(self.marker),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])
                ),
            },
            cwd=TESTS,
            log=folder / f"{queue}.log",
            ready_timeout=90,
        )  # fmt: skip

    def ready(self) -> bool:
        try:
            return _alive(int(self.marker.read_text()))
        except (OSError, ValueError):
            return False

    def wait_ready(self) -> None:
        backend_services.wait_until(
            lambda: self.ready() and self.process.process.poll() is None,
            90,
            f"the celery worker on {self.queue} coming back",
        )

    def stop(self) -> None:
        self.process.stop()


def queue_name(broker: str) -> str:
    return f"wove-celery-{broker}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[backend_services.Redis]:
    server = backend_services.ensure_redis()
    import redis

    for database in (BROKER_DB, BACKEND_DB):
        with redis.Redis.from_url(server.url(database)) as client:
            client.flushdb()
    yield server
    if server.started_here:
        server.stop()


@pytest.fixture(scope="module")
def workers_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("celery-workers")


@pytest.fixture(scope="module")
def redis_worker(
    redis_server: backend_services.Redis, workers_folder: Path
) -> Iterator[CeleryWorker]:
    worker = CeleryWorker(
        redis_server.url(BROKER_DB),
        redis_server.url(BACKEND_DB),
        queue_name("redis"),
        workers_folder,
    )
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def rabbitmq_worker(
    redis_server: backend_services.Redis, workers_folder: Path
) -> Iterator[CeleryWorker]:
    broker = backend_services.ensure_rabbitmq()
    worker = CeleryWorker(
        broker.url, redis_server.url(BACKEND_DB), queue_name("rabbitmq"), workers_folder
    )
    yield worker
    worker.stop()
    broker.stop()


def environment_for(worker: CeleryWorker, **extra: object) -> dict[str, object]:
    """The environment definition that routes tasks to ``worker``."""
    config: dict[str, object] = {
        "broker_url": worker.broker,
        "queue": worker.queue,
        "security": "env:WOVE_SECRET",
        "worker_heartbeat_seconds": 0.5,
        "status_interval": 0.25,
    }
    if worker.backend is not None:
        config["result_backend"] = worker.backend
    config.update(extra)
    return {"executor": "celery", "executor_config": config}
