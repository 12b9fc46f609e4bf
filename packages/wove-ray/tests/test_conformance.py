"""The backend conformance suite against a real ``ray start --head`` cluster.

Each task asks for half a CPU, so the 2-CPU node runs four at once. Cancelling a running task
force-kills its Ray worker (``cancel_force`` keeps its default), which stops a sync task too, so
``interrupts_sync_tasks`` keeps its strict default.
"""

from __future__ import annotations

from typing import Any

import pytest

from wove.testing import BackendExecutorConformance

from .conftest import ray_config


class TestRayConformance(BackendExecutorConformance):
    @pytest.fixture
    def environment(self, ray_head: Any) -> dict[str, Any]:
        return {"executor": "ray", "executor_config": ray_config(ray_head.address)}
