"""The backend conformance suite against the stand-in Kubernetes API, whose kubelet runs each
Job's Pod as a real ``python -m wove.backend_worker`` process.

Cancelling a run deletes its Job with background propagation, which deletes the Pod and so
kills its process: a sync task stops for real (``interrupts_sync_tasks`` keeps its strict
default).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from wove.testing import BackendExecutorConformance

from .conftest import k8s_config, k8s_standin


class TestKubernetesJobsConformance(BackendExecutorConformance):
    # Every run is a Job whose Pod is a fresh Python process importing the worker runtime
    # (about 0.3 s of CPU each); 200 at once on the 2 shared cores of a test machine would take
    # longer than the suite's 30 s hang guard, and measure only the machine.
    concurrent_runs: ClassVar[int] = 20

    @pytest.fixture
    def environment(self, standin: k8s_standin.StandIn) -> dict[str, Any]:
        return {"executor": "kubernetes_jobs", "executor_config": k8s_config(standin.url)}
