"""The ``dask`` executor for Wove: tasks run as Dask tasks on a distributed cluster.

The weave side is :class:`DaskExecutor` (found through the ``wove.executors`` entry point,
:mod:`wove_dask.plugin`); the worker side is :func:`run_payload`, the function each Wove run
is submitted as. The names below are imported on first use, so loading the plugin does not
import dask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import DASK_CONFIG_KEYS, SUBMIT_OPTIONS, DaskAdapter, DaskExecutor
    from .worker import NOT_CLAIMED, run_payload

__all__ = [
    "DASK_CONFIG_KEYS",
    "NOT_CLAIMED",
    "SUBMIT_OPTIONS",
    "DaskAdapter",
    "DaskExecutor",
    "run_payload",
]

_HOMES = {
    "DASK_CONFIG_KEYS": "_adapter",
    "SUBMIT_OPTIONS": "_adapter",
    "DaskAdapter": "_adapter",
    "DaskExecutor": "_adapter",
    "NOT_CLAIMED": "worker",
    "run_payload": "worker",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_dask' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
