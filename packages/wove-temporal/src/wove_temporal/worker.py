"""The worker side of the ``temporal`` executor: the activity that runs a Wove payload, and
:func:`build_worker`, a ``temporalio`` worker that runs it and its workflow.

In the program that runs on the worker machines::

    import asyncio

    from temporalio.client import Client

    from wove_temporal import build_worker


    async def main() -> None:
        client = await Client.connect("temporal.internal:7233")
        await build_worker(client, "wove").run()


    asyncio.run(main())

started with ``WOVE_SECRET`` set. Activities run on the worker's event loop; Wove's runtime
runs sync task bodies in its own threads, so a blocking task never stalls the heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from wove import FrameRejectedError
from wove.worker import NOT_CLAIMED, JobOutcome, arun_job

from ._workflow import ACTIVITY_NAME, RunPayloadWorkflow

# NOT_CLAIMED is wove.worker's ("not_claimed"), re-exported for the adapter.
__all__ = ["NOT_CLAIMED", "WORKER_DEFAULTS", "build_worker", "run_payload_activity"]

#: Heartbeat interval when the activity has no heartbeat timeout (Temporal then cannot cancel
#: it before it heartbeats at all).
_DEFAULT_BEAT: Final = 1.0
#: What :func:`build_worker` sets unless overridden: ``max_concurrent_activities`` of 100 runs
#: that many Wove runs at once in the one process (each is mostly waiting, on I/O or a thread).
WORKER_DEFAULTS: Final[dict[str, Any]] = {"max_concurrent_activities": 100}


@activity.defn(name=ACTIVITY_NAME)
async def run_payload_activity(payload: str) -> JobOutcome:
    """Run one Wove payload, heartbeating to Temporal until it ends.

    The task's outcome goes to the weave through the callback server the payload names, not
    through Temporal: the activity returns only a word for the workflow's history
    (``"task_result"``, ``"task_error"``, ``"task_cancelled"``, or ``"not_claimed"`` for a copy
    of a run another worker already started or nobody waits for any more, which is logged; see
    :func:`wove.worker.arun_job`).

    It heartbeats (``activity.heartbeat()``) three times per heartbeat timeout, so Temporal
    notices a dead worker by that timeout, and a cancel Temporal delivers (in the answer to a
    heartbeat) cancels the run: the task is cancelled, ``task_cancelled`` is posted, and the
    activity ends cancelled.

    Raises:
        temporalio.exceptions.ApplicationError: a payload whose signature does not verify
            (non-retryable; nothing in it was unpickled).
    """
    interval = _heartbeat_interval(activity.info().heartbeat_timeout)
    run = asyncio.ensure_future(arun_job(payload))
    try:
        activity.heartbeat()
        while True:
            done, _ = await asyncio.wait({run}, timeout=interval)
            if done:
                break
            activity.heartbeat()
    except asyncio.CancelledError:
        # Temporal cancelled the activity (or the worker is shutting down): stop the run and
        # let it post task_cancelled before the activity reports its own cancellation.
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        raise
    try:
        return run.result()
    except FrameRejectedError as error:
        raise ApplicationError(
            str(error), type="wove.FrameRejectedError", non_retryable=True
        ) from error


def build_worker(
    client: Client,
    task_queue: str,
    *,
    workflows: Sequence[type] = (),
    activities: Sequence[Any] = (),
    **options: Any,
) -> Worker:
    """A ``temporalio.worker.Worker`` on ``task_queue`` that runs Wove payloads.

    Args:
        client: a connected client (``await Client.connect(...)``).
        task_queue: the environment's ``task_queue``.
        workflows: more workflow classes for the same worker (your own).
        activities: more activities for the same worker.
        **options: any other ``Worker`` argument, replacing :data:`WORKER_DEFAULTS`.

    Returns:
        The worker, not yet running: ``await worker.run()`` or ``async with worker: ...``.

    Raises:
        TypeError: ``task_queue`` is not a non-empty string.

    Example:
        >>> worker = build_worker(client, "wove", max_concurrent_activities=20)  # doctest: +SKIP
    """
    if not isinstance(task_queue, str) or not task_queue:
        raise TypeError(f"build_worker() needs a non-empty task_queue string, got {task_queue!r}")
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RunPayloadWorkflow, *workflows],
        activities=[run_payload_activity, *activities],
        **{**WORKER_DEFAULTS, **options},
    )


def _heartbeat_interval(timeout: timedelta | None) -> float:
    """Seconds between the activity's heartbeats for a given heartbeat timeout."""
    return timeout.total_seconds() / 3 if timeout else _DEFAULT_BEAT
