"""The ``slurm`` executor for Wove: every task runs as one Slurm batch job.

The weave side is :class:`SlurmExecutor` (found through the ``wove.executors`` entry point,
:mod:`wove_slurm.plugin`); the compute-node side is the batch script of :func:`job_script`,
which runs ``python -m wove.backend_worker`` on a payload file :func:`write_payload` wrote.
The names below are imported on first use, so loading the plugin imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import SLURM_CONFIG_KEYS, SlurmAdapter, SlurmExecutor, SlurmJob
    from .job import job_script, slurm_job_name, write_payload

__all__ = [
    "SLURM_CONFIG_KEYS",
    "SlurmAdapter",
    "SlurmExecutor",
    "SlurmJob",
    "job_script",
    "slurm_job_name",
    "write_payload",
]

_HOMES = {
    "SLURM_CONFIG_KEYS": "_adapter",
    "SlurmAdapter": "_adapter",
    "SlurmExecutor": "_adapter",
    "SlurmJob": "_adapter",
    "job_script": "job",
    "slurm_job_name": "job",
    "write_payload": "job",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_slurm' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
