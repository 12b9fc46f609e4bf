"""The ``grpc`` executor for Wove: tasks run on a worker service reached over gRPC.

The service is ``wove worker grpc --bind HOST:PORT``, or :func:`add_worker_to_server` inside a
``grpc.aio`` server of your own. Wove finds the executor through the ``wove.executors`` entry
point (:mod:`wove_grpc.plugin`); the names below are imported on first use, so loading the
plugin never imports grpc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._executor import GrpcExecutor, GrpcSettings
    from ._service import WorkerServicer, add_worker_to_server, serve

__all__ = ["GrpcExecutor", "GrpcSettings", "WorkerServicer", "add_worker_to_server", "serve"]

_HOMES = {
    "GrpcExecutor": "_executor",
    "GrpcSettings": "_executor",
    "WorkerServicer": "_service",
    "add_worker_to_server": "_service",
    "serve": "_service",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_grpc' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
