"""The ``temporal`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

import pytest

import wove_temporal
from wove.backends import BackendExecutor
from wove.testing import PluginConformance
from wove_temporal import TemporalAdapter, TemporalExecutor


def test_public_names() -> None:
    assert wove_temporal.__all__ == [
        "ACTIVITY_NAME",
        "TEMPORAL_CONFIG_KEYS",
        "WORKER_DEFAULTS",
        "WORKFLOW_NAME",
        "RunPayloadWorkflow",
        "TemporalAdapter",
        "TemporalExecutor",
        "build_worker",
        "run_payload_activity",
    ]
    assert all(getattr(wove_temporal, name) for name in wove_temporal.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_temporal.Nope


def test_executor_drives_the_temporal_adapter_and_accepts_its_keys() -> None:
    assert issubclass(TemporalExecutor, BackendExecutor)
    assert TemporalExecutor.adapter_class is TemporalAdapter
    assert TemporalExecutor.config_keys is not None
    assert TemporalExecutor.config_keys >= wove_temporal.TEMPORAL_CONFIG_KEYS
    assert {
        "client",
        "target_host",
        "namespace",
        "task_queue",
        "workflow_options",
        "activity_options",
    } <= TemporalExecutor.config_keys


class TestTemporalPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "temporal"
    distribution = "wove-temporal"
    kind = "backend"
    requires = ("temporalio", "cloudpickle", "aiohttp")
    backend_modules = ("temporalio", "wove_temporal._adapter", "wove_temporal.worker")
