"""The ``local`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

import wove_local
from wove import InProcessExecutor
from wove._registry import get_registry, reset_registry
from wove_local import LocalExecutor


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WOVE_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


def test_entry_point_names_the_plugin_module():
    [entry_point] = importlib.metadata.entry_points(group="wove.executors", name="local")

    assert entry_point.value == "wove_local.plugin"
    assert entry_point.dist is not None
    assert entry_point.dist.name == "wove-local"


def test_registry_lists_local_with_its_metadata():
    info = get_registry().plugin("local")

    assert info is not None
    assert info.distribution == "wove-local"
    assert info.version == importlib.metadata.version("wove-local")
    assert info.kind == "local"
    assert info.requires == ()
    assert info.install == "pip install wove-local"
    assert info.description
    assert not info.is_broken


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


def test_plugin_module_imports_nothing_beyond_its_package():
    # With wove already imported, the entry point's module may add only wove_local's own modules.
    script = textwrap.dedent(
        """
        import sys
        import wove.plugins
        before = set(sys.modules)
        import wove_local.plugin
        print("\\n".join(sorted(set(sys.modules) - before)))
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    added = set(done.stdout.split())
    assert added <= {"wove_local", "wove_local._executor", "wove_local.plugin"}
