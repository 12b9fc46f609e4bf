"""The ``stdio`` executor for Wove: tasks run in a pool of local worker processes.

Each worker is ``python -m wove.stdio_worker``, talking signed JSON lines over its stdin and
stdout. Wove finds the executor through the ``wove.executors`` entry point
(:mod:`wove_stdio.plugin`); the names below are imported on first use, so loading the plugin
stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._executor import StdioExecutor, StdioSettings, StdioWorkerStartError

__all__ = ["StdioExecutor", "StdioSettings", "StdioWorkerStartError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import _executor

        return getattr(_executor, name)
    raise AttributeError(f"module 'wove_stdio' has no attribute {name!r}")
