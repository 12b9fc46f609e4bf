"""The backend conformance suite against a real Dask scheduler and worker processes."""

from __future__ import annotations

from typing import Any

import pytest

from wove.testing import BackendExecutorConformance


class TestDaskConformance(BackendExecutorConformance):
    # Dask never interrupts a task a worker has started: Client.cancel forgets the future and
    # the scheduler frees the key, but the worker thread runs on. The Wove runtime stops an
    # async body when the heartbeat answer carries the cancel; a sync body runs on in its
    # thread (its result discarded) -- no thread can be stopped from outside.
    interrupts_sync_tasks = False

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
