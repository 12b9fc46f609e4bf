"""The entry point of the ``stdio`` executor: hook implementations and metadata only.

Importing this module is cheap: the executor class (and the subprocess machinery it drives) is
imported only when an environment that uses ``stdio`` starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._executor import StdioExecutor

    return StdioExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the worker-process executor; cloudpickle carries tasks to the workers."""
    register(
        name="stdio",
        kind="process",
        load=_load,
        requires=("cloudpickle",),
        description="Run tasks in a pool of local worker processes over signed stdin/stdout.",
    )
