"""The backend conformance suite against a real ``ray start --head`` cluster, with the
scenario of a Ray worker killed mid-task.

Each task asks for half a CPU, so the 2-CPU node runs four at once. Cancelling a running task
force-kills its Ray worker (``cancel_force`` keeps its default), which stops a sync task too, so
``interrupts_sync_tasks`` keeps its strict default.
"""

from __future__ import annotations

import os
import signal
from typing import Any, ClassVar

import pytest

from wove.testing import BackendExecutorConformance

from .conftest import ray_config


class TestRayConformance(BackendExecutorConformance):
    # Ray reports the dead worker at the next status poll, unless the silence is noticed first.
    killed_worker_message: ClassVar[str] = (
        r"ray reports job .* failed \(WorkerCrashedError|sent nothing .* probably killed"
    )

    @pytest.fixture
    def environment(self, ray_head: Any) -> dict[str, Any]:
        return {"executor": "ray", "executor_config": ray_config(ray_head.address)}

    def kill_worker(self, job_id: str, pid: int) -> None:
        # Ray starts a new worker for the next task by itself.
        os.kill(pid, signal.SIGKILL)
