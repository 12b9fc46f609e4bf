"""The entry point of the ``arq`` executor: hook implementations and metadata only.

Importing this module is cheap: arq (and redis-py under it) is imported when an ``arq``
environment starts, or when a worker imports :mod:`wove_arq.worker`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._adapter import ArqExecutor

    return ArqExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the ARQ executor; arq is imported only when an environment starts."""
    register(
        name="arq",
        kind="backend",
        load=_load,
        requires=("arq", "cloudpickle", "aiohttp"),
        description="Run tasks as ARQ jobs on asyncio workers over Redis; results come back "
        "through Wove's callback server.",
    )
