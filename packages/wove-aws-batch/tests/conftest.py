"""A real moto server running real containers.

``tests-integration/aws_batch_service.py`` starts ``moto_server`` on 127.0.0.1 (a free port)
with podman serving the Docker API, so every Batch job these tests submit really runs
``python -m wove_aws_batch.job`` in a container. The job definition bind-mounts this
interpreter, its virtual environment, the repository and the temporary directory into the
container (see ``host_volumes``), so jobs run the code under test and share files with the
tests; the container uses the host network, so it reaches the weave's callback server on
127.0.0.1. Tests own the server: nothing else uses it.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import aws_batch_service
import backend_services

# Jobs get the secret the test environments name as env:WOVE_SECRET.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

__all__ = ["aws_batch_service", "backend_services"]

QUEUE = "wove"
DEFINITION = "wove-job"
#: The states a Batch job ends in.
FINAL = ("SUCCEEDED", "FAILED")
#: How long a test waits for Batch to reach a state.
HANG_GUARD = 60.0


def prepare(batch: aws_batch_service.LocalBatch) -> None:
    """Create the job queue and register the job definition the tests use (again after a
    restart: moto keeps nothing)."""
    from wove_aws_batch import register_job_definition

    aws_batch_service.create_job_queue(batch, QUEUE)
    client = batch.client()
    try:
        register_job_definition(
            client,
            DEFINITION,
            aws_batch_service.IMAGE,
            vcpus=1,
            memory=256,
            python=sys.executable,
            # Tests only: in production the secret comes from `secrets` (Secrets Manager or
            # SSM), which moto does not resolve into the container's environment.
            environment={"WOVE_SECRET": os.environ["WOVE_SECRET"]},
            volumes=[(path, path) for _name, path in aws_batch_service.host_volumes()],
        )
    finally:
        client.close()


@pytest.fixture(scope="session")
def local_batch() -> Iterator[aws_batch_service.LocalBatch]:
    batch = aws_batch_service.LocalBatch().start()
    try:
        prepare(batch)
        yield batch
    finally:
        batch.stop()


@pytest.fixture
def batch_client(local_batch: aws_batch_service.LocalBatch) -> Iterator[Any]:
    """A client of the test server, for looking at jobs the way Batch reports them."""
    client = local_batch.client()
    yield client
    client.close()


def batch_config(endpoint_url: str | None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "job_queue": QUEUE,
        "job_definition": DEFINITION,
        "region_name": aws_batch_service.REGION,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "python": sys.executable,
        "security": "env:WOVE_SECRET",
        "worker_heartbeat_seconds": 0.5,
        "status_interval": 0.25,
        **extra,
    }
    if endpoint_url is not None:
        config["endpoint_url"] = endpoint_url
    return config


def jobs_named(client: Any, name: str) -> list[dict[str, Any]]:
    """Every job of the test queue called ``name``, as ``describe_jobs`` reports it."""
    listed = client.list_jobs(jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": [name]}])
    ids = [summary["jobId"] for summary in listed["jobSummaryList"]]
    if not ids:
        return []
    jobs: list[dict[str, Any]] = client.describe_jobs(jobs=ids)["jobs"]
    return jobs


def job_named(client: Any, name: str, *states: str) -> dict[str, Any]:
    """The one job called ``name``, once Batch reports it in one of ``states`` (any state when
    none is given)."""
    found: list[dict[str, Any]] = []

    def there() -> bool:
        found[:] = jobs_named(client, name)
        return len(found) == 1 and (not states or found[0]["status"] in states)

    backend_services.wait_until(there, HANG_GUARD, f"Batch job {name!r} in {states or 'any'}")
    return found[0]
