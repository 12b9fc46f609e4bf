"""The backend conformance suite against a real moto server whose jobs run in podman
containers, with the scenarios: a container killed mid-task and a running job terminated when
its sibling fails.

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

from .conftest import FINAL, aws_batch_service, batch_config, job_named


class TestAWSBatchConformance(BackendExecutorConformance):
    concurrent_runs: ClassVar[int] = 12
    # A job takes 1-2 s to start; the suite's blocked runs and retries add up to more than
    # the default 30 s on a shared 2-core machine.
    hang_guard_seconds: ClassVar[float] = 60.0
    # Whichever noticed first: Batch's FAILED, or the silence of the dead worker.
    killed_worker_message: ClassVar[str] = r"aws_batch reports job '.*' failed|probably killed"

    @pytest.fixture
    def environment(self, local_batch: aws_batch_service.LocalBatch) -> dict[str, Any]:
        return {"executor": "aws_batch", "executor_config": batch_config(local_batch.endpoint_url)}

    @pytest.fixture(autouse=True)
    def _batch(self, local_batch: aws_batch_service.LocalBatch, batch_client: Any) -> None:
        self.local_batch = local_batch
        self.client = batch_client

    def kill_worker(self, job_id: str, pid: int) -> None:
        # The container dies under the task (its instance went away, the OOM killer...).
        containers = self.local_batch.containers(job_id)
        assert len(containers) == 1, containers
        self.local_batch.kill_container(containers[0])

    def assert_killed_job(self, job_id: str, error: BaseException) -> None:
        message = str(error)
        assert f"aws_batch reports job '{job_id}' failed" in message or "probably killed" in message
        assert job_named(self.client, job_id, *FINAL)["status"] == "FAILED"

    def assert_job_cancelled(self, job_id: str, *, queued: bool, pid: int | None) -> None:
        job = job_named(self.client, job_id, *FINAL)
        assert job["status"] == "FAILED"
        assert job["statusReason"].startswith("cancelled by Wove (run long-sync-")
