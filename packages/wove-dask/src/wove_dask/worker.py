"""The worker side of the ``dask`` executor: the function every Wove task runs as.

The adapter submits :func:`run_payload` by reference, so a Dask worker needs nothing but this
package installed (with the modules the tasks import) and the environment's secret::

    export WOVE_SECRET=...   # the same value as in the weave's process
    dask worker tcp://scheduler:8786

Dask runs it in one of the worker's threads; the Wove run itself happens on the worker
runtime's own event loop (one per process), which runs a sync task body in a thread of its own
and an async one on that loop, so the heartbeats go on however the task behaves.
"""

from __future__ import annotations

from wove.worker import NOT_CLAIMED, JobOutcome, run_job

# NOT_CLAIMED is wove.worker's ("not_claimed"), re-exported for the adapter.
__all__ = ["NOT_CLAIMED", "run_payload"]


def run_payload(payload: str) -> JobOutcome:
    """Run one Wove payload inside a Dask task; the ``dask`` executor submits it for you.

    The task's outcome goes to the weave through the callback server the payload names, not
    through Dask's result store: the Dask result is only a short word for dashboards and logs
    (``"task_result"``, ``"task_error"``, ``"task_cancelled"`` or ``"not_claimed"``; see
    :func:`wove.worker.run_job`).

    A copy of a run that another attempt already started -- Dask reschedules a task whose
    worker died -- or that the weave stopped waiting for is skipped, logged, and returns
    ``"not_claimed"``. A payload whose signature does not verify raises
    :class:`wove.FrameRejectedError`, so the task errs visibly in Dask.

    Args:
        payload: the signed line the adapter submitted.

    Returns:
        The kind of terminal event the run reported, or ``"not_claimed"``.

    Example:
        >>> client.submit(run_payload, line, key="my-run", pure=False)  # doctest: +SKIP
    """
    return run_job(payload)
