"""The entry point of the ``dask`` executor: hook implementations and metadata only.

Importing this module is cheap: distributed (and dask under it) is imported when a ``dask``
environment starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._adapter import DaskExecutor

    return DaskExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the Dask executor; distributed is imported only when an environment starts."""
    register(
        name="dask",
        kind="backend",
        load=_load,
        requires=("distributed", "cloudpickle", "aiohttp"),
        description="Run tasks as Dask tasks on a distributed cluster; results come back "
        "through Wove's callback server.",
    )
