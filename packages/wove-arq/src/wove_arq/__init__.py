"""The ``arq`` executor for Wove: tasks run as ARQ jobs on asyncio workers over Redis.

The weave side is :class:`ArqExecutor` (found through the ``wove.executors`` entry point,
:mod:`wove_arq.plugin`); the worker side is :func:`wove_run`, the ARQ function that runs a
payload, and :func:`worker_settings`, which builds the ``WorkerSettings`` class the ``arq``
command starts. The names below are imported on first use, so loading the plugin does not
import arq.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import ARQ_CONFIG_KEYS, ArqAdapter, ArqExecutor
    from .worker import WORKER_DEFAULTS, worker_settings, wove_run

__all__ = [
    "ARQ_CONFIG_KEYS",
    "WORKER_DEFAULTS",
    "ArqAdapter",
    "ArqExecutor",
    "worker_settings",
    "wove_run",
]

_HOMES = {
    "ARQ_CONFIG_KEYS": "_adapter",
    "ArqAdapter": "_adapter",
    "ArqExecutor": "_adapter",
    "WORKER_DEFAULTS": "worker",
    "worker_settings": "worker",
    "wove_run": "worker",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_arq' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
