"""The backend conformance suite against real ARQ workers on a real Redis, with the
scenarios: a killed worker, a restarted Redis, and jobs ARQ aborts when a sibling fails."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from arq.jobs import JobStatus as ArqJobStatus

from wove.testing import BackendExecutorConformance

from .conftest import arq_view, backend_services, start_worker


def arq_config(redis_url: str) -> dict[str, Any]:
    return {
        "redis_url": redis_url,
        "security": "env:WOVE_SECRET",
        "worker_heartbeat_seconds": 0.5,
        "status_interval": 0.25,
    }


class TestArqConformance(BackendExecutorConformance):
    # ARQ runs each job as an asyncio task and Wove's runtime runs a sync task body in a
    # thread of the worker process; Job.abort cancels the task, but no thread can be stopped,
    # so a cancelled sync body runs on (its result discarded). Async bodies do stop.
    interrupts_sync_tasks = False
    # A long heartbeat: the worker would only hear of the cancel seconds later, so the job
    # stops because ARQ aborted it.
    running_job_config: Mapping[str, Any] = {"worker_heartbeat_seconds": 10}
    # _defer_by keeps the job in ARQ's queue, not yet due, when the sibling fails.
    queued_job_config: Mapping[str, Any] = {"enqueue_options": {"_defer_by": 120}}

    @pytest.fixture
    def environment(self, redis_url: str) -> dict[str, Any]:
        return {"executor": "arq", "executor_config": arq_config(redis_url)}

    @pytest.fixture(autouse=True)
    def _arq(self, redis_url: str, arq_worker: backend_services.WorkerProcess) -> None:
        self.redis_url = redis_url
        self.worker = arq_worker

    def kill_worker(self, job_id: str, pid: int) -> None:
        self.restarts = self.worker.restarts
        self.worker.kill()

    def wait_for_worker(self) -> None:
        backend_services.wait_until(
            lambda: self.worker.restarts > self.restarts,
            self.hang_guard_seconds,
            "the killed worker was restarted",
        )

    @contextlib.contextmanager
    def restartable_backend(self) -> Iterator[tuple[Mapping[str, Any], Callable[[], None]]]:
        # The executor's pool must reconnect by itself. An ARQ worker whose poll hits the
        # outage exits with a ConnectionError instead; WorkerProcess restarts it, as a
        # supervisor would in production.
        server = backend_services.Redis.private()
        worker = None
        try:
            url = server.url(0)
            worker = start_worker(url)
            yield {"executor": "arq", "executor_config": arq_config(url)}, server.restart
        finally:
            if worker is not None:
                worker.stop()
            server.stop()

    def is_job_queued(self, job_id: str) -> bool:
        return arq_view(self.redis_url, job_id)[0] == ArqJobStatus.deferred

    def assert_job_cancelled(self, job_id: str, *, queued: bool, pid: int | None) -> None:
        backend_services.wait_until(
            lambda: arq_view(self.redis_url, job_id)[1] is not None,
            self.hang_guard_seconds,
            "ARQ recorded the aborted job",
        )
        status, info, score = arq_view(self.redis_url, job_id)
        assert score is None, "the aborted job is still in ARQ's queue"
        assert status == ArqJobStatus.complete
        assert info is not None
        if not queued:
            assert not info.success
        assert isinstance(info.result, asyncio.CancelledError), info.result
