"""The ``grpc`` plugin: its entry point, its metadata, its command, and what importing it costs."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

import wove_grpc
from wove import Executor
from wove._registry import get_registry, reset_registry
from wove_grpc import GrpcExecutor


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WOVE_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


def test_entry_point_names_the_plugin_module():
    [entry_point] = importlib.metadata.entry_points(group="wove.executors", name="grpc")

    assert entry_point.value == "wove_grpc.plugin"
    assert entry_point.dist is not None
    assert entry_point.dist.name == "wove-grpc"


def test_distribution_requires_grpcio_and_the_dispatch_extra():
    requirements = importlib.metadata.requires("wove-grpc") or []

    assert any(r.startswith("grpcio") for r in requirements), requirements
    assert any(r.startswith("wove-core[dispatch]") for r in requirements), requirements


def test_registry_lists_grpc_with_its_metadata():
    info = get_registry().plugin("grpc")

    assert info is not None
    assert info.name == "grpc"
    assert info.distribution == "wove-grpc"
    assert info.version == importlib.metadata.version("wove-grpc")
    assert info.kind == "network"
    assert info.requires == ("grpc", "cloudpickle")
    assert info.install == "pip install wove-grpc"
    assert info.description
    assert "\n" not in info.description
    assert not info.is_broken


def test_loading_gives_the_network_executor():
    executor_class = get_registry().executor_class("grpc", "default")

    assert executor_class is GrpcExecutor
    assert issubclass(GrpcExecutor, Executor)
    assert GrpcExecutor.kind == "network"
    assert not GrpcExecutor().runs_in_process


def test_the_worker_command_is_registered():
    commands = {command.name: command for command in get_registry().commands()}
    assert commands["grpc"].distribution == "wove-grpc"


def test_public_names():
    assert wove_grpc.__all__ == [
        "GrpcExecutor",
        "GrpcSettings",
        "WorkerServicer",
        "add_worker_to_server",
        "serve",
    ]
    assert all(getattr(wove_grpc, name) for name in wove_grpc.__all__)
    assert GrpcExecutor.__doc__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_grpc.Nope


def test_plugin_module_imports_neither_grpc_nor_the_executor():
    script = textwrap.dedent(
        """
        import sys
        import wove.plugins
        before = set(sys.modules)
        import wove_grpc.plugin
        added = set(sys.modules) - before
        print("\\n".join(sorted(added)))
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    added = set(done.stdout.split())
    assert added <= {"wove_grpc", "wove_grpc.plugin"}, added
    assert not any(name == "grpc" or name.startswith("grpc.") for name in added)


def test_discovery_does_not_import_grpc():
    script = textwrap.dedent(
        """
        import sys
        from wove._registry import get_registry
        registry = get_registry()
        info = registry.plugin("grpc")
        assert info is not None and not info.is_broken, info
        registry.commands()
        for name in ("grpc", "wove_grpc._executor", "wove_grpc._service", "cloudpickle"):
            assert name not in sys.modules, name
        print("ok")
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
