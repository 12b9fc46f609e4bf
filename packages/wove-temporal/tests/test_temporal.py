"""The ``temporal`` executor against a real Temporal dev server and real workers: the adapter's
status of a failed workflow, workflow ids, configuration errors and the worker-side helpers.
A killed worker, a restarted server and cancelling for real are scenarios of the conformance
kit (test_conformance.py)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError
from temporalio.worker import Worker

import wove
from wove.backends import BackendJob, DuplicateJobError
from wove.plugins import (
    Delivery,
    LineCodec,
    RunTask,
    Security,
    dumps,
    new_run_id,
    submit_to_dispatch_loop,
)
from wove.testing import executor_of, free_port, stop_environments
from wove_temporal import (
    ACTIVITY_NAME,
    WORKER_DEFAULTS,
    WORKFLOW_NAME,
    RunPayloadWorkflow,
    TemporalAdapter,
    build_worker,
    run_payload_activity,
)

from .conftest import TASK_QUEUE, backend_services, status_of, temporal_view

SECRET = "env:WOVE_SECRET"
#: A guard so that no test can hang: every weave fails after this many seconds.
GUARD = 30.0


def temporal_environment(target: str, **extra: Any) -> dict[str, Any]:
    return {
        "executor": "temporal",
        "executor_config": {
            "target_host": target,
            "task_queue": TASK_QUEUE,
            "security": SECRET,
            "worker_heartbeat_seconds": 0.5,
            "status_interval": 0.25,
            **extra,
        },
    }


def configure(**environments: dict[str, Any]) -> None:
    wove.config(environments=environments)


@pytest.fixture
def environments() -> Iterator[list[str]]:
    """Names of environments a test configured; their executors are stopped afterwards."""
    names: list[str] = []
    yield names
    stop_environments(*names, timeout=GUARD)


def wait_for(condition: Any, what: str, timeout: float = GUARD) -> None:
    backend_services.wait_until(condition, timeout, what)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# -- (a) the adapter's status of a failed workflow ------------------------------------------


def test_status_quotes_temporals_failure_of_the_activity(
    target: str, temporal_worker: backend_services.WorkerProcess
) -> None:
    """The adapter's status of a failed workflow quotes the activity's failure."""
    key = unique("status")

    async def scenario() -> None:
        adapter = TemporalAdapter()
        await adapter.start("direct", {"target_host": target, "task_queue": TASK_QUEUE})
        try:
            client = await Client.connect(target)
            handle = await client.start_workflow(
                WORKFLOW_NAME,
                args=["not a payload", {"heartbeat_timeout": 1, "start_to_close_timeout": 60}],
                id=key,
                task_queue=TASK_QUEUE,
            )
            job = BackendJob(
                run_id=key,
                task_id="t",
                job_id=key,
                idempotency_key=key,
                attempt=1,
                payload="",
                environment="direct",
                handle=handle,
            )
            status = await adapter.status(job)
            while status.state in ("pending", "running"):
                await asyncio.sleep(0.05)
                status = await adapter.status(job)
            # A payload that does not verify fails the activity for good (non-retryable).
            assert status.state == "failed"
            assert "Activity task failed: wove.FrameRejectedError: unsigned frame refused" in (
                status.detail
            )
        finally:
            await adapter.close()

    asyncio.run(scenario())


# -- (b) workflow ids come from the idempotency key ----------------------------------------------


@pytest.mark.usefixtures("temporal_worker")
def test_workflow_id_is_the_idempotency_key_and_a_duplicate_is_refused(
    target: str, environments: list[str]
) -> None:
    configure(durable=temporal_environment(target))
    environments.append("durable")
    key = unique("order")

    with wove.weave(environment="durable", delivery_timeout=GUARD) as first:

        @first.do(delivery_idempotency_key=key)
        def charge() -> str:
            return "charged once"

    assert first.result.charge == "charged once"
    wait_for(
        lambda: status_of(target, key) == WorkflowExecutionStatus.COMPLETED,
        "Temporal completed the workflow",
    )
    description, result = temporal_view(target, key)
    assert (description.id, description.workflow_type, result) == (
        key,
        WORKFLOW_NAME,
        "task_result",
    )

    # REJECT_DUPLICATE: the closed workflow's id is still taken; the weave reports the refusal.
    with (
        pytest.raises(
            wove.EnvironmentExecutionError, match=rf"refused job '{key}' as a duplicate"
        ) as caught,
        wove.weave(environment="durable", delivery_timeout=GUARD) as second,
    ):

        @second.do(delivery_idempotency_key=key)
        def charge_again() -> str:
            return "charged twice"

    assert caught.value.kind == "wove.DuplicateJobError"
    assert caught.value.source == "transport"
    assert "Temporal already holds workflow" in str(caught.value)
    again, _ = temporal_view(target, key)
    assert again.run_id == description.run_id, "the first workflow was replaced"


def test_adapter_raises_duplicate_job_error_for_a_running_workflow(target: str) -> None:
    async def twice() -> None:
        adapter = TemporalAdapter()
        # Nobody polls this queue: the workflow stays running, waiting for a worker.
        queue = unique("nobody")
        await adapter.start(
            "direct",
            {
                "target_host": target,
                "task_queue": queue,
                "cancel_timeout": 0,
                "workflow_options": {"id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE},
            },
        )
        job_id = unique("direct")
        job = BackendJob(
            run_id=job_id,
            task_id="t",
            job_id=job_id,
            idempotency_key=job_id,
            attempt=1,
            payload="not a payload",
            environment="direct",
        )
        try:
            job.handle = await adapter.submit(job)
            assert job.handle.id == job_id
            assert (await adapter.status(job)).state == "pending"
            with pytest.raises(
                DuplicateJobError, match=rf"Temporal already holds workflow '{job_id}'"
            ):
                await adapter.submit(job)
            assert await adapter.cancel(job) is False  # nobody can confirm it: no worker
            client = await Client.connect(target)
            await client.get_workflow_handle(job_id).terminate(reason="test over")
            assert (await adapter.status(job)).state == "failed"
            missing = BackendJob(
                run_id="gone",
                task_id="t",
                job_id="gone",
                idempotency_key=None,
                attempt=1,
                payload="",
                environment="direct",
                handle=client.get_workflow_handle(unique("never-started")),
            )
            assert (await adapter.status(missing)).state == "missing"
        finally:
            await adapter.close()

    asyncio.run(twice())


# -- (c) configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("executor_config", "message"),
    [
        ({"task_queue": "q"}, r"no Temporal connection: set target_host="),
        ({"target_host": "127.0.0.1:7233"}, r"task_queue is required"),
        ({"target_host": "127.0.0.1:7233", "task_queue": 3}, r"task_queue is required.*got 3"),
        (
            {"target_host": "http://127.0.0.1:7233", "task_queue": "q"},
            r"target_host must be a 'host:port' string \(no scheme\)",
        ),
        (
            {"client": "127.0.0.1:7233", "task_queue": "q"},
            r"client must be a temporalio.client.Client",
        ),
        (
            {"target_host": "127.0.0.1:7233", "task_queue": "q", "namespace": ""},
            r"namespace must be a non-empty string",
        ),
        (
            {"target_host": "x:1", "task_queue": "q", "workflow_options": {"id": "mine"}},
            r"workflow_options may not set id: Wove sets the workflow id",
        ),
        (
            {"target_host": "x:1", "task_queue": "q", "workflow_options": {"run_timout": 5}},
            r"workflow_options does not take 'run_timout'; it takes .*run_timeout.*"
            r"Did you mean 'run_timeout'",
        ),
        (
            {"target_host": "x:1", "task_queue": "q", "workflow_options": {"run_timeout": "5s"}},
            r"run_timeout'\] must be a datetime.timedelta or a positive number of seconds",
        ),
        (
            {"target_host": "x:1", "task_queue": "q", "activity_options": {"heartbeat": 5}},
            r"activity_options does not take 'heartbeat'; it takes heartbeat_timeout, .*"
            r"Did you mean 'heartbeat_timeout'",
        ),
        (
            {"target_host": "x:1", "task_queue": "q", "activity_options": {"retry_policy": 3}},
            r"retry_policy'\] must be a temporalio.common.RetryPolicy",
        ),
        (
            {"target_host": "x:1", "task_queue": "q", "connect_options": {"tls_config": 1}},
            r"connect_options does not take 'tls_config'; it takes .*tls",
        ),
        ({"target_host": "x:1", "task_queue": "q", "cancel_timeout": -1}, r"cancel_timeout must"),
        ({"target_host": "x:1", "task_queue": "q", "temporal_host": "x"}, r"temporal_host"),
    ],
)
def test_configuration_errors_name_the_problem_and_the_fix(
    executor_config: dict[str, Any], message: str, environments: list[str]
) -> None:
    configure(
        broken={"executor": "temporal", "executor_config": {"security": SECRET, **executor_config}}
    )
    environments.append("broken")

    with (
        pytest.raises(wove.WoveError, match=message),
        wove.weave(environment="broken", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None


def test_unreachable_server_says_where_it_looked(environments: list[str]) -> None:
    port = free_port()
    configure(
        gone={
            "executor": "temporal",
            "executor_config": {
                "security": SECRET,
                "target_host": f"127.0.0.1:{port}",
                "task_queue": "q",
            },
        }
    )
    environments.append("gone")

    with (
        pytest.raises(
            ConnectionError, match=rf"cannot reach the Temporal server at 127.0.0.1:{port}"
        ),
        wove.weave(environment="gone", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None


def test_unknown_namespace_is_refused_at_start(target: str, environments: list[str]) -> None:
    configure(broken=temporal_environment(target, namespace="no-such-namespace"))
    environments.append("broken")

    with (
        pytest.raises(
            wove.InvalidOptionError,
            match=r"has no namespace 'no-such-namespace'; create it \(temporal operator",
        ),
        wove.weave(environment="broken", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None


@pytest.mark.usefixtures("temporal_worker")
def test_executor_uses_a_given_client(target: str, environments: list[str]) -> None:
    # The client is connected on the dispatch loop, where the executor will use it.
    client = submit_to_dispatch_loop(Client.connect(target)).result(GUARD)
    configure(
        given={
            "executor": "temporal",
            "executor_config": {
                "client": client,
                "task_queue": TASK_QUEUE,
                "security": SECRET,
                "activity_options": {
                    "start_to_close_timeout": timedelta(minutes=5),
                    "retry_policy": RetryPolicy(maximum_attempts=2),
                },
                "workflow_options": {"execution_timeout": 600},
            },
        }
    )
    environments.append("given")

    with wove.weave(environment="given", delivery_timeout=GUARD) as w:

        @w.do
        def answer() -> int:
            return 42

    assert w.result.answer == 42
    executor: Any = executor_of("given")
    adapter: Any = executor.adapter
    assert adapter._client is client


# -- (d) the worker-side helpers -----------------------------------------------------------------


def test_build_worker_registers_the_workflow_and_activity(target: str) -> None:
    @activity.defn
    async def extra_activity() -> int:
        return 1

    async def build() -> Worker:
        client = await Client.connect(target)
        return build_worker(client, "q", activities=[extra_activity], max_concurrent_activities=3)

    worker = asyncio.run(build())
    assert isinstance(worker, Worker)
    config = worker.config()
    assert config["task_queue"] == "q"
    assert list(config["workflows"]) == [RunPayloadWorkflow]
    assert list(config["activities"]) == [run_payload_activity, extra_activity]
    assert config["max_concurrent_activities"] == 3
    assert WORKER_DEFAULTS["max_concurrent_activities"] == 100
    assert ACTIVITY_NAME == "wove_temporal.run_payload_activity"
    with pytest.raises(TypeError, match="needs a non-empty task_queue string"):
        build_worker(None, "")  # type: ignore[arg-type]


@pytest.mark.usefixtures("temporal_worker")
def test_activity_skips_a_run_nobody_waits_for_and_refuses_forgeries(
    target: str, environments: list[str]
) -> None:
    configure(durable=temporal_environment(target))
    environments.append("durable")
    with wove.weave(environment="durable", delivery_timeout=GUARD) as w:

        @w.do
        def warm() -> int:
            return 1

    assert w.result.warm == 1
    executor: Any = executor_of("durable")
    frame = RunTask(
        run_id=new_run_id("orphan"),
        task_id="orphan",
        callable=dumps(lambda: 1, "test"),
        args=dumps({}, "test"),
        delivery=Delivery(callback=executor.callback_server.url),
    )
    line = LineCodec(executor.security).encode(frame).decode()
    forged = LineCodec(Security(secrets.token_bytes(32))).encode(frame).decode()

    async def through_temporal(payload: str, workflow_id: str) -> str | BaseException:
        client = await Client.connect(target)
        try:
            result: str = await client.execute_workflow(
                WORKFLOW_NAME,
                args=[payload, {"start_to_close_timeout": 60, "heartbeat_timeout": 5}],
                id=workflow_id,
                task_queue=TASK_QUEUE,
            )
            return result
        except WorkflowFailureError as error:
            return error

    assert asyncio.run(through_temporal(line, unique("orphan"))) == "not_claimed"
    refused = asyncio.run(through_temporal(forged, unique("forged")))
    assert isinstance(refused, WorkflowFailureError)
    assert isinstance(refused.cause, ActivityError)
    assert "FrameRejectedError: frame refused: bad signature" in str(refused.cause.cause)
