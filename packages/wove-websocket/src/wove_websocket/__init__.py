"""The ``websocket`` executor for Wove: tasks run on a worker service over WebSocket.

The executor keeps a few persistent connections to a ``wove worker websocket`` service and
multiplexes every run over them as signed lines in binary messages. The service side is
importable too: :func:`handler` turns a :class:`wove.network.ServiceSessions` into a connection
handler for :func:`websockets.asyncio.server.serve`, and :func:`serve` runs a whole service.
Wove finds the executor through the ``wove.executors`` entry point (:mod:`wove_websocket.plugin`);
the names below are imported on first use, so loading the plugin never imports ``websockets``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._executor import WebSocketExecutor, WebSocketSettings
    from ._service import handler, serve

__all__ = ["WebSocketExecutor", "WebSocketSettings", "handler", "serve"]

_HOMES = {
    "WebSocketExecutor": "_executor",
    "WebSocketSettings": "_executor",
    "handler": "_service",
    "serve": "_service",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is not None:
        import importlib

        return getattr(importlib.import_module(f".{home}", __name__), name)
    raise AttributeError(f"module 'wove_websocket' has no attribute {name!r}")
