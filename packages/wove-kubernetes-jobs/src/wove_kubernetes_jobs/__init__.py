"""The ``kubernetes_jobs`` executor for Wove: each task runs as a Kubernetes Job.

The executor (:class:`KubernetesJobsExecutor`) creates, per run, a Secret holding the signed
payload and a Job whose Pod runs ``python -m wove.backend_worker --payload-file ...`` in your
image; the worker reports back to the weave's callback server. Wove finds the executor through
the ``wove.executors`` entry point (:mod:`wove_kubernetes_jobs.plugin`); the names below are
imported on first use, so loading the plugin does not import the ``kubernetes`` client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import (
        KUBERNETES_JOBS_CONFIG_KEYS,
        PAYLOAD_FILE,
        KubernetesJobsAdapter,
        KubernetesJobsExecutor,
        kubernetes_label_value,
        kubernetes_name,
    )

__all__ = [
    "KUBERNETES_JOBS_CONFIG_KEYS",
    "PAYLOAD_FILE",
    "KubernetesJobsAdapter",
    "KubernetesJobsExecutor",
    "kubernetes_label_value",
    "kubernetes_name",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'wove_kubernetes_jobs' has no attribute {name!r}")
    from . import _adapter

    return getattr(_adapter, name)
