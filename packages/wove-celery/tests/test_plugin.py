"""The ``celery`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

import pytest

import wove_celery
from wove.backends import BackendExecutor
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_celery import CeleryExecutor


def test_loading_gives_the_celery_executor() -> None:
    executor_class = get_registry().executor_class("celery", "default")

    assert executor_class is CeleryExecutor
    assert issubclass(CeleryExecutor, BackendExecutor)
    assert CeleryExecutor.kind == "backend"
    assert CeleryExecutor.config_keys is not None
    assert {"app", "broker_url", "result_backend", "task_name", "queue"} <= set(
        CeleryExecutor.config_keys
    )


def test_public_names() -> None:
    assert wove_celery.__all__ == [
        "DEFAULT_TASK_NAME",
        "CeleryAdapter",
        "CeleryExecutor",
        "register_wove_task",
    ]
    assert all(getattr(wove_celery, name) for name in wove_celery.__all__)
    assert wove_celery.DEFAULT_TASK_NAME == "wove.run"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_celery.Nope


class TestCeleryPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "celery"
    distribution = "wove-celery"
    kind = "backend"
    requires = ("celery", "cloudpickle", "aiohttp")
    backend_modules = ("celery", "kombu", "wove_celery._adapter", "wove_celery._worker")
