"""The ``ray`` executor for Wove: tasks run as Ray tasks on your Ray cluster.

The executor (:class:`RayExecutor`) submits each run's signed payload as a Ray task calling
:func:`wove_ray.worker.run_payload`; whichever Ray worker runs it reports back to the weave's
callback server. Wove finds the executor through the ``wove.executors`` entry point
(:mod:`wove_ray.plugin`); the names below are imported on first use, so loading the plugin does
not import ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import RAY_CONFIG_KEYS, REMOTE_OPTIONS, RayAdapter, RayExecutor
    from .worker import run_payload

__all__ = [
    "RAY_CONFIG_KEYS",
    "REMOTE_OPTIONS",
    "RayAdapter",
    "RayExecutor",
    "run_payload",
]

_HOMES = {
    "RAY_CONFIG_KEYS": "_adapter",
    "REMOTE_OPTIONS": "_adapter",
    "RayAdapter": "_adapter",
    "RayExecutor": "_adapter",
    "run_payload": "worker",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_ray' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
