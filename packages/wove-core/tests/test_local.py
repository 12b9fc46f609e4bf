"""The built-in ``local`` executor: its entry point in wove-core, its metadata, and conformance."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from wove import InProcessExecutor, LocalExecutor
from wove._registry import get_registry, reset_registry
from wove.testing import ExecutorConformance, PluginConformance


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WOVE_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


@pytest.mark.usefixtures("fresh_registry")
def test_loading_gives_the_in_process_executor():
    executor_class = get_registry().executor_class("local", "default")

    assert executor_class is LocalExecutor
    assert issubclass(LocalExecutor, InProcessExecutor)
    assert LocalExecutor.kind == "local"
    assert LocalExecutor.config_keys == frozenset()
    assert LocalExecutor().runs_in_process


@pytest.mark.usefixtures("fresh_registry")
def test_local_comes_from_wove_core_so_the_base_install_is_enough():
    info = get_registry().plugin("local")

    assert info is not None
    assert info.distribution == "wove-core"
    assert info.install == "pip install wove-core"


class TestLocalPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "local"
    distribution = "wove-core"
    kind = "local"
    requires = ()
    plugin_module = "wove._local"
    plugin_imports = frozenset({"wove._executor", "wove._errors", "wove._options"})


class TestLocalConformance(ExecutorConformance):
    @pytest.fixture
    def environment(self) -> dict[str, Any]:
        return {"executor": "local"}
