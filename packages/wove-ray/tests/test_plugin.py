"""The ``ray`` plugin: its entry point, its metadata, its public names, and what importing it
costs."""

from __future__ import annotations

import pytest

import wove_ray
from wove import Executor
from wove.backends import BackendExecutor
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_ray import RAY_CONFIG_KEYS, REMOTE_OPTIONS, RayExecutor


def test_loading_gives_the_ray_executor() -> None:
    executor_class = get_registry().executor_class("ray", "default")

    assert executor_class is RayExecutor
    assert issubclass(RayExecutor, BackendExecutor)
    assert issubclass(RayExecutor, Executor)
    assert RayExecutor.kind == "backend"
    assert not RayExecutor().runs_in_process


def test_executor_accepts_the_adapter_keys_and_the_shared_ones() -> None:
    keys = RayExecutor.config_keys
    assert keys is not None
    assert {"address", "namespace", "remote_options", "cancel_force"} == RAY_CONFIG_KEYS
    assert RAY_CONFIG_KEYS | {"security", "callback_url", "status_interval"} <= keys
    assert {"num_cpus", "resources", "runtime_env", "max_retries"} <= REMOTE_OPTIONS
    assert "name" not in REMOTE_OPTIONS


def test_public_names() -> None:
    assert wove_ray.__all__ == [
        "RAY_CONFIG_KEYS",
        "REMOTE_OPTIONS",
        "RayAdapter",
        "RayExecutor",
        "run_payload",
    ]
    assert all(getattr(wove_ray, name) for name in wove_ray.__all__)
    assert wove_ray.run_payload.__module__ == "wove_ray.worker"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_ray.Nope


class TestRayPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "ray"
    distribution = "wove-ray"
    kind = "backend"
    requires = ("ray", "cloudpickle", "aiohttp")
    backend_modules = ("ray", "wove_ray._adapter")
