"""The ``http`` executor for Wove: tasks run on a worker service over HTTP.

The executor (:class:`HttpExecutor`) posts each signed ``run_task`` line to ``<url>/runs`` and
reads the run's signed events from the streamed response; the worker service is the ASGI app
from :func:`create_app`, served by ``wove worker http``. Wove finds the executor through the
``wove.executors`` entry point (:mod:`wove_http.plugin`); the names below are imported on first
use, so loading the plugin imports neither httpx nor uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._executor import HTTP_CONFIG_KEYS, HttpExecutor
    from ._service import WorkerApp, create_app

__all__ = ["HTTP_CONFIG_KEYS", "HttpExecutor", "WorkerApp", "create_app"]

_HOMES = {
    "HTTP_CONFIG_KEYS": "_executor",
    "HttpExecutor": "_executor",
    "WorkerApp": "_service",
    "create_app": "_service",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_http' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
