"""The entry point of the ``local`` executor: hook implementations and metadata only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._executor import LocalExecutor

    return LocalExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the in-process executor; it needs nothing beyond the standard library."""
    register(
        name="local",
        kind="local",
        load=_load,
        requires=(),
        description="Run tasks in the weave's own process (async on its loop, sync in threads).",
    )
