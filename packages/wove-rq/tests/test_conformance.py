"""The backend conformance suite against real Redis and real ``rq worker`` processes.

Three forking workers (``wove_rq.worker.WoveWorker``) serve the queue, so tasks run side by
side as the suite expects; cancelling a running job kills its work horse, which stops a sync
task too (``interrupts_sync_tasks`` keeps its strict default).
"""

from __future__ import annotations

from typing import Any

import pytest

from wove.testing import BackendExecutorConformance

from .conftest import QUEUE


class TestRQConformance(BackendExecutorConformance):
    @pytest.fixture
    def environment(self, redis_url: str, rq_workers: list[Any]) -> dict[str, Any]:
        return {
            "executor": "rq",
            "executor_config": {
                "redis_url": redis_url,
                "queue": QUEUE,
                "security": "env:WOVE_SECRET",
                "worker_heartbeat_seconds": 0.5,
                "status_interval": 0.25,
            },
        }
