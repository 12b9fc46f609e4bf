"""The ``http`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import wove_http
from wove import Executor
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_http import HttpExecutor


def test_loading_gives_the_http_executor():
    executor_class = get_registry().executor_class("http", "default")

    assert executor_class is HttpExecutor
    assert issubclass(HttpExecutor, Executor)
    assert HttpExecutor.kind == "network"
    assert not HttpExecutor().runs_in_process


def test_the_worker_service_command_is_registered():
    assert "http" in [command.name for command in get_registry().commands()]


def test_public_names():
    assert wove_http.__all__ == ["HTTP_CONFIG_KEYS", "HttpExecutor", "WorkerApp", "create_app"]
    assert all(getattr(wove_http, name) for name in wove_http.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_http.Nope


def test_plugin_module_imports_neither_httpx_nor_uvicorn():
    script = textwrap.dedent(
        """
        import sys
        import wove.plugins
        before = set(sys.modules)
        import wove_http.plugin
        from wove.plugins import get_registry
        assert get_registry().plugin("http") is not None
        get_registry().commands()
        added = set(sys.modules) - before
        print("\\n".join(sorted(added)))
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    added = set(done.stdout.split())
    for heavy in ("httpx", "uvicorn", "wove_http._executor", "wove_http._service"):
        assert heavy not in added


class TestHttpPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "http"
    distribution = "wove-http"
    kind = "network"
    requires = ("httpx", "cloudpickle")
    backend_modules = ("httpx", "uvicorn", "wove_http._executor", "wove_http._service")
