"""The shared Redis and real ARQ workers.

The tests use database 4 of the shared Redis on 127.0.0.1:6379 (flushed once per session,
before the first worker starts, so no key of an earlier session -- a queued job, a kept
result -- leaks in). The worker is ``python -m arq arq_settings.WorkerSettings`` in its own
process group, started once per session with :class:`backend_services.WorkerProcess`, which
restarts it when a test kills it.
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
from arq.connections import RedisSettings, create_pool
from arq.constants import default_queue_name
from arq.jobs import Job, JobResult
from arq.jobs import JobStatus as ArqJobStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services

# Workers inherit the secret from this process's environment; environments name it.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

TESTS = Path(__file__).resolve().parent
DATABASE = 4


def is_ready(ready_file: Path) -> bool:
    """Whether the worker that wrote ``ready_file`` (its PID) is alive: a restarted worker's
    predecessor is reaped before the new one starts, so a stale file never passes."""
    try:
        pid = int(ready_file.read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return state not in ("Z", "X")


def arq_view(redis_url: str, job_id: str) -> tuple[ArqJobStatus, JobResult | None, float | None]:
    """ARQ's own view of a job: its status, its result record, its score in the queue."""

    async def look() -> tuple[ArqJobStatus, JobResult | None, float | None]:
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            job = Job(job_id, pool)
            score = await pool.zscore(default_queue_name, job_id)
            return await job.status(), await job.result_info(), score
        finally:
            await pool.aclose()

    return asyncio.run(look())


def start_worker(redis_url: str) -> backend_services.WorkerProcess:
    """An ARQ worker on ``redis_url``, ready when it returns."""
    ready_file = Path(tempfile.mkdtemp(prefix="wove-arq-")) / "ready"
    return backend_services.WorkerProcess(
        [sys.executable, "-m", "arq", "arq_settings.WorkerSettings"],
        ready=lambda: is_ready(ready_file),
        env={"WOVE_ARQ_TEST_REDIS_URL": redis_url, "WOVE_ARQ_TEST_READY_FILE": str(ready_file)},
        cwd=TESTS,
    )


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Database 4 of the shared Redis, emptied once before any worker uses it."""
    server = backend_services.ensure_redis()
    import redis

    with redis.Redis(host="127.0.0.1", port=server.port, db=DATABASE) as client:
        client.flushdb()
    yield server.url(DATABASE)
    if server.started_here:
        server.stop()


@pytest.fixture(scope="session")
def arq_worker(redis_url: str) -> Iterator[backend_services.WorkerProcess]:
    worker = start_worker(redis_url)
    yield worker
    worker.stop()
