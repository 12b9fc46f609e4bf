"""The ``aws_batch`` plugin: its entry point, its metadata, its public names, and what importing
it costs."""

from __future__ import annotations

import pytest

import wove_aws_batch
from wove import Executor
from wove.backends import BackendExecutor
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_aws_batch import AWS_BATCH_CONFIG_KEYS, AWSBatchExecutor


def test_loading_gives_the_aws_batch_executor() -> None:
    executor_class = get_registry().executor_class("aws_batch", "default")

    assert executor_class is AWSBatchExecutor
    assert issubclass(AWSBatchExecutor, BackendExecutor)
    assert issubclass(AWSBatchExecutor, Executor)
    assert AWSBatchExecutor.kind == "backend"
    assert not AWSBatchExecutor().runs_in_process


def test_executor_accepts_the_adapter_keys_and_the_shared_ones() -> None:
    keys = AWSBatchExecutor.config_keys
    assert keys is not None
    assert {"job_queue", "job_definition", "client", "container_overrides", "python"} <= (
        AWS_BATCH_CONFIG_KEYS
    )
    assert AWS_BATCH_CONFIG_KEYS | {"security", "callback_url", "status_interval"} <= keys


def test_small_payloads_only_travel_inline() -> None:
    # Batch fails jobs whose container overrides exceed 8 KiB; larger payloads are fetched.
    assert AWSBatchExecutor.adapter_class.max_inline_payload_bytes == 1024


def test_public_names() -> None:
    assert wove_aws_batch.__all__ == [
        "AWS_BATCH_CONFIG_KEYS",
        "AWSBatchAdapter",
        "AWSBatchExecutor",
        "batch_job_name",
        "register_job_definition",
        "run_job",
    ]
    assert all(getattr(wove_aws_batch, name) for name in wove_aws_batch.__all__)
    assert wove_aws_batch.run_job.__module__ == "wove_aws_batch.job"
    assert wove_aws_batch.register_job_definition.__module__ == "wove_aws_batch._definition"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_aws_batch.Nope


class TestAWSBatchPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "aws_batch"
    distribution = "wove-aws-batch"
    kind = "backend"
    requires = ("boto3", "cloudpickle", "aiohttp")
    backend_modules = ("boto3", "botocore", "wove_aws_batch._adapter")
