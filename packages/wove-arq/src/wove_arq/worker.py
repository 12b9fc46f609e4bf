"""The worker side of the ``arq`` executor: the ARQ function that runs Wove payloads, and a
ready ``WorkerSettings`` class for the ``arq`` command.

In the module the worker imports (``myapp/arq_worker.py``)::

    from wove_arq import worker_settings

    WorkerSettings = worker_settings(redis_settings="redis://127.0.0.1:6379/0")

then ``WOVE_SECRET=... arq myapp.arq_worker.WorkerSettings``. ARQ runs every job as an asyncio
task in the one worker process; Wove's runtime runs sync task bodies in its own threads, so a
blocking task never stalls the others.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final

from arq.connections import RedisSettings
from arq.worker import Function, Worker

from wove.worker import JobOutcome, arun_job

__all__ = ["WORKER_DEFAULTS", "wove_run", "worker_settings"]

#: What :func:`worker_settings` sets unless overridden, and why:
#: ``allow_abort_jobs`` lets a cancel from the weave stop the job (``Job.abort``);
#: ``poll_delay`` of 0.1 s keeps queue latency low (ARQ's 0.5 s default adds up to half a
#: second to every run); ``job_timeout`` of a day leaves time limits to the Wove task's own
#: ``timeout`` option, since ARQ's 300 s default would cancel long runs; ``max_jobs`` of 100
#: runs as many Wove runs at once (each is mostly waiting, on I/O or on a thread).
WORKER_DEFAULTS: Final[dict[str, Any]] = {
    "allow_abort_jobs": True,
    "poll_delay": 0.1,
    "job_timeout": 24 * 3600,
    "max_jobs": 100,
}


async def wove_run(ctx: dict[str, Any], payload: str) -> JobOutcome:
    """Run one Wove payload inside an ARQ job; register it as the worker's function.

    The task's outcome goes to the weave through the callback server the payload names, not
    through ARQ's result store: the job's own result is only a short word for the logs
    (``"task_result"``, ``"task_error"``, ``"task_cancelled"`` or ``"not_claimed"``; see
    :func:`wove.worker.arun_job`).

    A copy of a run that another job already started, or that the weave stopped waiting for,
    is skipped and logged (``"not_claimed"``). A payload whose signature does not verify raises
    :class:`wove.FrameRejectedError`, so the job fails visibly in ARQ.

    Args:
        ctx: ARQ's job context (unused; ARQ passes it first).
        payload: the signed line the adapter enqueued.

    Returns:
        The kind of terminal event the run reported, or ``"not_claimed"``.
    """
    del ctx
    return await arun_job(payload)


def worker_settings(
    redis_settings: RedisSettings | str | None = None, **overrides: Any
) -> type[Any]:
    """Build a ``WorkerSettings`` class for ``arq module.WorkerSettings`` that runs Wove jobs.

    Args:
        redis_settings: the Redis the weave's environment enqueues to, as
            :class:`arq.connections.RedisSettings` or a ``redis://`` URL; ``None`` keeps ARQ's
            default (``localhost:6379``, database 0).
        **overrides: any other :class:`arq.worker.Worker` argument (``queue_name``,
            ``max_jobs``, ``on_startup``...), replacing :data:`WORKER_DEFAULTS`. Extra
            ``functions`` are registered beside :func:`wove_run`.

    Returns:
        A new class whose attributes ARQ reads as worker settings.

    Raises:
        TypeError: an override that :class:`arq.worker.Worker` does not accept, or
            ``redis_settings`` of the wrong type.

    Example:
        >>> WorkerSettings = worker_settings("redis://127.0.0.1:6379/0", max_jobs=20)
        >>> WorkerSettings.allow_abort_jobs, WorkerSettings.max_jobs
        (True, 20)
    """
    accepted = set(inspect.signature(Worker.__init__).parameters) - {"self", "redis_pool"}
    unknown = sorted(set(overrides) - accepted)
    if unknown:
        raise TypeError(
            f"worker_settings() got {', '.join(map(repr, unknown))}, which arq.worker.Worker "
            f"does not accept; accepted: {', '.join(sorted(accepted - {'redis_settings'}))}"
        )
    if isinstance(redis_settings, str):
        redis_settings = RedisSettings.from_dsn(redis_settings)
    elif redis_settings is not None and not isinstance(redis_settings, RedisSettings):
        raise TypeError(
            "worker_settings(redis_settings=...) takes an arq.connections.RedisSettings or a "
            f"redis:// URL, got {redis_settings!r}"
        )
    extra: list[Function | Callable[..., Any]] = list(overrides.pop("functions", ()))
    names = {getattr(function, "name", getattr(function, "__qualname__", "")) for function in extra}
    functions = extra if "wove_run" in names else [wove_run, *extra]
    attributes: dict[str, Any] = {
        **WORKER_DEFAULTS,
        **overrides,
        "functions": functions,
        "__doc__": "ARQ worker settings running Wove payloads (built by wove_arq.worker_settings).",
        "__module__": __name__,
    }
    if redis_settings is not None:
        attributes["redis_settings"] = redis_settings
    return type("WorkerSettings", (), attributes)
