"""The executor conformance suite against real ``wove worker websocket`` services: plain
``ws://`` on loopback, and ``wss://`` with mutual TLS."""

from __future__ import annotations

from typing import Any

import pytest

from wove.plugins import Security
from wove.testing import RemoteExecutorConformance
from wove_websocket import WebSocketExecutor

SECRET_ENV = "WOVE_TEST_SECRET"

pytestmark = pytest.mark.slow


class _WebSocketConformance(RemoteExecutorConformance):
    # The service runs sync tasks in threads, which cannot be stopped: a cancelled sync run
    # reports task_cancelled at once and its thread runs on until the callable returns.
    interrupts_sync_tasks = False

    def _executor(self, environment_name: str) -> WebSocketExecutor:
        executor = self.executor_of(environment_name)
        assert isinstance(executor, WebSocketExecutor)
        return executor

    async def asend_raw(self, environment_name: str, line: bytes) -> None:
        await self._executor(environment_name).send_raw(line)

    def security_of(self, environment_name: str) -> Security | None:
        return self._executor(environment_name).security


class TestWebSocketConformance(_WebSocketConformance):
    """ws:// on loopback, frames signed with the shared secret."""

    @pytest.fixture
    def environment(self, service: Any) -> dict[str, Any]:
        return {
            "executor": "websocket",
            "executor_config": {"url": service.url, "security": f"env:{SECRET_ENV}"},
        }


class TestWebSocketTLSConformance(_WebSocketConformance):
    """wss:// with a private CA and a client certificate (mutual TLS), two connections."""

    @pytest.fixture
    def environment(self, tls_service: Any, certificates: Any) -> dict[str, Any]:
        return {
            "executor": "websocket",
            "executor_config": {
                "url": tls_service.url,
                "security": f"env:{SECRET_ENV}",
                "ca_file": str(certificates.ca),
                "cert_file": str(certificates.client_cert),
                "key_file": str(certificates.client_key),
                "connections": 2,
            },
        }
