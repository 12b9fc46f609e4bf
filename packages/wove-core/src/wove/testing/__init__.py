"""The SDK for testing executor plugins: the conformance kits, and helpers for a plugin's tests.

A plugin subclasses :class:`ExecutorConformance` (in-process executors) or
:class:`RemoteExecutorConformance` (executors whose tasks leave the process) in its
``tests/test_conformance.py`` and
provides one fixture, ``environment``, with the environment definition to test; the suite runs
real weaves against the real backend through it::

    import pytest
    from wove.testing import RemoteExecutorConformance

    class TestStdioConformance(RemoteExecutorConformance):
        @pytest.fixture
        def environment(self):
            return {"executor": "stdio", "executor_config": {"processes": 2}}

:class:`BackendExecutorConformance` adds the callback-server checks for executors built on
:class:`wove.backends.BackendExecutor`.

:class:`PluginConformance` checks a plugin's packaging: entry point, metadata, and that
importing it loads no backend library.

For a plugin's own tests: :func:`configure_executor` and :func:`answer_in`, :func:`reset_state`
and :func:`executor_of` (also the ``wove_state``
and ``executor_of`` fixtures of the pytest plugin, :mod:`wove.testing.pytest_plugin`, with the
ini option ``wove_fresh_state``), :func:`stop_environments`, :func:`free_port`,
:class:`FlakyProxy`, and the task bodies the kits ship to workers (:func:`blocker`,
:func:`async_blocker`, :func:`waiter`, :func:`attempt_counter`, :func:`append_line` and
:func:`max_overlap` to read what they wrote); they run on a worker without pytest or Wove's
testing package installed.

Part of the plugin SDK (see :mod:`wove.plugins`): every name in ``__all__`` follows semantic
versioning, and a name that is going away warns for at least one minor release first.

Names load on first use: the kits import pytest, ``import wove`` never imports this package,
and the pytest plugin that pytest loads in every run imports neither the kits nor the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._backend import BackendExecutorConformance, FlakyProxy, free_port
    from ._base import stop_environments
    from ._bodies import (
        append_line,
        async_blocker,
        attempt_counter,
        blocker,
        max_overlap,
        waiter,
    )
    from ._conformance import ExecutorConformance, RemoteExecutorConformance
    from ._environments import answer_in, configure_executor
    from ._plugin import PluginConformance
    from ._scenarios import SCENARIO_HOOKS
    from ._state import executor_of, reset_state

__all__ = [
    # the kits
    "BackendExecutorConformance",
    "ExecutorConformance",
    "PluginConformance",
    "RemoteExecutorConformance",
    "SCENARIO_HOOKS",
    # process state and environments
    "answer_in",
    "configure_executor",
    "executor_of",
    "reset_state",
    "stop_environments",
    # network helpers
    "FlakyProxy",
    "free_port",
    # task bodies shipped to workers, and reading what they wrote
    "append_line",
    "async_blocker",
    "attempt_counter",
    "blocker",
    "max_overlap",
    "waiter",
]

#: Where each public name lives.
_EXPORTS: dict[str, str] = {
    "BackendExecutorConformance": "._backend",
    "FlakyProxy": "._backend",
    "free_port": "._backend",
    "stop_environments": "._base",
    "append_line": "._bodies",
    "async_blocker": "._bodies",
    "attempt_counter": "._bodies",
    "blocker": "._bodies",
    "max_overlap": "._bodies",
    "waiter": "._bodies",
    "ExecutorConformance": "._conformance",
    "answer_in": "._environments",
    "configure_executor": "._environments",
    "RemoteExecutorConformance": "._conformance",
    "PluginConformance": "._plugin",
    "SCENARIO_HOOKS": "._scenarios",
    "executor_of": "._state",
    "reset_state": "._state",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wove.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
