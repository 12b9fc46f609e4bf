"""The backend conformance suite against a real single-node Slurm cluster; through the client
commands it also runs the scenarios: a worker process killed, the controller restarted, and
jobs scancelled when a sibling fails."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import pytest

from wove.testing import BackendExecutorConformance

from .conftest import (
    LATER,
    alive,
    backend_services,
    job_fields,
    jobs_named,
    only_job,
    payload_files,
    slurm_environment,
    slurm_rest_environment,
    slurm_service,
)


class TestSlurmConformance(BackendExecutorConformance):
    # scancel kills the job's processes, so a cancelled sync task stops for real (the default,
    # interrupts_sync_tasks = True, holds). Every run is a batch job that starts its own
    # Python interpreter (~0.3 s of CPU for the imports) on a 2-core test machine, and
    # slurmctld starts jobs in scheduling passes; 200 at once would measure the machine's CPU,
    # not the adapter, so 24 -- still more than the node's cores, so jobs share and queue.
    concurrent_runs = 24
    killed_worker_message: ClassVar[str] = (
        r"slurm reports job 'killed-\w+' failed \(Slurm job \d+ FAILED, reason "
        r"\w+, exit code 0:9\)|sent nothing .* probably killed"
    )
    queued_job_config: ClassVar[Mapping[str, Any]] = {"sbatch_options": [LATER]}

    @pytest.fixture
    def environment(self, slurm_cluster: slurm_service.SlurmCluster) -> dict[str, Any]:
        return slurm_environment(slurm_cluster)

    @pytest.fixture(autouse=True)
    def _slurm(self, slurm_cluster: slurm_service.SlurmCluster) -> None:
        self.cluster = slurm_cluster

    def wait_until(self, condition: Callable[[], object], what: str) -> None:
        backend_services.wait_until(condition, self.hang_guard_seconds, what)

    def kill_worker(self, job_id: str, pid: int) -> None:
        self.killed_pid = pid
        os.kill(pid, 9)

    def assert_killed_job(self, job_id: str, error: BaseException) -> None:
        assert not alive(self.killed_pid)

    @contextlib.contextmanager
    def restartable_backend(self) -> Iterator[tuple[Mapping[str, Any], Callable[[], None]]]:
        def restart() -> None:
            assert self.cluster.ctld is not None
            old_pid = self.cluster.ctld.process.pid
            self.cluster.restart()  # slurmctld and slurmd, same ports, saved state
            assert self.cluster.ctld is not None
            assert self.cluster.ctld.process.pid != old_pid

        yield slurm_environment(self.cluster), restart

    def assert_job_running(self, job_id: str) -> None:
        name = f"wove-{job_id}"
        assert jobs_named(self.cluster, name) == {only_job(self.cluster, name): "RUNNING"}

    def is_job_queued(self, job_id: str) -> bool:
        return bool(jobs_named(self.cluster, f"wove-{job_id}"))

    def assert_job_queued(self, job_id: str) -> None:
        slurm_id = only_job(self.cluster, f"wove-{job_id}")
        assert job_fields(self.cluster, slurm_id)["Reason"] == "BeginTime"
        (payload,) = payload_files(self.cluster)  # waits with the queued job, 0600
        assert stat.S_IMODE(payload.stat().st_mode) == 0o600

    def assert_job_cancelled(self, job_id: str, *, queued: bool, pid: int | None) -> None:
        name = f"wove-{job_id}"
        slurm_id = only_job(self.cluster, name)
        self.wait_until(
            lambda: jobs_named(self.cluster, name)[slurm_id] == "CANCELLED",
            "Slurm shows the job cancelled",
        )
        if queued:
            assert payload_files(self.cluster) == [], "the payload file of the job stayed"
        else:
            assert pid is not None
            self.wait_until(lambda: not alive(pid), "the task's process is gone")


class TestSlurmRestConformance(BackendExecutorConformance):
    # The same jobs submitted, cancelled and watched through slurmrestd instead of the client
    # commands; the same concurrency, for the same reason. The scenarios run through the client
    # commands only (TestSlurmConformance), which exercise the same cluster.
    concurrent_runs = TestSlurmConformance.concurrent_runs

    @pytest.fixture
    def environment(self, slurm_cluster: slurm_service.SlurmCluster) -> dict[str, Any]:
        return slurm_rest_environment(slurm_cluster)
