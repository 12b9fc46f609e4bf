"""The backend conformance suite against real ARQ workers on a real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from wove.testing import BackendExecutorConformance


@pytest.mark.usefixtures("arq_worker")
class TestArqConformance(BackendExecutorConformance):
    # ARQ runs each job as an asyncio task and Wove's runtime runs a sync task body in a
    # thread of the worker process; Job.abort cancels the task, but no thread can be stopped,
    # so a cancelled sync body runs on (its result discarded). Async bodies do stop.
    interrupts_sync_tasks = False

    @pytest.fixture
    def environment(self, redis_url: str) -> dict[str, Any]:
        return {
            "executor": "arq",
            "executor_config": {
                "redis_url": redis_url,
                "security": "env:WOVE_SECRET",
                "worker_heartbeat_seconds": 0.5,
                "status_interval": 0.25,
            },
        }
