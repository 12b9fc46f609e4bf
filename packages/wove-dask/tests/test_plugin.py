"""The ``dask`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

import pytest

import wove_dask
from wove.backends import BackendExecutor
from wove.testing import PluginConformance
from wove_dask import DaskAdapter, DaskExecutor


def test_public_names() -> None:
    assert wove_dask.__all__ == [
        "DASK_CONFIG_KEYS",
        "NOT_CLAIMED",
        "SUBMIT_OPTIONS",
        "DaskAdapter",
        "DaskExecutor",
        "run_payload",
    ]
    assert all(getattr(wove_dask, name) for name in wove_dask.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_dask.Nope


def test_executor_drives_the_dask_adapter_and_accepts_its_keys() -> None:
    assert issubclass(DaskExecutor, BackendExecutor)
    assert DaskExecutor.adapter_class is DaskAdapter
    assert DaskExecutor.config_keys is not None
    assert DaskExecutor.config_keys >= wove_dask.DASK_CONFIG_KEYS
    assert {
        "address",
        "client",
        "submit_options",
        "connect_timeout",
        "idempotency_window",
        "security",
    } <= DaskExecutor.config_keys


class TestDaskPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "dask"
    distribution = "wove-dask"
    kind = "backend"
    requires = ("distributed", "cloudpickle", "aiohttp")
    backend_modules = ("dask", "distributed", "wove_dask._adapter", "wove_dask.worker")
