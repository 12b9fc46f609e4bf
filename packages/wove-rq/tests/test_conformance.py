"""The backend conformance suite against real Redis and real ``rq worker`` processes, with the
scenarios: a killed worker, a restarted Redis, and jobs RQ stops or cancels when a sibling
fails.

Three forking workers (``wove_rq.worker.WoveWorker``) serve the queue, so tasks run side by
side as the suite expects; cancelling a running job kills its work horse, which stops a sync
task too (``interrupts_sync_tasks`` keeps its strict default).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job

from wove.testing import BackendExecutorConformance

from .conftest import QUEUE, backend_services, start_worker

#: A queue no worker listens to: a job enqueued there waits.
NOBODY = f"wove-nobody-{secrets.token_hex(4)}"


def rq_config(redis_url: str, queue: str = QUEUE) -> dict[str, Any]:
    return {
        "redis_url": redis_url,
        "queue": queue,
        "security": "env:WOVE_SECRET",
        "worker_heartbeat_seconds": 0.5,
        "status_interval": 0.25,
    }


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class TestRQConformance(BackendExecutorConformance):
    queued_job_config: Mapping[str, Any] = {"queue": NOBODY}

    @pytest.fixture
    def environment(self, redis_url: str, rq_workers: list[Any]) -> dict[str, Any]:
        return {"executor": "rq", "executor_config": rq_config(redis_url)}

    @pytest.fixture(autouse=True)
    def _rq(
        self,
        redis_url: str,
        rq_workers: list[backend_services.WorkerProcess],
        connection: redis.Redis,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:
        self.redis_url = redis_url
        self.workers = rq_workers
        self.connection = connection
        self.tmp_path_factory = tmp_path_factory

    def kill_worker(self, job_id: str, pid: int) -> None:
        # The worker and its work horse die together, as when their machine or container does.
        # RQ runs each job in a horse with its own process group; WorkerProcess.kill() kills
        # the worker's descendants too, and the horse is also killed by its PID, in case it was
        # not yet listed as a child when the worker died.
        parent = parent_of(pid)
        (self.killed,) = [w for w in self.workers if w.process.pid == parent]
        self.restarts = self.killed.restarts
        self.killed.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def wait_for_worker(self) -> None:
        backend_services.wait_until(
            lambda: self.killed.restarts > self.restarts,
            self.hang_guard_seconds,
            "the worker restarting",
        )

    @contextlib.contextmanager
    def restartable_backend(self) -> Iterator[tuple[Mapping[str, Any], Callable[[], None]]]:
        server = backend_services.Redis.private()
        try:
            worker = start_worker(server.url(0), QUEUE, "private", self.tmp_path_factory)
            try:
                yield (
                    {"executor": "rq", "executor_config": rq_config(server.url(0))},
                    server.restart,
                )
            finally:
                worker.stop()
        finally:
            server.stop()

    def is_job_queued(self, job_id: str) -> bool:
        with redis.Redis.from_url(self.redis_url) as client:
            return Job.exists(job_id, connection=client)

    def assert_job_cancelled(self, job_id: str, *, queued: bool, pid: int | None) -> None:
        job = Job.fetch(job_id, connection=self.connection)
        guard = self.hang_guard_seconds
        if queued:
            # The cancel reaches RQ from the dispatch loop, after the weave has already returned.
            backend_services.wait_until(
                lambda: job.get_status(refresh=True) == "canceled", guard, "the job cancelled"
            )
            assert job_id not in Queue(NOBODY, connection=self.connection).job_ids
            return
        # RQ marks a job "stopped" once the work horse it killed has been reaped.
        states = ("stopped", "finished", "failed")
        backend_services.wait_until(
            lambda: job.get_status(refresh=True) in states, guard, f"RQ job {job_id} {states}"
        )
        assert str(job.get_status(refresh=False).value) == "stopped"
