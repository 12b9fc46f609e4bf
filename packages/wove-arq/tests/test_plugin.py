"""The ``arq`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

import pytest

import wove_arq
from wove.backends import BackendExecutor
from wove.testing import PluginConformance
from wove_arq import ArqAdapter, ArqExecutor


def test_public_names() -> None:
    assert wove_arq.__all__ == [
        "ARQ_CONFIG_KEYS",
        "WORKER_DEFAULTS",
        "ArqAdapter",
        "ArqExecutor",
        "worker_settings",
        "wove_run",
    ]
    assert all(getattr(wove_arq, name) for name in wove_arq.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_arq.Nope


def test_executor_drives_the_arq_adapter_and_accepts_its_keys() -> None:
    assert issubclass(ArqExecutor, BackendExecutor)
    assert ArqExecutor.adapter_class is ArqAdapter
    assert ArqExecutor.config_keys is not None
    assert ArqExecutor.config_keys >= wove_arq.ARQ_CONFIG_KEYS
    assert {
        "redis_url",
        "redis_settings",
        "pool",
        "queue",
        "enqueue_options",
    } <= ArqExecutor.config_keys


class TestArqPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "arq"
    distribution = "wove-arq"
    kind = "backend"
    requires = ("arq", "cloudpickle", "aiohttp")
    backend_modules = ("arq", "redis", "wove_arq._adapter", "wove_arq.worker")
