"""The ``websocket`` plugin: its entry point, its metadata, its command, and what importing it
costs."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

import wove_websocket
from wove import Executor
from wove._registry import get_registry, reset_registry
from wove_websocket import WebSocketExecutor


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WOVE_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


def test_entry_point_names_the_plugin_module():
    [entry_point] = importlib.metadata.entry_points(group="wove.executors", name="websocket")

    assert entry_point.value == "wove_websocket.plugin"
    assert entry_point.dist is not None
    assert entry_point.dist.name == "wove-websocket"


def test_registry_lists_websocket_with_its_metadata():
    info = get_registry().plugin("websocket")

    assert info is not None
    assert info.name == "websocket"
    assert info.distribution == "wove-websocket"
    assert info.version == importlib.metadata.version("wove-websocket")
    assert info.kind == "network"
    assert info.requires == ("websockets", "cloudpickle")
    assert info.install == "pip install wove-websocket"
    assert info.description
    assert "\n" not in info.description
    assert not info.is_broken


def test_loading_gives_the_network_executor():
    executor_class = get_registry().executor_class("websocket", "default")

    assert executor_class is WebSocketExecutor
    assert issubclass(WebSocketExecutor, Executor)
    assert WebSocketExecutor.kind == "network"
    assert not WebSocketExecutor().runs_in_process


def test_the_worker_command_is_registered():
    names = [command.name for command in get_registry().commands()]

    assert "websocket" in names


def test_public_names():
    assert wove_websocket.__all__ == ["WebSocketExecutor", "WebSocketSettings", "handler", "serve"]
    assert all(getattr(wove_websocket, name) for name in wove_websocket.__all__)
    assert WebSocketExecutor.__doc__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_websocket.Nope


def test_plugin_module_imports_no_backend():
    script = textwrap.dedent(
        """
        import sys
        import wove.plugins
        before = set(sys.modules)
        import wove_websocket.plugin
        print("\\n".join(sorted(set(sys.modules) - before)))
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    added = set(done.stdout.split())
    assert added <= {"wove_websocket", "wove_websocket.plugin"}
    assert not any(name.startswith("websockets") for name in added)


def test_discovery_does_not_import_websockets():
    script = textwrap.dedent(
        """
        import sys
        from wove._registry import get_registry
        registry = get_registry()
        info = registry.plugin("websocket")
        assert info is not None and not info.is_broken, info
        registry.commands()
        for name in ("wove_websocket._executor", "wove_websocket._service", "websockets"):
            assert name not in sys.modules, name
        print("ok")
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_worker_help_lists_the_options():
    done = subprocess.run(
        [sys.executable, "-m", "wove", "worker", "websocket", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    for option in ("--bind", "--tls-cert", "--tls-client-ca", "--security", "--max-body-bytes"):
        assert option in done.stdout
