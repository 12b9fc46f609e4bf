"""The ``taskiq`` executor for Wove: tasks run as jobs on Taskiq workers.

The weave side is :class:`TaskiqExecutor` (its adapter, :class:`TaskiqAdapter`, kicks one
Taskiq job per run, carrying the signed payload); the worker side is one call,
:func:`register_wove_task`, on the broker the ``taskiq worker`` command runs. Wove finds the
executor through the ``wove.executors`` entry point (:mod:`wove_taskiq.plugin`); the names
below are imported on first use, so loading the plugin does not import taskiq.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import (
        DEFAULT_TASK_NAME,
        RUN_ID_LABEL,
        TASKIQ_CONFIG_KEYS,
        TaskiqAdapter,
        TaskiqExecutor,
    )
    from .worker import register_wove_task

__all__ = [
    "DEFAULT_TASK_NAME",
    "RUN_ID_LABEL",
    "TASKIQ_CONFIG_KEYS",
    "TaskiqAdapter",
    "TaskiqExecutor",
    "register_wove_task",
]

_HOMES = {
    "DEFAULT_TASK_NAME": "_adapter",
    "RUN_ID_LABEL": "_adapter",
    "TASKIQ_CONFIG_KEYS": "_adapter",
    "TaskiqAdapter": "_adapter",
    "TaskiqExecutor": "_adapter",
    "register_wove_task": "worker",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_taskiq' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
