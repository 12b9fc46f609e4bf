"""The backend conformance suite against real Celery workers on a Redis broker (DB 1) with a
Redis result backend (DB 2)."""

from __future__ import annotations

from typing import Any

import pytest

from wove.testing import BackendExecutorConformance

from .conftest import CeleryWorker, environment_for


class TestCeleryRedisConformance(BackendExecutorConformance):
    # interrupts_sync_tasks stays True: a cancel revokes the job with terminate=True, and the
    # prefork pool kills the process running it, thread and all.

    @pytest.fixture
    def environment(self, redis_worker: CeleryWorker) -> dict[str, Any]:
        redis_worker.wait_ready()
        return environment_for(redis_worker)
