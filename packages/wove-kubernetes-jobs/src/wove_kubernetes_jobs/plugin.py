"""The entry point of the ``kubernetes_jobs`` executor: hook implementations and metadata only.

Importing this module is cheap: the ``kubernetes`` client is imported when a
``kubernetes_jobs`` environment starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._adapter import KubernetesJobsExecutor

    return KubernetesJobsExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the Kubernetes Jobs executor; the client library is imported only on use."""
    register(
        name="kubernetes_jobs",
        kind="backend",
        load=_load,
        requires=("kubernetes", "cloudpickle", "aiohttp"),
        description="Run each task as a Kubernetes Job (one Pod per run), results by callback.",
    )
