"""The ``local`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import wove_local
from wove import InProcessExecutor
from wove._registry import get_registry, reset_registry
from wove.testing import PluginConformance
from wove_local import LocalExecutor


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WOVE_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


def test_loading_gives_the_in_process_executor():
    executor_class = get_registry().executor_class("local", "default")

    assert executor_class is LocalExecutor
    assert issubclass(LocalExecutor, InProcessExecutor)
    assert LocalExecutor.kind == "local"
    assert LocalExecutor.config_keys == frozenset()
    assert LocalExecutor().runs_in_process


def test_public_names():
    assert wove_local.__all__ == ["LocalExecutor"]
    assert LocalExecutor.__doc__
    assert "fast path" in LocalExecutor.__doc__


class TestLocalPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "local"
    distribution = "wove-local"
    kind = "local"
    requires = ()
    backend_modules = ()
    plugin_imports = frozenset({"wove_local._executor"})
