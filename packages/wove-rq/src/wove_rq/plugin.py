"""The entry point of the ``rq`` executor: hook implementations and metadata only.

Importing this module is cheap: ``rq`` and ``redis`` are imported when an ``rq`` environment
starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._adapter import RQExecutor

    return RQExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the RQ executor; rq is imported only when an environment starts."""
    register(
        name="rq",
        kind="backend",
        load=_load,
        requires=("rq", "cloudpickle", "aiohttp"),
        description="Run tasks as RQ jobs on your `rq worker` processes, results by callback.",
    )
