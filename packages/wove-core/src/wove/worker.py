"""The SDK for the worker side: what runs a task sent from a weave in another process.

A backend's job calls :func:`run_job` (or :func:`arun_job` from async code) with the signed
payload its adapter submitted; it verifies the payload, runs the task, heartbeats, posts the
events to the weave and returns a :data:`JobOutcome` word for the backend's own result store.
:func:`run`/:func:`arun` do the same and return the terminal event; :func:`verify_payload` only
checks and decodes; :func:`preload` lets a forking worker import the runtime once, before it
forks. Process and network workers feed verified frames to a :class:`WorkerRuntime`.

Part of the plugin SDK (see :mod:`wove.plugins`): every name in ``__all__`` follows semantic
versioning, and a name that is going away warns for at least one minor release first.
``wove.integrations.worker``, the module path of wove 2.x and 3.0a1, holds the same objects and
keeps working.

Example:
    The task a backend runs::

        from wove.worker import JobOutcome, run_job

        def run_wove_payload(payload: str) -> JobOutcome:
            return run_job(payload)  # the secret comes from WOVE_SECRET
"""

from __future__ import annotations

from .integrations.worker import (
    INSECURE_ENV,
    NOT_CLAIMED,
    SECRET_ENV,
    SECRET_KEY_ID_ENV,
    TASK_CANCELLED,
    TASK_ERROR,
    TASK_RESULT,
    JobOutcome,
    WorkerRuntime,
    arun,
    arun_job,
    preload,
    run,
    run_job,
    verify_payload,
)

__all__ = [
    # backend jobs
    "run_job",
    "arun_job",
    "JobOutcome",
    "TASK_RESULT",
    "TASK_ERROR",
    "TASK_CANCELLED",
    "NOT_CLAIMED",
    "run",
    "arun",
    "verify_payload",
    "preload",
    # process and network workers
    "WorkerRuntime",
    # the environment variables a worker reads its secret from
    "SECRET_ENV",
    "SECRET_KEY_ID_ENV",
    "INSECURE_ENV",
]
