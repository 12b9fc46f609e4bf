"""The plugin SDK (docs/sdk.md): five public modules, each name in exactly one of them, every
name importable, and the worker side still reachable under its wove 2.x path."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from types import ModuleType

import pytest

import wove.integrations.worker
import wove.plugins
import wove.worker

SDK_MODULES = ("wove.plugins", "wove.backends", "wove.network", "wove.worker", "wove.testing")


@pytest.fixture(params=SDK_MODULES)
def sdk_module(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


def test_every_name_of_an_sdk_module_can_be_imported(sdk_module: ModuleType) -> None:
    missing = [name for name in sdk_module.__all__ if not hasattr(sdk_module, name)]

    assert sdk_module.__all__
    assert not missing


def test_no_name_is_in_two_sdk_modules() -> None:
    homes: dict[str, list[str]] = {}
    for module in SDK_MODULES:
        for name in importlib.import_module(module).__all__:
            homes.setdefault(name, []).append(module)

    assert {name: where for name, where in homes.items() if len(where) > 1} == {}


def test_each_sdk_module_states_the_stability_policy(sdk_module: ModuleType) -> None:
    assert sdk_module.__doc__ is not None
    assert "semantic" in sdk_module.__doc__
    assert "versioning" in sdk_module.__doc__


def test_wove_integrations_worker_gives_the_same_objects_as_wove_worker() -> None:
    for name in wove.worker.__all__:
        assert getattr(wove.integrations.worker, name) is getattr(wove.worker, name), name


def test_hook_protocols_keep_their_public_module() -> None:
    for name in ("RegisterExecutor", "RegisterCommand", "RegisterDiagnostic", "WoveHookSpecs"):
        assert getattr(wove.plugins, name).__module__ == "wove.plugins"


def test_values_cross_the_boundary_through_dumps_and_loads() -> None:
    offset = 40

    def add(value: int) -> int:
        return value + offset

    data = wove.plugins.dumps(add, "testing the SDK")

    assert wove.plugins.loads(data, "testing the SDK")(2) == 42


def test_submit_to_dispatch_loop_runs_the_coroutine_where_executors_live() -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert wove.plugins.submit_to_dispatch_loop(where()).result(timeout=30) == "wove-dispatch"


def test_preload_imports_the_worker_runtime_a_job_needs() -> None:
    code = (
        "import sys, wove.worker; wove.worker.preload(); "
        "print(all(m in sys.modules for m in "
        "('wove.integrations._loop', 'wove.integrations._reporter', 'aiohttp', 'cloudpickle')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert done.stdout.strip() == "True"
