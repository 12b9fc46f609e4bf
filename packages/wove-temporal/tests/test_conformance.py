"""The backend conformance suite against a real Temporal dev server and a real worker."""

from __future__ import annotations

from typing import Any

import pytest

from wove.testing import BackendExecutorConformance

from .conftest import TASK_QUEUE


@pytest.mark.usefixtures("temporal_worker")
class TestTemporalConformance(BackendExecutorConformance):
    # The activity awaits Wove's runtime, which runs a sync task body in a thread of the
    # worker process; cancelling the activity cancels the run, but no thread can be stopped,
    # so a cancelled sync body runs on (its result discarded). Async bodies do stop.
    interrupts_sync_tasks = False

    @pytest.fixture
    def environment(self, target: str) -> dict[str, Any]:
        return {
            "executor": "temporal",
            "executor_config": {
                "target_host": target,
                "task_queue": TASK_QUEUE,
                "security": "env:WOVE_SECRET",
                "worker_heartbeat_seconds": 0.5,
                "status_interval": 0.25,
            },
        }
