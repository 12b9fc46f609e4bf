"""The ``taskiq`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

import pytest

import wove_taskiq
from wove.backends import BackendExecutor
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_taskiq import TaskiqAdapter, TaskiqExecutor


def test_loading_gives_the_taskiq_executor() -> None:
    executor_class = get_registry().executor_class("taskiq", "default")

    assert executor_class is TaskiqExecutor
    assert issubclass(TaskiqExecutor, BackendExecutor)
    assert TaskiqExecutor.adapter_class is TaskiqAdapter
    assert {"broker", "broker_url", "task_name", "labels", "security"} <= (
        TaskiqExecutor.config_keys or frozenset()
    )


def test_public_names() -> None:
    assert wove_taskiq.__all__ == [
        "DEFAULT_TASK_NAME",
        "RUN_ID_LABEL",
        "TASKIQ_CONFIG_KEYS",
        "TaskiqAdapter",
        "TaskiqExecutor",
        "register_wove_task",
    ]
    assert all(getattr(wove_taskiq, name) for name in wove_taskiq.__all__)
    assert wove_taskiq.DEFAULT_TASK_NAME == "wove.run"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_taskiq.Nope


class TestTaskiqPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "taskiq"
    distribution = "wove-taskiq"
    kind = "backend"
    requires = ("taskiq", "cloudpickle", "aiohttp")
    backend_modules = (
        "taskiq",
        "taskiq_redis",
        "redis",
        "wove_taskiq._adapter",
        "wove_taskiq.worker",
    )
