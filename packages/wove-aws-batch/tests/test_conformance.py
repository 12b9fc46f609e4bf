"""The backend conformance suite against a real moto server whose jobs run in podman
containers.

Every run is one container, started by moto's job thread through podman and running a fresh
Python: about a second of start-up each on this 2-core machine, and moto starts every job at
once (it does not schedule by vCPUs). 200 containers at once would only measure how long two
cores take to start 200 Pythons, so ``concurrent_runs`` is 12. Terminating a job kills its
container, which stops a sync task too (``interrupts_sync_tasks`` keeps its strict default).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from wove.testing import BackendExecutorConformance

from .conftest import aws_batch_service, batch_config


class TestAWSBatchConformance(BackendExecutorConformance):
    concurrent_runs: ClassVar[int] = 12
    # A job takes 1-2 s to start; the suite's blocked runs and retries add up to more than
    # the default 30 s on a shared 2-core machine.
    hang_guard_seconds: ClassVar[float] = 60.0

    @pytest.fixture
    def environment(self, local_batch: aws_batch_service.LocalBatch) -> dict[str, Any]:
        return {"executor": "aws_batch", "executor_config": batch_config(local_batch.endpoint_url)}
