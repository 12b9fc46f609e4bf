"""The executor conformance suite against real ``wove worker grpc`` services: plain loopback,
and mutual TLS with certificates from ``trustme``."""

from __future__ import annotations

from typing import Any

import pytest

from wove.plugins import Security
from wove.testing import RemoteExecutorConformance
from wove_grpc import GrpcExecutor


class _GrpcConformance(RemoteExecutorConformance):
    # The service runs sync tasks in threads: a cancelled sync task's thread runs on (its
    # result is discarded), so the strict rule does not hold.
    interrupts_sync_tasks = False

    def _executor(self, environment_name: str) -> GrpcExecutor:
        executor = self.executor_of(environment_name)
        assert isinstance(executor, GrpcExecutor)
        return executor

    async def asend_raw(self, environment_name: str, line: bytes) -> None:
        await self._executor(environment_name).send_raw(line)

    def security_of(self, environment_name: str) -> Security | None:
        return self._executor(environment_name).security


class TestGrpcConformance(_GrpcConformance):
    @pytest.fixture
    def environment(self, service: Any) -> dict[str, Any]:
        return {
            "executor": "grpc",
            "executor_config": {"target": service.target, "security": "env:WOVE_TEST_SECRET"},
        }


class TestGrpcTlsConformance(_GrpcConformance):
    @pytest.fixture
    def environment(self, tls_service: Any, certificates: Any) -> dict[str, Any]:
        return {
            "executor": "grpc",
            "executor_config": {
                "target": f"localhost:{tls_service.port}",
                "security": "env:WOVE_TEST_SECRET",
                "ca_file": str(certificates.ca_file),
                "cert_file": str(certificates.client_cert),
                "key_file": str(certificates.client_key),
            },
        }
