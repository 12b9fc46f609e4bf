"""The backend conformance suite, end to end through Redis and real ``taskiq worker`` processes."""

from __future__ import annotations

from typing import Any

import pytest

from wove.testing import BackendExecutorConformance


class TestTaskiqConformance(BackendExecutorConformance):
    # Taskiq runs the payload task on its event loop, and Wove's runtime calls a sync body in
    # a thread: nothing can stop that thread. A cancelled sync run is reported cancelled at
    # once and its result discarded, but the body runs to its end.
    interrupts_sync_tasks = False

    @pytest.fixture
    def environment(self, environment_config: dict[str, Any]) -> dict[str, Any]:
        return environment_config
