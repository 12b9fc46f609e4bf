"""The backend conformance suite against a real Dask scheduler and worker processes, with the
scenarios: a killed worker, and tasks the scheduler forgets when a sibling fails."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from distributed import Client

from wove.testing import BackendExecutorConformance

from .conftest import NOWHERE, backend_services, dask_service, scheduler_state, worker_holds


class TestDaskConformance(BackendExecutorConformance):
    # Dask never interrupts a task a worker has started: Client.cancel forgets the future and
    # the scheduler frees the key, but the worker thread runs on. The Wove runtime stops an
    # async body when the heartbeat answer carries the cancel; a sync body runs on in its
    # thread (its result discarded) -- no thread can be stopped from outside.
    interrupts_sync_tasks = False
    # Either the silence (three heartbeats) or the scheduler's rescheduled copy of the task,
    # which finds its run already claimed, ends the run; both say what happened.
    killed_worker_message = r"sent nothing .* probably killed|worker was lost mid-task"
    queued_job_config: Mapping[str, Any] = {"submit_options": NOWHERE}

    @pytest.fixture
    def environment(self, dask_address: str) -> dict[str, Any]:
        return {
            "executor": "dask",
            "executor_config": {
                "address": dask_address,
                "security": "env:WOVE_SECRET",
                "worker_heartbeat_seconds": 0.5,
                "status_interval": 0.25,
            },
        }

    @pytest.fixture(autouse=True)
    def _dask(self, dask_cluster: dask_service.DaskCluster, observer: Client) -> None:
        self.cluster = dask_cluster
        self.observer = observer

    def kill_worker(self, job_id: str, pid: int) -> None:
        assert self.cluster.worker is not None
        self.old_pid = self.cluster.worker.process.pid
        self.cluster.kill_worker()

    def wait_for_worker(self) -> None:
        self.cluster.wait_for_worker_restart(self.old_pid)

    def is_job_queued(self, job_id: str) -> bool:
        return scheduler_state(self.observer, job_id) == "no-worker"

    def assert_job_running(self, job_id: str) -> None:
        assert scheduler_state(self.observer, job_id) == "processing"

    def assert_job_cancelled(self, job_id: str, *, queued: bool, pid: int | None) -> None:
        # Dask's view: the scheduler forgot the task, and for a running one the worker's thread
        # returned (the run stopped when the heartbeat answer carried the cancel), so the
        # worker let the task go.
        guard = self.hang_guard_seconds
        backend_services.wait_until(
            lambda: scheduler_state(self.observer, job_id) is None,
            guard,
            "the scheduler forgot the task",
        )
        if not queued:
            backend_services.wait_until(
                lambda: not worker_holds(self.observer, job_id), guard, "the worker's task ended"
            )
