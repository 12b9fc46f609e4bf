"""The ``rq`` executor for Wove: tasks run as RQ jobs on your RQ workers.

The executor (:class:`RQExecutor`) enqueues each run's signed payload as a job calling
``wove_rq.worker.run_payload``; a worker started with ``rq worker ... -w
wove_rq.worker.WoveWorker <queue>`` runs it and reports back to the weave's callback server.
Wove finds the executor through the ``wove.executors`` entry point (:mod:`wove_rq.plugin`);
the names below are imported on first use, so loading the plugin imports neither rq nor redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import RQ_CONFIG_KEYS, RQAdapter, RQExecutor, rq_job_id
    from .worker import WoveSimpleWorker, WoveWorker, run_payload

__all__ = [
    "RQ_CONFIG_KEYS",
    "RQAdapter",
    "RQExecutor",
    "WoveSimpleWorker",
    "WoveWorker",
    "rq_job_id",
    "run_payload",
]

_HOMES = {
    "RQ_CONFIG_KEYS": "_adapter",
    "RQAdapter": "_adapter",
    "RQExecutor": "_adapter",
    "rq_job_id": "_adapter",
    "WoveSimpleWorker": "worker",
    "WoveWorker": "worker",
    "run_payload": "worker",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_rq' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
