"""The ``aws_batch`` executor for Wove: tasks run as AWS Batch jobs.

The executor (:class:`AWSBatchExecutor`) submits each run as one Batch job whose command is
``python -m wove_aws_batch.job`` (:mod:`wove_aws_batch.job`) and whose ``WOVE_PAYLOAD``
environment variable holds the signed payload; the job runs the task and reports back to the
weave's callback server. :func:`register_job_definition` registers a job definition made for
it. Wove finds the executor through the ``wove.executors`` entry point
(:mod:`wove_aws_batch.plugin`); the names below are imported on first use, so loading the
plugin does not import boto3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._adapter import AWS_BATCH_CONFIG_KEYS, AWSBatchAdapter, AWSBatchExecutor, batch_job_name
    from ._definition import register_job_definition
    from .job import run_job

__all__ = [
    "AWS_BATCH_CONFIG_KEYS",
    "AWSBatchAdapter",
    "AWSBatchExecutor",
    "batch_job_name",
    "register_job_definition",
    "run_job",
]

_HOMES = {
    "AWS_BATCH_CONFIG_KEYS": "_adapter",
    "AWSBatchAdapter": "_adapter",
    "AWSBatchExecutor": "_adapter",
    "batch_job_name": "_adapter",
    "register_job_definition": "_definition",
    "run_job": "job",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wove_aws_batch' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
