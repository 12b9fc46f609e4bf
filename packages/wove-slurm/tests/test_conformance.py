"""The backend conformance suite against a real single-node Slurm cluster."""

from __future__ import annotations

from typing import Any

import pytest

from wove.testing import BackendExecutorConformance

from .conftest import slurm_environment, slurm_rest_environment, slurm_service


class TestSlurmConformance(BackendExecutorConformance):
    # scancel kills the job's processes, so a cancelled sync task stops for real (the default,
    # interrupts_sync_tasks = True, holds). Every run is a batch job that starts its own
    # Python interpreter (~0.3 s of CPU for the imports) on a 2-core test machine, and
    # slurmctld starts jobs in scheduling passes; 200 at once would measure the machine's CPU,
    # not the adapter, so 24 -- still more than the node's cores, so jobs share and queue.
    concurrent_runs = 24

    @pytest.fixture
    def environment(self, slurm_cluster: slurm_service.SlurmCluster) -> dict[str, Any]:
        return slurm_environment(slurm_cluster)


class TestSlurmRestConformance(BackendExecutorConformance):
    # The same jobs submitted, cancelled and watched through slurmrestd instead of the client
    # commands; the same concurrency, for the same reason.
    concurrent_runs = TestSlurmConformance.concurrent_runs

    @pytest.fixture
    def environment(self, slurm_cluster: slurm_service.SlurmCluster) -> dict[str, Any]:
        return slurm_rest_environment(slurm_cluster)
