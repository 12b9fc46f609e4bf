"""The conformance kits, subclassed for the executors in broken_executors.py and the plugins in
broken_plugins/, exactly as a plugin's own tests subclass them.

Not collected by the core test run (the name does not start with ``test_``):
test_kit_catches_broken_executors.py runs chosen checks from here in a fresh pytest process,
with the plugins' throwaway distributions on ``PYTHONPATH``, and reads which checks failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from wove.plugins import Executor, RegisterExecutor, Security, get_registry, hookimpl
from wove.testing import PluginConformance, RemoteExecutorConformance

from .broken_executors import (
    DeafExecutor,
    LossyExecutor,
    PipeExecutor,
    TwiceExecutor,
    UnsignedExecutor,
)


class _Offer:
    """An in-memory plugin offering one executor class under one name."""

    def __init__(self, name: str, executor: type[Executor]) -> None:
        self.name = name
        self.executor = executor

    @hookimpl
    def register_executors(self, register: RegisterExecutor) -> None:
        register(name=self.name, kind="process", load=lambda: self.executor)


class _PipeSuite(RemoteExecutorConformance):
    """The remote kit for one executor of broken_executors.py, registered as a plugin."""

    executor_name: ClassVar[str]
    executor_class: ClassVar[type[PipeExecutor]]
    # The stdio worker runs sync tasks in threads and these executors never restart it.
    interrupts_sync_tasks = False

    @pytest.fixture
    def environment(self) -> Iterator[dict[str, Any]]:
        plugin = _Offer(self.executor_name, self.executor_class)
        registry = get_registry()
        registry.register_plugin(plugin, distribution="wove-core-tests", name=self.executor_name)
        yield {"executor": self.executor_name, "executor_config": {"processes": 2}}
        registry.unregister_plugin(plugin)

    def _executor(self, environment_name: str) -> PipeExecutor:
        executor = self.executor_of(environment_name)
        assert isinstance(executor, PipeExecutor)
        return executor

    async def asend_raw(self, environment_name: str, line: bytes) -> None:
        await self._executor(environment_name).write_raw(line)

    def security_of(self, environment_name: str) -> Security | None:
        return self._executor(environment_name).security


class TestPipe(_PipeSuite):
    """The working executor: every check these tests pick passes."""

    executor_name = "pipe"
    executor_class = PipeExecutor


class TestLossy(_PipeSuite):
    executor_name = "lossy"
    executor_class = LossyExecutor
    # The dropped run is found when the hang guard fires; no need to wait the default 30 s.
    hang_guard_seconds = 3.0


class TestTwice(_PipeSuite):
    executor_name = "twice"
    executor_class = TwiceExecutor


class TestDeaf(_PipeSuite):
    executor_name = "deaf"
    executor_class = DeafExecutor


class TestUnsigned(_PipeSuite):
    executor_name = "unsigned"
    executor_class = UnsignedExecutor


class TestFinchPlugin(PluginConformance):
    """A plugin packaged right: every check passes."""

    executor_name = "finch"
    distribution = "wove-finch"
    kind = "network"
    requires = ("finchlib",)


class TestPigeonPlugin(PluginConformance):
    """A plugin whose hook imports its backend library, pigeonlib, at discovery."""

    executor_name = "pigeon"
    distribution = "wove-pigeon"
    kind = "network"
    requires = ("pigeonlib",)


class TestPigeonPluginDeclaringNothing(TestPigeonPlugin):
    """The same plugin, checked by a subclass that declares neither ``requires`` nor
    ``backend_modules`` (as wove-local's does): discovery is still checked."""

    requires = ()
