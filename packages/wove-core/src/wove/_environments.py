"""Turning environment names into running executors: one executor per environment per process.

An environment's executor is created the first time a task needs it, started once, reused by
every later weave, and stopped when the configuration that defined it is replaced or the
interpreter exits. Plugins are looked up only here, so a weave that stays local never pays for
more than a dictionary lookup once its environment is resolved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

from ._config import EnvironmentConfig, WoveConfig
from ._executor import Executor
from ._options import check_names
from ._registry import get_registry

__all__ = ["ResolvedEnvironment", "resolve_environment", "reset_environments"]


@dataclasses.dataclass
class ResolvedEnvironment:
    """An environment with its executor instance and whether it has been started."""

    config: EnvironmentConfig
    executor: Executor
    started: bool = False
    _start_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def in_process(self) -> bool:
        return self.executor.runs_in_process

    async def ensure_started(self, run_config: dict[str, Any]) -> None:
        """Start the executor the first time any weave uses it."""
        if self.started:
            return
        await self.executor.start(self.name, self.config.executor_config, run_config)
        self.started = True


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
            found = ResolvedEnvironment(environment, _create_executor(environment))
            stale = [k for k in _resolved if k[0] != config.generation]
            for old in stale:
                _retire(_resolved.pop(old))
            _resolved[key] = found
    return found


def _retire(environment: ResolvedEnvironment) -> None:
    """Stop an executor whose configuration was replaced, if it ever started."""
    if environment.started and not environment.in_process:
        try:
            asyncio.run(environment.executor.stop())
        except RuntimeError:
            # Called from inside a running loop: schedule the stop there instead.
            asyncio.get_running_loop().create_task(environment.executor.stop())


def reset_environments() -> None:
    """Forget every resolved environment (tests use this with a fresh configuration)."""
    with _resolved_lock:
        retired = list(_resolved.values())
        _resolved.clear()
    for environment in retired:
        _retire(environment)
