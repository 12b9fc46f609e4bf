"""The worker side: the function every Wove task runs as on a Ray worker.

Ray workers need no code of yours to run Wove tasks, only this package (and the modules your
tasks import) and the shared secret in their environment. Workers are started by each node's
raylet and inherit the environment of ``ray start``, so export the secret there::

    export WOVE_SECRET=...            # the secret the environment's `security` names
    ray start --head --port=6379      # and on every other node: ray start --address=HEAD:6379

The module imports no Ray code: Ray pickles :func:`run_payload` by reference, so each worker
imports ``wove_ray.worker`` once and reuses it for every task of the same driver.
"""

from __future__ import annotations

from wove.worker import JobOutcome, run_job

__all__ = ["run_payload"]


def run_payload(payload: str) -> JobOutcome:
    """Run one Wove payload; the ``ray`` executor submits it as ``ray.remote(run_payload)``.

    The task's result, error or cancellation travels to the weave through the callback server,
    so the return value is only a note for Ray's object store: ``"task_result"``,
    ``"task_error"`` or ``"task_cancelled"``, or ``"not_claimed"`` for a copy of a run that
    another worker already started (a Ray retry or a replayed payload), which is logged and
    otherwise ignored (see :func:`wove.worker.run_job`). A payload whose signature
    does not check raises :class:`wove.FrameRejectedError`, so Ray records the task as failed.

    Args:
        payload: the signed line the ``ray`` executor submitted.

    Example:
        >>> import ray  # doctest: +SKIP
        >>> ray.get(ray.remote(run_payload).remote(line))  # doctest: +SKIP
        'task_result'
    """
    return run_job(payload)
