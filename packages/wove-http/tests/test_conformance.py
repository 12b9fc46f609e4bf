"""The executor conformance suite against real ``wove worker http`` processes: plain HTTP on
loopback, and HTTPS with certificates made by trustme."""

from __future__ import annotations

from typing import Any

import pytest

from wove.plugins import Security
from wove.testing import RemoteExecutorConformance
from wove_http import HttpExecutor

from .worker_services import SECRET_VARIABLE, Service


class _HttpConformance(RemoteExecutorConformance):
    # Sync task bodies run in threads of the service process, which cannot be interrupted.
    interrupts_sync_tasks = False

    def _executor(self, environment_name: str) -> HttpExecutor:
        executor = self.executor_of(environment_name)
        assert isinstance(executor, HttpExecutor)
        return executor

    async def asend_raw(self, environment_name: str, line: bytes) -> None:
        await self._executor(environment_name).post_raw(line)

    def security_of(self, environment_name: str) -> Security | None:
        return self._executor(environment_name).security


class TestHttpConformance(_HttpConformance):
    @pytest.fixture
    def environment(self, http_service: Service) -> dict[str, Any]:
        return {
            "executor": "http",
            "executor_config": {
                "url": http_service.url,
                "security": f"env:{SECRET_VARIABLE}",
                # Tests kill the service on purpose; on a loaded machine its restart can take
                # longer than the default 10 s the executor keeps retrying a refused connect.
                "connect_timeout": 30,
            },
        }


class TestHttpsConformance(_HttpConformance):
    @pytest.fixture
    def environment(self, https_service: Service, certificates: dict[str, str]) -> dict[str, Any]:
        return {
            "executor": "http",
            "executor_config": {
                "url": https_service.url,
                "security": f"env:{SECRET_VARIABLE}",
                "ca_file": certificates["ca"],
                "connect_timeout": 30,
            },
        }
