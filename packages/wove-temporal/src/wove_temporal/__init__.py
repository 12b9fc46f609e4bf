"""The ``temporal`` executor for Wove: tasks run as Temporal workflows on Temporal workers.

The weave side is :class:`TemporalExecutor` (found through the ``wove.executors`` entry point,
:mod:`wove_temporal.plugin`); the worker side is :class:`RunPayloadWorkflow`, the activity
:func:`run_payload_activity` it executes, and :func:`build_worker`, which builds a
``temporalio`` worker running both. The names below are imported on first use, so loading the
plugin does not import temporalio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import TEMPORAL_CONFIG_KEYS, TemporalAdapter, TemporalExecutor
    from ._workflow import ACTIVITY_NAME, WORKFLOW_NAME, RunPayloadWorkflow
    from .worker import WORKER_DEFAULTS, build_worker, run_payload_activity

__all__ = [
    "ACTIVITY_NAME",
    "TEMPORAL_CONFIG_KEYS",
    "WORKER_DEFAULTS",
    "WORKFLOW_NAME",
    "RunPayloadWorkflow",
    "TemporalAdapter",
    "TemporalExecutor",
    "build_worker",
    "run_payload_activity",
]

_HOMES = {
    "ACTIVITY_NAME": "_workflow",
    "TEMPORAL_CONFIG_KEYS": "_adapter",
    "WORKER_DEFAULTS": "worker",
    "WORKFLOW_NAME": "_workflow",
    "RunPayloadWorkflow": "_workflow",
    "TemporalAdapter": "_adapter",
    "TemporalExecutor": "_adapter",
    "build_worker": "worker",
    "run_payload_activity": "worker",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_temporal' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
