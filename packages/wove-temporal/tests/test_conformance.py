"""The backend conformance suite against a real Temporal dev server and a real worker, with the
scenarios: a killed worker, a restarted server, and workflows Temporal cancels when a sibling
fails."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

from wove.testing import BackendExecutorConformance

from .conftest import (
    TASK_QUEUE,
    backend_services,
    start_worker,
    status_of,
    temporal_service,
    temporal_view,
)


def temporal_config(target: str) -> dict[str, Any]:
    return {
        "target_host": target,
        "task_queue": TASK_QUEUE,
        "security": "env:WOVE_SECRET",
        "worker_heartbeat_seconds": 0.5,
        "status_interval": 0.25,
    }


class TestTemporalConformance(BackendExecutorConformance):
    # The activity awaits Wove's runtime, which runs a sync task body in a thread of the
    # worker process; cancelling the activity cancels the run, but no thread can be stopped,
    # so a cancelled sync body runs on (its result discarded). Async bodies do stop.
    interrupts_sync_tasks = False
    # A long Wove heartbeat: the worker would only hear of the cancel through the callback
    # server 10 s later, so the task stops because Temporal cancelled the activity (delivered
    # at the activity's next heartbeat, within a second here).
    running_job_config: Mapping[str, Any] = {
        "worker_heartbeat_seconds": 10,
        "activity_options": {"heartbeat_timeout": 1},
    }
    # start_delay keeps the workflow waiting in Temporal, not yet started, when the sibling fails.
    queued_job_config: Mapping[str, Any] = {"workflow_options": {"start_delay": 120}}

    @pytest.fixture
    def environment(self, target: str) -> dict[str, Any]:
        return {"executor": "temporal", "executor_config": temporal_config(target)}

    @pytest.fixture(autouse=True)
    def _temporal(self, target: str, temporal_worker: backend_services.WorkerProcess) -> None:
        self.target = target
        self.worker = temporal_worker

    def wait_until(self, condition: Callable[[], object], what: str) -> None:
        backend_services.wait_until(condition, self.hang_guard_seconds, what)

    def kill_worker(self, job_id: str, pid: int) -> None:
        # Wove's silence check (3 x 0.5 s after the last event) fires first: Temporal's
        # heartbeat timeout is as long, and its failure needs a worker to run the workflow task
        # that records it, which only the restarted worker can.
        self.restarts = self.worker.restarts
        self.worker.kill()

    def wait_for_worker(self) -> None:
        self.wait_until(lambda: self.worker.restarts > self.restarts, "the killed worker restarted")

    def assert_killed_job(self, job_id: str, error: BaseException) -> None:
        # Temporal's own view: the activity timed out on its heartbeat, failing the workflow.
        self.wait_until(
            lambda: status_of(self.target, job_id) == WorkflowExecutionStatus.FAILED,
            "Temporal failed the workflow of the killed worker",
        )
        _, outcome = temporal_view(self.target, job_id)
        assert isinstance(outcome, WorkflowFailureError)
        assert isinstance(outcome.cause, ActivityError)
        assert isinstance(outcome.cause.cause, TimeoutError)
        assert outcome.cause.cause.type == TimeoutType.HEARTBEAT

    @contextlib.contextmanager
    def restartable_backend(self) -> Iterator[tuple[Mapping[str, Any], Callable[[], None]]]:
        # A SQLite file keeps the namespace and workflow histories across the restart: same
        # port, same database. The executor keeps its client, which reconnects by itself; the
        # worker's pollers retry too (WorkerProcess would restart it if it did not).
        server = temporal_service.TemporalServer.private(persistent=True)
        worker = None
        try:
            worker = start_worker(server.target)
            environment = {
                "executor": "temporal",
                "executor_config": temporal_config(server.target),
            }
            yield environment, server.restart
        finally:
            if worker is not None:
                worker.stop()
            server.cleanup()

    def is_job_queued(self, job_id: str) -> bool:
        return status_of(self.target, job_id) == WorkflowExecutionStatus.RUNNING

    def assert_job_cancelled(self, job_id: str, *, queued: bool, pid: int | None) -> None:
        self.wait_until(
            lambda: status_of(self.target, job_id) == WorkflowExecutionStatus.CANCELED,
            "Temporal recorded the workflow canceled",
        )
        if queued:
            description, outcome = temporal_view(self.target, job_id)
            assert description.status == WorkflowExecutionStatus.CANCELED
            assert isinstance(outcome, WorkflowFailureError)
            assert not description.raw_description.pending_activities
