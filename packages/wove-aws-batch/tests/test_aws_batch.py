"""The ``aws_batch`` executor against a real moto server whose jobs run in podman containers:
what the conformance suite cannot see from outside -- Batch's own view of jobs, jobs stopped
from outside, a restarted server, configuration mistakes, and the job command. A killed
container and cancelling a running job are scenarios of the conformance kit
(test_conformance.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import wove
import wove.testing
from wove import weave
from wove.testing import blocker, configure_executor
from wove_aws_batch import AWSBatchExecutor, batch_job_name, run_job

from .conftest import (
    DEFINITION,
    FINAL,
    QUEUE,
    aws_batch_service,
    backend_services,
    batch_config,
    job_named,
    prepare,
)

HANG_GUARD = 60.0


def configure(**environments: dict[str, Any]) -> None:
    configure_executor("aws_batch", **environments)


def executor_of(name: str) -> AWSBatchExecutor:
    executor = wove.testing.executor_of(name)
    assert isinstance(executor, AWSBatchExecutor)
    return executor


def answer_in(environment: str, **options: Any) -> int:
    return wove.testing.answer_in(environment, delivery_timeout=HANG_GUARD, **options)


def environment_of(job: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in job["container"]["environment"]}


# -- (a) a job stopped from outside -----------------------------------------------------------
def test_job_terminated_from_outside_fails_the_weave_with_batchs_reason(
    local_batch: aws_batch_service.LocalBatch, batch_client: Any, tmp_path: Path
) -> None:
    # Heartbeats every 5 s: Batch's own report, polled every 0.25 s, is what fails the run.
    configure(batch=batch_config(local_batch.endpoint_url, worker_heartbeat_seconds=5))
    key = f"stopped-{secrets.token_hex(4)}"
    started, release = tmp_path / "started", tmp_path / "release"
    block = blocker(release, started=started)

    def terminate_once_started() -> None:
        backend_services.wait_until(started.exists, HANG_GUARD, "the task starting")
        job = job_named(batch_client, key)
        batch_client.terminate_job(jobId=job["jobId"], reason="operator stopped it")

    stopper = threading.Thread(target=terminate_once_started)
    stopper.start()
    try:
        with (
            pytest.raises(wove.DeliveryOrphanedError) as caught,
            weave(environment="batch", delivery_timeout=HANG_GUARD) as w,
        ):

            @w.do(delivery_idempotency_key=key)
            def stuck() -> bool:
                return block()

    finally:
        stopper.join(HANG_GUARD)
        release.touch()
    message = str(caught.value)
    assert "stuck" in message
    assert f"aws_batch reports job '{key}' failed (operator stopped it)" in message
    assert job_named(batch_client, key)["status"] == "FAILED"
    assert answer_in("batch") == 42


# -- (b) the server restarted between two weaves ------------------------------------------------
def test_batch_restart_between_weaves_reuses_the_client(
    local_batch: aws_batch_service.LocalBatch,
) -> None:
    private = aws_batch_service.LocalBatch(podman=local_batch.podman).start()
    try:
        prepare(private)
        configure(private=batch_config(private.endpoint_url))
        assert answer_in("private") == 42
        executor = executor_of("private")
        client = executor.adapter._client  # type: ignore[attr-defined]

        private.restart()  # moto forgets everything: create the queue and definition again
        prepare(private)

        assert answer_in("private") == 42
        assert executor_of("private") is executor, "a new executor, not a reconnect"
        assert executor.adapter._client is client  # type: ignore[attr-defined]
    finally:
        private.stop()


# -- (c) cancellation reaches Batch -----------------------------------------------------------
def test_cancel_terminates_a_job_that_is_still_queued(
    local_batch: aws_batch_service.LocalBatch, tmp_path: Path
) -> None:
    """A job cancelled while Batch still holds it in its queue never runs its task.

    A server of its own holds every job SUBMITTED for an hour (moto otherwise starts each job
    at once). moto records the termination's reason at once but, unlike Batch, shows the job
    FAILED only when its hold would have ended, so the test checks the reason.
    """
    private = aws_batch_service.LocalBatch(podman=local_batch.podman).start()
    try:
        prepare(private)
        private.hold_jobs()
        configure(idle=batch_config(private.endpoint_url))
        key = f"cancel-queued-{secrets.token_hex(4)}"
        ran = tmp_path / "ran"
        ran_at, endpoint = str(ran), private.endpoint_url

        with (  # noqa: PT012 - the weave raises when its block ends
            pytest.raises(RuntimeError, match="sibling failed on purpose"),
            weave(delivery_timeout=HANG_GUARD) as w,
        ):

            @w.do(environment="idle", delivery_idempotency_key=key)
            def never_runs() -> int:
                with open(ran_at, "w") as marker:
                    marker.write("ran")
                return 1

            @w.do  # in the local default environment, next to the test
            def fails() -> None:
                client = boto3.client(
                    "batch",
                    region_name=aws_batch_service.REGION,
                    endpoint_url=endpoint,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                )
                try:
                    job_named(client, key, "SUBMITTED")
                finally:
                    client.close()
                raise RuntimeError("sibling failed on purpose")

        assert "never_runs" in w.result.cancelled
        client = private.client()
        try:
            # The terminate reaches Batch from the dispatch loop, after the weave returned.
            def terminated() -> bool:
                job = job_named(client, key)
                return str(job.get("statusReason", "")).startswith(
                    "cancelled by Wove (run never-runs-"
                )

            backend_services.wait_until(terminated, HANG_GUARD, "the queued job terminated")
            assert job_named(client, key)["status"] == "SUBMITTED"  # it never started
        finally:
            client.close()
        assert not ran.exists(), "a job cancelled in the queue ran its task"
    finally:
        private.stop()


# -- (d) job names ----------------------------------------------------------------------------
def test_job_name_comes_from_the_idempotency_key(
    local_batch: aws_batch_service.LocalBatch, batch_client: Any
) -> None:
    configure(batch=batch_config(local_batch.endpoint_url))
    key = f"invoice-{secrets.token_hex(4)}"

    assert answer_in("batch", delivery_idempotency_key=key) == 42

    job = job_named(batch_client, key, *FINAL)
    assert job["status"] == "SUCCEEDED"
    assert job["jobQueue"].endswith(f":job-queue/{QUEUE}")
    assert f":job-definition/{DEFINITION}:" in job["jobDefinition"]
    assert job["container"]["command"] == [sys.executable, "-m", "wove_aws_batch.job"]
    assert "WOVE_PAYLOAD" in environment_of(job)

    # A key Batch would refuse is made safe, deterministically, and stays distinct.
    odd = f"order {key}/eu"
    assert answer_in("batch", delivery_idempotency_key=odd) == 42
    safe = batch_job_name(odd)
    assert safe.startswith(f"order_{key}_eu-")
    assert batch_job_name(odd) == safe != batch_job_name(f"order {key}:eu")
    assert job_named(batch_client, safe, *FINAL)["status"] == "SUCCEEDED"


def test_batch_job_name_rule() -> None:
    assert batch_job_name("run-abc123") == "run-abc123"
    assert batch_job_name("Key_With-Dashes") == "Key_With-Dashes"
    assert len(batch_job_name("k" * 129)) == 100 + 1 + 16
    assert batch_job_name("a b") != batch_job_name("a:b")
    assert batch_job_name("_private").startswith("j_private-")
    assert batch_job_name("") != ""
    assert batch_job_name("").isascii()


# -- (e) configuration ------------------------------------------------------------------------
BASE = {"job_queue": QUEUE, "job_definition": DEFINITION}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"job_queue": None}, "job_queue is required: the Batch job queue"),
        ({"job_definition": None}, "job_definition is required: the job definition"),
        ({"job_queue": 7}, "job_queue must be a non-empty string naming the Batch job queue"),
        ({"python": ""}, "python must be the interpreter's name or path inside the job's image"),
        ({"endpoint_url": "127.0.0.1:5000"}, "endpoint_url must be an http:// or https:// URL"),
        ({"region_name": 1}, "region_name must be a non-empty string"),
        ({"container_overrides": []}, "container_overrides must be a dict"),
        ({"container_overrides": {"command": ["x"]}}, "container_overrides may not set command"),
        ({"container_overrides": {"image": "x"}}, "container_overrides does not take 'image'"),
        (
            {"container_overrides": {"environment": {"WOVE_SECRET": "x"}}},
            "do not pass WOVE_SECRET in container_overrides",
        ),
        (
            {"container_overrides": {"environment": [{"name": "A"}]}},
            r"environment must be a list of \{'name': str, 'value': str\}",
        ),
        ({"scheduling_priority": -1}, "scheduling_priority must be an integer >= 0"),
        ({"share_identifier": ""}, "share_identifier must be a non-empty string"),
        (
            {"max_inline_payload_bytes": 10_000},
            "max_inline_payload_bytes must be an integer from 0 to 6144: the payload travels in "
            "a container override",
        ),
        ({"job_queue": "nope"}, "has no job queue 'nope'; create it"),
        ({"job_definition": "nope"}, "has no active job definition 'nope'; register one"),
    ],
)
def test_configuration_errors_name_the_problem_and_the_fix(
    local_batch: aws_batch_service.LocalBatch, config: dict[str, Any], message: str
) -> None:
    merged = {**batch_config(local_batch.endpoint_url), **config}
    configure(bad={key: value for key, value in merged.items() if value is not None})

    with pytest.raises(wove.InvalidOptionError, match=message):
        answer_in("bad")


@pytest.mark.parametrize("service", [None, "s3"])
def test_client_that_is_not_a_batch_client_is_refused(service: str | None) -> None:
    config = {"job_queue": QUEUE, "job_definition": DEFINITION, "security": "env:WOVE_SECRET"}
    client = "batch" if service is None else boto3.client(service, region_name="us-east-1")
    configure(bad={**config, "client": client})
    try:
        with pytest.raises(
            wove.InvalidOptionError,
            match=r"client must be a boto3 Batch client, boto3\.client\('batch', \.\.\.\), got",
        ):
            answer_in("bad")
    finally:
        if not isinstance(client, str):
            client.close()


def test_client_and_connection_settings_together_are_refused(batch_client: Any) -> None:
    configure(bad={**batch_config("http://127.0.0.1:1"), "client": batch_client})

    with pytest.raises(wove.InvalidOptionError, match="set client or aws_access_key_id, "):
        answer_in("bad")


def test_batch_options_outside_container_overrides_are_unknown(
    local_batch: aws_batch_service.LocalBatch,
) -> None:
    configure(bad=batch_config(local_batch.endpoint_url, environment={"A": "b"}))

    with pytest.raises(wove.UnknownOptionError, match=r"unknown option 'environment'"):
        answer_in("bad")


def test_unreachable_endpoint_fails_when_the_environment_starts() -> None:
    configure(gone=batch_config(f"http://127.0.0.1:{backend_services.free_port()}"))

    with pytest.raises(ConnectionError, match=r"cannot reach AWS Batch at http://127\.0\.0\.1:"):
        answer_in("gone")


# -- the adapter's options, for real ----------------------------------------------------------
def test_own_client_and_container_overrides_are_used(
    local_batch: aws_batch_service.LocalBatch, batch_client: Any
) -> None:
    key = f"options-{secrets.token_hex(4)}"
    config = batch_config(None, container_overrides={"environment": {"STAGE": "test"}})
    for connection in ("region_name", "aws_access_key_id", "aws_secret_access_key"):
        del config[connection]
    configure(batch={**config, "client": batch_client})

    with weave(environment="batch", delivery_timeout=HANG_GUARD) as w:

        @w.do(delivery_idempotency_key=key)
        def stage() -> str | None:
            return os.environ.get("STAGE")

    assert w.result.stage == "test"
    job = job_named(batch_client, key, *FINAL)
    assert environment_of(job)["STAGE"] == "test"
    # The adapter used the caller's client and left it open.
    assert batch_client.describe_job_queues(jobQueues=[QUEUE])["jobQueues"]


def test_ten_megabyte_argument_travels_by_reference(
    local_batch: aws_batch_service.LocalBatch, batch_client: Any
) -> None:
    configure(batch=batch_config(local_batch.endpoint_url))
    key = f"large-{secrets.token_hex(4)}"
    blob = secrets.token_bytes(10 * 1024 * 1024)

    with weave(environment="batch", delivery_timeout=HANG_GUARD, blob=blob) as w:

        @w.do(delivery_idempotency_key=key)
        def digest(blob: bytes) -> tuple[int, bytes]:
            return len(blob), blob[-16:]

    assert w.result.digest == (len(blob), blob[-16:])
    # The job carried only a signed reference to the payload on the callback server.
    payload = environment_of(job_named(batch_client, key))["WOVE_PAYLOAD"]
    assert len(payload) < 1024
    assert "payload_ref" in payload


# -- (f) the job command ----------------------------------------------------------------------
@pytest.fixture
def logs(local_batch: aws_batch_service.LocalBatch) -> Iterator[Any]:
    client = local_batch.client("logs")
    yield client
    client.close()


def job_output(logs: Any, job: dict[str, Any]) -> str:
    stream = job["container"]["logStreamName"]
    events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
    return "\n".join(event["message"] for event in events)


def submit_by_hand(client: Any, payload: str) -> str:
    name = f"by-hand-{secrets.token_hex(4)}"
    client.submit_job(
        jobName=name,
        jobQueue=QUEUE,
        jobDefinition=DEFINITION,
        containerOverrides={"environment": [{"name": "WOVE_PAYLOAD", "value": payload}]},
    )
    return name


def test_job_command_reports_once_and_refuses_copies(
    local_batch: aws_batch_service.LocalBatch, batch_client: Any, logs: Any
) -> None:
    # Inline payloads here, so a copy of the job is complete without the callback server.
    configure(batch=batch_config(local_batch.endpoint_url, max_inline_payload_bytes=6144))
    key = f"helper-{secrets.token_hex(4)}"
    assert answer_in("batch", delivery_idempotency_key=key) == 42

    original = job_named(batch_client, key, *FINAL)
    assert original["status"] == "SUCCEEDED"
    assert "wove_aws_batch.job: task_result" in job_output(logs, original)

    # A second copy of the same signed payload, submitted with Batch's own API (the job
    # definition's default command is the same), does not run: exit 0, nothing reported.
    payload = environment_of(original)["WOVE_PAYLOAD"]
    copy = job_named(batch_client, submit_by_hand(batch_client, payload), *FINAL)
    assert copy["status"] == "SUCCEEDED"
    assert "wove_aws_batch.job: not_claimed" in job_output(logs, copy)

    # A payload nobody signed is refused before anything is unpickled; Batch records a failure.
    forged = job_named(batch_client, submit_by_hand(batch_client, "not a signed payload"), *FINAL)
    assert forged["status"] == "FAILED"
    assert "wove_aws_batch.job: refused:" in job_output(logs, forged)


def test_run_job_without_a_payload_says_what_it_is_for() -> None:
    with pytest.raises(LookupError, match="WOVE_PAYLOAD is not set: this command runs"):
        run_job({})


# -- what the adapter sends Batch -------------------------------------------------------------
def test_adapter_passes_scheduling_options_and_describes_jobs_in_batches(
    local_batch: aws_batch_service.LocalBatch, batch_client: Any
) -> None:
    """Submissions carry the fair-share options; the status of many jobs costs one call."""
    from wove.backends import BackendJob
    from wove_aws_batch import AWSBatchAdapter

    submitted: list[dict[str, Any]] = []
    described: list[list[str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "SubmitJob":
            submitted.append(params)
        elif model.name == "DescribeJobs":
            described.append(list(params["jobs"]))

    batch_client.meta.events.register("provide-client-params.batch", record)
    config = {
        **BASE,
        "client": batch_client,
        "share_identifier": "blue",
        "scheduling_priority": 5,
    }

    async def scenario() -> list[Any]:
        adapter = AWSBatchAdapter()
        await adapter.start("direct", config)
        try:
            jobs = [
                BackendJob(
                    run_id=f"direct-{index}-{secrets.token_hex(3)}",
                    task_id="direct",
                    job_id=f"direct-{index}-{secrets.token_hex(3)}",
                    idempotency_key=None,
                    attempt=1,
                    payload="not a signed payload",  # the job refuses it and exits 2
                    environment="direct",
                )
                for index in range(5)
            ]
            for job in jobs:
                job.handle = await adapter.submit(job)
            return list(await asyncio.gather(*(adapter.status(job) for job in jobs)))
        finally:
            await adapter.close()

    statuses = asyncio.run(scenario())

    assert len(submitted) == 5
    assert all(params["shareIdentifier"] == "blue" for params in submitted)
    assert all(params["schedulingPriorityOverride"] == 5 for params in submitted)
    assert len(described) == 1, described
    assert len(described[0]) == 5
    assert all(status.state in ("pending", "running", "failed") for status in statuses)
