"""Public building blocks for backend executor plugins (task systems, compute engines, batch
schedulers): the adapter base, the job an adapter submits, the status it reports, and the
callback server workers report to.

A plugin subclasses :class:`BackendAdapter`, names it from a :class:`BackendExecutor` subclass,
and registers that executor; payload signing, the callback server, status polling, heartbeats,
cancellation flags and delivery policy come from Wove. See the "Writing a backend adapter"
page of the documentation for a complete example.

Part of the plugin SDK (see :mod:`wove.plugins`): every name in ``__all__`` follows semantic
versioning, and a name that is going away warns for at least one minor release first.
"""

from __future__ import annotations

from ._backend import (
    BACKEND_CONFIG_KEYS,
    BackendAdapter,
    BackendExecutor,
    BackendJob,
    BackendSettings,
    DuplicateJobError,
    JobState,
    JobStatus,
    safe_job_name,
    worker_environment,
)
from ._callback_server import (
    SIGNATURE_HEADER,
    CallbackServer,
    acquire_callback_server,
    payload_request_body,
)

__all__ = [
    "BACKEND_CONFIG_KEYS",
    "BackendAdapter",
    "BackendExecutor",
    "BackendJob",
    "BackendSettings",
    "DuplicateJobError",
    "JobState",
    "JobStatus",
    "safe_job_name",
    "worker_environment",
    # the callback server, for adapters that run it themselves
    "CallbackServer",
    "acquire_callback_server",
    "SIGNATURE_HEADER",
    "payload_request_body",
]
