"""The ``stdio`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

import pytest

import wove_stdio
from wove import Executor
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_stdio import StdioExecutor


def test_loading_gives_the_worker_process_executor():
    executor_class = get_registry().executor_class("stdio", "default")

    assert executor_class is StdioExecutor
    assert issubclass(StdioExecutor, Executor)
    assert StdioExecutor.kind == "process"
    assert not StdioExecutor().runs_in_process


def test_public_names():
    assert wove_stdio.__all__ == ["StdioExecutor", "StdioSettings", "StdioWorkerStartError"]
    assert all(getattr(wove_stdio, name) for name in wove_stdio.__all__)
    assert StdioExecutor.__doc__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_stdio.Nope


class TestStdioPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "stdio"
    distribution = "wove-stdio"
    kind = "process"
    requires = ("cloudpickle",)
    backend_modules = ("wove_stdio._executor", "cloudpickle", "wove.stdio_worker")
