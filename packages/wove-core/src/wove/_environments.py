"""Turning environment names into running executors: one executor per environment per process.

An environment's executor is created the first time a task needs it, started once, reused by
every later weave, and stopped when the configuration that defined it is replaced or the
interpreter exits. Plugins are looked up only here, so a weave that stays local never pays for
more than a dictionary lookup once its environment is resolved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
from typing import Any

from ._config import EnvironmentConfig, WoveConfig
from ._delivery import Dispatcher, dispatch_loop, register_dispatcher
from ._errors import MissingDispatchFeatureError
from ._executor import Executor
from ._options import check_names
from ._registry import get_registry
from ._serializer import has_dispatch

__all__ = ["ResolvedEnvironment", "resolve_environment", "reset_environments"]


@dataclasses.dataclass
class ResolvedEnvironment:
    """An environment with its executor instance and whether it has been started."""

    config: EnvironmentConfig
    executor: Executor
    started: bool = False
    #: Submits runs and routes events for an out-of-process executor (``None`` in process).
    dispatcher: Dispatcher | None = None
    _starting: concurrent.futures.Future[None] | None = None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def in_process(self) -> bool:
        return self.executor.runs_in_process

    async def ensure_started(self, run_config: dict[str, Any]) -> None:
        """Start the executor the first time any weave uses it.

        Out-of-process executors start on the dispatch loop, where they live from then on; one
        whose event stream broke is started afresh by the next run that needs it.
        """
        if self.started:
            if self.dispatcher is None or self.dispatcher.is_started:
                return
            with self._lock:
                self.started = False
                self._starting = None
        if self.dispatcher is None:
            await self.executor.start(self.name, self.config.executor_config, run_config)
            self.started = True
            return
        starting = self.begin_start(run_config)
        try:
            await asyncio.wrap_future(starting)
        except BaseException:
            with self._lock:
                if self._starting is starting:
                    self._starting = None  # let a later weave try again
            raise
        self.started = True

    def begin_start(self, run_config: dict[str, Any]) -> concurrent.futures.Future[None]:
        """Start an out-of-process executor on the dispatch loop (once) and return its future.

        Weaves that need the environment at the same time share one start; a weave awaits it
        (through :meth:`ensure_started`) before any of its tasks starts.
        """
        assert self.dispatcher is not None
        with self._lock:
            if self._starting is None:
                starting = self.dispatcher.start(self.config.executor_config, run_config)
                self._starting = dispatch_loop.run(starting)
            return self._starting

    def require_dispatch(self) -> None:
        """Fail before anything is submitted when the dispatch serializer is missing."""
        if self.dispatcher is not None and not has_dispatch():
            raise MissingDispatchFeatureError(
                f"environment {self.name!r} (executor {self.config.executor_name!r})"
            )


_resolved: dict[tuple[int, str], ResolvedEnvironment] = {}
_resolved_lock = threading.Lock()


def _create_executor(environment: EnvironmentConfig) -> Executor:
    if isinstance(environment.executor, Executor):
        executor = environment.executor
    else:
        registry = get_registry()
        registry.check_requirements(environment.executor, environment.name)
        executor_class = registry.executor_class(environment.executor, environment.name)
        executor = executor_class()
    allowed = executor.config_keys
    if allowed is not None:
        check_names(
            environment.executor_config,
            allowed,
            f"executor_config of environment {environment.name!r} "
            f"(executor {environment.executor_name!r})",
        )
    return executor


def resolve_environment(config: WoveConfig, name: str) -> ResolvedEnvironment:
    """Return the environment ``name`` of ``config`` with its executor, creating it once."""
    key = (config.generation, name)
    found = _resolved.get(key)
    if found is not None:
        return found
    with _resolved_lock:
        found = _resolved.get(key)
        if found is None:
            environment = config.environment(name)
            executor = _create_executor(environment)
            dispatcher = (
                None
                if executor.runs_in_process
                else register_dispatcher(Dispatcher(executor, environment.name))
            )
            found = ResolvedEnvironment(environment, executor, dispatcher=dispatcher)
            stale = [k for k in _resolved if k[0] != config.generation]
            for old in stale:
                _retire(_resolved.pop(old))
            _resolved[key] = found
    return found


def _retire(environment: ResolvedEnvironment, wait: bool = False) -> None:
    """Stop the executor of a replaced configuration if it ever started (or is starting)."""
    dispatcher = environment.dispatcher
    if dispatcher is None or (environment._starting is None and not environment.started):
        return
    environment.started = False
    environment._starting = None
    stopping = dispatch_loop.run(dispatcher.stop())
    if wait:
        stopping.result(timeout=30)


def reset_environments() -> None:
    """Forget every resolved environment (tests use this with a fresh configuration)."""
    with _resolved_lock:
        retired = list(_resolved.values())
        _resolved.clear()
    for environment in retired:
        _retire(environment, wait=True)
