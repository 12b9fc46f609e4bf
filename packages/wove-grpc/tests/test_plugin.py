"""The ``grpc`` plugin: its entry point, its metadata, its command, and what importing it costs."""

from __future__ import annotations

import importlib.metadata

import pytest

import wove_grpc
from wove import Executor
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_grpc import GrpcExecutor


def test_distribution_requires_grpcio_and_the_dispatch_extra():
    requirements = importlib.metadata.requires("wove-grpc") or []

    assert any(r.startswith("grpcio") for r in requirements), requirements
    assert any(r.startswith("wove-core[dispatch]") for r in requirements), requirements


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


class TestGrpcPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "grpc"
    distribution = "wove-grpc"
    kind = "network"
    requires = ("grpc", "cloudpickle")
    backend_modules = ("grpc", "wove_grpc._executor")
