"""The executor conformance suite, run against real ``stdio`` worker processes."""

from __future__ import annotations

from typing import Any

import pytest

from wove.plugins import Security
from wove.testing import RemoteExecutorConformance
from wove_stdio import StdioExecutor

# Every test starts a fresh pool of worker processes: about a minute in all on a small machine.
pytestmark = pytest.mark.slow


class TestStdioConformance(RemoteExecutorConformance):
    """The standard suite through real weaves, on a pool of two workers.

    Cancelled sync tasks are really stopped (their worker is recycled), so
    ``interrupts_sync_tasks`` keeps its default.
    """

    @pytest.fixture
    def environment(self) -> dict[str, Any]:
        return {"executor": "stdio", "executor_config": {"processes": 2}}

    def _executor(self, environment_name: str) -> StdioExecutor:
        executor = self.executor_of(environment_name)
        assert isinstance(executor, StdioExecutor)
        return executor

    async def asend_raw(self, environment_name: str, line: bytes) -> None:
        # Always the oldest live worker, so a replay meets the cache that saw the original.
        await self._executor(environment_name).write_raw(line)

    def security_of(self, environment_name: str) -> Security | None:
        return self._executor(environment_name).security
