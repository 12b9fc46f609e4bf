"""The entry point of the ``celery`` executor: hook implementations and metadata only.

Importing this module is cheap: Celery is imported when a ``celery`` environment starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterDiagnostic, RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_diagnostics", "register_executors"]


def _load() -> type[Executor]:
    from ._adapter import CeleryExecutor

    return CeleryExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the Celery executor; Celery is imported only when an environment starts."""
    register(
        name="celery",
        kind="backend",
        load=_load,
        requires=("celery", "cloudpickle", "aiohttp"),
        description=(
            "Run tasks as Celery tasks on your Celery workers (Redis, RabbitMQ or any broker "
            "Celery supports); results come back over Wove's callback server."
        ),
    )


@hookimpl
def register_diagnostics(register: RegisterDiagnostic) -> None:
    """Check, from package metadata, that redis-py fits kombu when the broker is Redis."""
    from ._diagnostics import check_redis_client

    register(name="redis client", check=check_redis_client, executor="celery")
