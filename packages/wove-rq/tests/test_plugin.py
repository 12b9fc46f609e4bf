"""The ``rq`` plugin: its entry point, its metadata, its public names, and what importing it
costs."""

from __future__ import annotations

import pytest

import wove_rq
from wove import Executor
from wove.backends import BackendExecutor
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_rq import RQ_CONFIG_KEYS, RQExecutor


def test_loading_gives_the_rq_executor() -> None:
    executor_class = get_registry().executor_class("rq", "default")

    assert executor_class is RQExecutor
    assert issubclass(RQExecutor, BackendExecutor)
    assert issubclass(RQExecutor, Executor)
    assert RQExecutor.kind == "backend"
    assert not RQExecutor().runs_in_process


def test_executor_accepts_the_adapter_keys_and_the_shared_ones() -> None:
    keys = RQExecutor.config_keys
    assert keys is not None
    assert {"redis_url", "connection", "queue", "enqueue_options"} == RQ_CONFIG_KEYS
    assert RQ_CONFIG_KEYS | {"security", "callback_url", "status_interval"} <= keys


def test_public_names() -> None:
    assert wove_rq.__all__ == [
        "RQ_CONFIG_KEYS",
        "RQAdapter",
        "RQExecutor",
        "WoveSimpleWorker",
        "WoveWorker",
        "rq_job_id",
        "run_payload",
    ]
    assert all(getattr(wove_rq, name) for name in wove_rq.__all__)
    assert wove_rq.run_payload.__module__ == "wove_rq.worker"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_rq.Nope


class TestRQPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "rq"
    distribution = "wove-rq"
    kind = "backend"
    requires = ("rq", "cloudpickle", "aiohttp")
    backend_modules = ("rq", "redis", "wove_rq._adapter", "wove_rq.worker")
