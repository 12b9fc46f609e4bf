"""The backend conformance suite against the stand-in Kubernetes API, whose kubelet runs each
Job's Pod as a real ``python -m wove.backend_worker`` process, with the scenarios: a Pod's
process killed mid-task, the API server restarted between weaves, and Jobs deleted when a
sibling fails.

Cancelling a run deletes its Job with background propagation, which deletes the Pod and so
kills its process: a sync task stops for real (``interrupts_sync_tasks`` keeps its strict
default).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import pytest
from kubernetes import client

from wove.testing import BackendExecutorConformance

from .conftest import backend_services, k8s_config, k8s_standin, pods_of, read_job, read_secret


def suspended(job: client.V1Job) -> client.V1Job:
    """A suspended Job stands for one waiting to be scheduled: it has no Pod yet."""
    job.spec.suspend = True
    return job


class TestKubernetesJobsConformance(BackendExecutorConformance):
    # Every run is a Job whose Pod is a fresh Python process importing the worker runtime
    # (about 0.3 s of CPU each); 200 at once on the 2 shared cores of a test machine would take
    # longer than the suite's 30 s hang guard, and measure only the machine.
    concurrent_runs: ClassVar[int] = 20
    # The OOM killer ends the only attempt: with backoffLimit 0 Kubernetes marks the Job
    # failed, and the next status poll orphans the run, quoting it -- unless the silence is
    # noticed first.
    killed_worker_message: ClassVar[str] = r"sent nothing|kubernetes_jobs reports job '.*' failed"
    queued_job_config: ClassVar[Mapping[str, Any]] = {"job_template": suspended}

    @pytest.fixture
    def environment(self, standin: k8s_standin.StandIn) -> dict[str, Any]:
        return {"executor": "kubernetes_jobs", "executor_config": k8s_config(standin.url)}

    @pytest.fixture(autouse=True)
    def _kubernetes(self, standin: k8s_standin.StandIn, api: client.ApiClient) -> None:
        self.url = standin.url
        self.api = api

    def wait_until(self, condition: Callable[[], object], what: str) -> None:
        backend_services.wait_until(condition, self.hang_guard_seconds, what)

    def kill_worker(self, job_id: str, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def assert_killed_job(self, job_id: str, error: BaseException) -> None:
        message = str(error)
        if "sent nothing" not in message:  # the status poll, not the silence, noticed first
            assert f"kubernetes_jobs reports job '{job_id}' failed" in message
            assert "BackoffLimitExceeded" in message
            assert "exit code -9" in message
        job = read_job(self.api, job_id)
        assert job is not None
        assert job.status.failed == 1

    @contextlib.contextmanager
    def restartable_backend(self) -> Iterator[tuple[Mapping[str, Any], Callable[[], None]]]:
        with k8s_standin.running() as private:
            environment = {
                "executor": "kubernetes_jobs",
                "executor_config": k8s_config(private.url),
            }
            yield environment, private.restart

    def is_job_queued(self, job_id: str) -> bool:
        configuration = client.Configuration()
        configuration.host = self.url
        with client.ApiClient(configuration) as own:
            return read_job(own, job_id) is not None

    def assert_job_cancelled(self, job_id: str, *, queued: bool, pid: int | None) -> None:
        # Background deletion takes the Job, its Pod (killing the process) and its Secret; the
        # cancel reaches Kubernetes from the dispatch loop, perhaps after the weave returned.
        self.wait_until(lambda: read_job(self.api, job_id) is None, "the Job deleted")
        if not queued:
            assert pods_of(self.api, job_id) == []
        assert read_secret(self.api, job_id) is None
