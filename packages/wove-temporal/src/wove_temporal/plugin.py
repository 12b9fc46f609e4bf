"""The entry point of the ``temporal`` executor: hook implementations and metadata only.

Importing this module is cheap: ``temporalio`` is imported when a ``temporal`` environment
starts, or when a worker imports :mod:`wove_temporal.worker`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._adapter import TemporalExecutor

    return TemporalExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the Temporal executor; temporalio is imported only when an environment starts."""
    register(
        name="temporal",
        kind="backend",
        load=_load,
        requires=("temporalio", "cloudpickle", "aiohttp"),
        description="Run tasks as Temporal workflows (one activity each) on Temporal workers; "
        "results come back through Wove's callback server.",
    )
