"""The executor conformance suite: the standard tests every executor plugin runs.

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

Importing this package imports pytest; ``import wove`` never imports it.
"""

from __future__ import annotations

from ._backend import BackendExecutorConformance, FlakyProxy, free_port
from ._base import stop_environments
from ._conformance import ExecutorConformance, RemoteExecutorConformance
from ._plugin import PluginConformance

__all__ = [
    "BackendExecutorConformance",
    "ExecutorConformance",
    "FlakyProxy",
    "PluginConformance",
    "RemoteExecutorConformance",
    "free_port",
    "stop_environments",
]
