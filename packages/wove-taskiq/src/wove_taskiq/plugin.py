"""The entry point of the ``taskiq`` executor: hook implementations and metadata only.

Importing this module is cheap: taskiq (and taskiq-redis, for ``broker_url``) is imported when
a ``taskiq`` environment starts, never while plugins are listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._adapter import TaskiqExecutor

    return TaskiqExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the Taskiq executor; taskiq is imported only when an environment starts."""
    register(
        name="taskiq",
        kind="backend",
        load=_load,
        requires=("taskiq", "cloudpickle", "aiohttp"),
        description=(
            "Run tasks as jobs on Taskiq workers (`taskiq worker module:broker`); results "
            "come back over a signed HTTP callback."
        ),
    )
