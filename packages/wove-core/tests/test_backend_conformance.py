"""The backend conformance suite against the example subprocess adapter: the adapter base,
the callback server and the worker-side reporter, end to end, with real processes."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from wove._registry import get_registry
from wove.plugins import RegisterExecutor, hookimpl
from wove.testing import BackendExecutorConformance

from .subprocess_backend import SubprocessExecutor

# Backend workers read the secret from WOVE_SECRET; the environment names the same variable.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))


class _Plugin:
    @hookimpl
    def register_executors(self, register: RegisterExecutor) -> None:
        register(name="subprocess", kind="backend", load=lambda: SubprocessExecutor)


@pytest.fixture(autouse=True)  # each test gets a fresh plugin registry (wove_fresh_state)
def subprocess_plugin() -> Iterator[None]:
    plugin = _Plugin()
    get_registry().register_plugin(plugin, distribution="wove-core-tests", name="subprocess")
    yield
    get_registry().unregister_plugin(plugin)


class TestSubprocessBackendConformance(BackendExecutorConformance):
    # One Python process per run: many at once would only measure this machine's CPU, and a
    # loaded machine needs more than the default guard to start even ten.
    concurrent_runs = 10
    hang_guard_seconds = 90.0

    @pytest.fixture
    def environment(self) -> dict[str, Any]:
        return {
            "executor": "subprocess",
            "executor_config": {
                "security": "env:WOVE_SECRET",
                "worker_heartbeat_seconds": 0.5,
                "status_interval": 0.2,
            },
        }
