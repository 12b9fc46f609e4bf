"""The worker side: the function every Wove job calls, and worker classes that preload Wove.

Workers need no code of yours to run Wove jobs, only this package (and the modules your tasks
import) and the shared secret::

    export WOVE_SECRET=...            # the secret the environment's `security` names
    rq worker --url redis://127.0.0.1:6379/0 -w wove_rq.worker.WoveWorker wove

``wove_rq.worker.WoveWorker`` is RQ's forking ``Worker`` with Wove's worker runtime imported
before it forks, so each work horse starts with it loaded instead of importing it for every job.
Plain ``rq worker`` works too, a little slower per job. ``WoveSimpleWorker`` runs jobs in the
worker process itself (no fork): faster still, but a cancelled sync task cannot be stopped
there, and a task that crashes its process takes the worker down with it.
"""

from __future__ import annotations

from rq.worker import SimpleWorker, Worker

from wove.worker import JobOutcome, preload, run_job

__all__ = ["WoveSimpleWorker", "WoveWorker", "run_payload"]

# Loaded when this module is, so a forking worker imports the worker runtime once, before it
# forks its work horses, instead of every horse importing it again (about 30 ms a job on a
# 2-core machine).
preload()


def run_payload(payload: str) -> JobOutcome:
    """Run one Wove payload; RQ calls it as ``wove_rq.worker.run_payload`` for every job.

    The task's result, error or cancellation travels to the weave through the callback server,
    so the return value is only a note for RQ's result store: ``"task_result"``,
    ``"task_error"`` or ``"task_cancelled"``, or ``"not_claimed"`` for a copy of a run that
    another worker already started (a redelivered or replayed payload), which is logged and
    otherwise ignored (see :func:`wove.worker.run_job`). A payload whose signature
    does not check raises :class:`wove.FrameRejectedError`, so RQ records that job as failed.

    Args:
        payload: the signed line the ``rq`` executor enqueued.

    Example:
        >>> from rq import Queue  # doctest: +SKIP
        >>> Queue("wove", connection=redis).enqueue(run_payload, line)  # doctest: +SKIP
    """
    return run_job(payload)


class WoveWorker(Worker):
    """RQ's forking worker, with Wove's worker runtime loaded before it forks.

    Cancelling a running job kills its work horse (``send_stop_job_command``), which stops a
    sync task too.
    """


class WoveSimpleWorker(SimpleWorker):
    """RQ's non-forking worker, with Wove's worker runtime loaded.

    Jobs run in the worker's own process: no fork per job, but a cancelled sync task runs on
    until it returns (its result is discarded), and a task that exits its process ends the
    worker.
    """
