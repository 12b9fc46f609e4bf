"""The entry point of the ``aws_batch`` executor: hook implementations and metadata only.

Importing this module is cheap: boto3 is imported when an ``aws_batch`` environment starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._adapter import AWSBatchExecutor

    return AWSBatchExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the AWS Batch executor; boto3 is imported only when an environment starts."""
    register(
        name="aws_batch",
        kind="backend",
        load=_load,
        requires=("boto3", "cloudpickle", "aiohttp"),
        description="Run each task as an AWS Batch job in your job queue, results by callback.",
    )
