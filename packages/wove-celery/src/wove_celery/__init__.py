"""The ``celery`` executor for Wove: each task run becomes one Celery task on your workers.

The weave side is :class:`CeleryExecutor` (through its :class:`CeleryAdapter`): it sends each
signed payload with ``send_task`` and revokes jobs a weave cancels. The worker side is one call
on your own Celery app, :func:`register_wove_task`. Wove finds the executor through the
``wove.executors`` entry point (:mod:`wove_celery.plugin`); the names below are imported on
first use, so loading the plugin does not import Celery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import DEFAULT_TASK_NAME, CeleryAdapter, CeleryExecutor
    from ._worker import register_wove_task

__all__ = ["DEFAULT_TASK_NAME", "CeleryAdapter", "CeleryExecutor", "register_wove_task"]

_HOMES = {
    "DEFAULT_TASK_NAME": "_adapter",
    "CeleryAdapter": "_adapter",
    "CeleryExecutor": "_adapter",
    "register_wove_task": "_worker",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_celery' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
