"""The entry point of the ``ray`` executor: hook implementations and metadata only.

Importing this module is cheap: ``ray`` is imported when a ``ray`` environment starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._adapter import RayExecutor

    return RayExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the Ray executor; ray is imported only when an environment starts."""
    register(
        name="ray",
        kind="backend",
        load=_load,
        requires=("ray", "cloudpickle", "aiohttp"),
        description="Run tasks as Ray tasks on your Ray cluster, results by callback.",
    )
