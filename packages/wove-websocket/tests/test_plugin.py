"""The ``websocket`` plugin: its entry point, its metadata, its command, and what importing it
costs."""

from __future__ import annotations

import subprocess
import sys

import pytest

import wove_websocket
from wove import Executor
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_websocket import WebSocketExecutor


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


class TestWebSocketPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "websocket"
    distribution = "wove-websocket"
    kind = "network"
    requires = ("websockets", "cloudpickle")
    backend_modules = ("websockets",)
