"""The ``stdio`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

import wove_stdio
from wove import Executor
from wove._registry import get_registry, reset_registry
from wove_stdio import StdioExecutor


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WOVE_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


def test_entry_point_names_the_plugin_module():
    [entry_point] = importlib.metadata.entry_points(group="wove.executors", name="stdio")

    assert entry_point.value == "wove_stdio.plugin"
    assert entry_point.dist is not None
    assert entry_point.dist.name == "wove-stdio"


def test_registry_lists_stdio_with_its_metadata():
    info = get_registry().plugin("stdio")

    assert info is not None
    assert info.name == "stdio"
    assert info.distribution == "wove-stdio"
    assert info.version == importlib.metadata.version("wove-stdio")
    assert info.kind == "process"
    assert info.requires == ("cloudpickle",)
    assert info.install == "pip install wove-stdio"
    assert info.description
    assert "\n" not in info.description
    assert not info.is_broken


def test_loading_gives_the_worker_process_executor():
    executor_class = get_registry().executor_class("stdio", "default")

    assert executor_class is StdioExecutor
    assert issubclass(StdioExecutor, Executor)
    assert StdioExecutor.kind == "process"
    assert not StdioExecutor().runs_in_process


def test_public_names():
    assert wove_stdio.__all__ == ["StdioExecutor", "StdioSettings", "StdioWorkerStartError"]
    assert all(getattr(wove_stdio, name) for name in wove_stdio.__all__)
    assert StdioExecutor.__doc__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_stdio.Nope


def test_plugin_module_imports_nothing_beyond_its_package():
    # With wove already imported, the entry point's module may add only wove_stdio's own
    # modules, and not the executor: no worker machinery and no cloudpickle until a stdio
    # environment starts.
    script = textwrap.dedent(
        """
        import sys
        import wove.plugins
        before = set(sys.modules)
        import wove_stdio.plugin
        print("\\n".join(sorted(set(sys.modules) - before)))
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    added = set(done.stdout.split())
    assert added <= {"wove_stdio", "wove_stdio.plugin"}
    assert "wove_stdio._executor" not in added


def test_discovery_does_not_load_the_executor():
    script = textwrap.dedent(
        """
        import sys
        from wove._registry import get_registry
        info = get_registry().plugin("stdio")
        assert info is not None and not info.is_broken, info
        for name in ("wove_stdio._executor", "cloudpickle", "wove.stdio_worker"):
            assert name not in sys.modules, name
        print("ok")
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
