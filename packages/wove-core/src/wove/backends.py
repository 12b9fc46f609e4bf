"""Public building blocks for backend executor plugins (task systems, compute engines, batch
schedulers): the adapter base, the job an adapter submits, and the status it reports.

A plugin subclasses :class:`BackendAdapter`, names it from a :class:`BackendExecutor` subclass,
and registers that executor; payload signing, the callback server, status polling, heartbeats,
cancellation flags and delivery policy come from Wove. See the "Writing a backend adapter"
page of the documentation for a complete example.
"""

from __future__ import annotations

from ._backend import (
    BACKEND_CONFIG_KEYS,
    BackendAdapter,
    BackendExecutor,
    BackendJob,
    DuplicateJobError,
    JobState,
    JobStatus,
    safe_job_name,
    worker_environment,
)

__all__ = [
    "BACKEND_CONFIG_KEYS",
    "BackendAdapter",
    "BackendExecutor",
    "BackendJob",
    "DuplicateJobError",
    "JobState",
    "JobStatus",
    "safe_job_name",
    "worker_environment",
]
