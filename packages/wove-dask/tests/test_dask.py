"""The ``dask`` executor against a real Dask scheduler and worker processes: a restarted
cluster (the client reconnecting, or the adapter replacing it), the adapter's states, task keys,
configuration errors and the worker side. A killed worker and cancelling for real are scenarios
of the conformance kit (test_conformance.py)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

import wove
from wove import FrameRejectedError
from wove.backends import BackendJob, DuplicateJobError
from wove.plugins import Delivery, LineCodec, RunTask, Security, dumps, new_run_id
from wove.testing import executor_of, free_port, stop_environments
from wove_dask import NOT_CLAIMED, DaskAdapter, DaskExecutor, run_payload

from .conftest import NOWHERE, backend_services, dask_service, scheduler_state

SECRET = "env:WOVE_SECRET"
#: A guard so that no test can hang: every weave fails after this many seconds.
GUARD = 30.0


def dask_environment(address: str, **extra: Any) -> dict[str, Any]:
    return {
        "executor": "dask",
        "executor_config": {
            "address": address,
            "security": SECRET,
            "worker_heartbeat_seconds": 0.5,
            "status_interval": 0.25,
            **extra,
        },
    }


def configure(**environments: dict[str, Any]) -> None:
    wove.config(environments=environments)


def adapter_of(name: str) -> DaskAdapter:
    executor: Any = executor_of(name)
    adapter: DaskAdapter = executor.adapter
    return adapter


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


# -- (a) the engine restarted between two weaves -------------------------------------------------


@pytest.mark.parametrize(
    "who_reconnects",
    [
        pytest.param("dask", id="the client reconnects by itself"),
        pytest.param("adapter", id="the adapter replaces a client that gave up"),
    ],
)
def test_cluster_restart_between_weaves_reconnects(
    who_reconnects: str, environments: list[str]
) -> None:
    cluster = dask_service.DaskCluster(nthreads=2).start()
    try:
        # A client retries a lost scheduler for connect_timeout seconds, then closes itself.
        timeout = 30 if who_reconnects == "dask" else 0.5
        configure(private=dask_environment(cluster.address, connect_timeout=timeout))
        environments.append("private")

        with wove.weave(environment="private", delivery_timeout=GUARD) as first:

            @first.do
            def before() -> str:
                return "before"

        assert first.result.before == "before"
        client = adapter_of("private")._client
        assert client is not None
        if who_reconnects == "dask":
            cluster.restart()
        else:
            cluster.stop()
            wait_for(lambda: client.status == "closed", "the Dask client gave up and closed")
            cluster.start()

        with wove.weave(environment="private", delivery_timeout=GUARD) as second:

            @second.do
            def after() -> str:
                return "after"

        assert second.result.after == "after"
        now = adapter_of("private")._client
        assert now is not None
        assert now.status == "running"
        assert (now is client) == (who_reconnects == "dask")
    finally:
        stop_environments(*environments)
        environments.clear()
        cluster.stop()


# -- (b) the adapter's states and cancel ------------------------------------------------------


def test_adapter_maps_dask_states_and_cancels_a_queued_task(dask_address: str) -> None:
    async def exercise() -> None:
        adapter = DaskAdapter()
        await adapter.start("direct", {"address": dask_address, "submit_options": NOWHERE})
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
            assert job.handle.key == job_id
            status = await adapter.status(job)
            assert status.state == "pending"
            with pytest.raises(DuplicateJobError, match=rf"already holds task '{job_id}'"):
                await adapter.submit(job)
            assert await adapter.cancel(job) is True
            assert (await adapter.status(job)).state == "cancelled"
        finally:
            await adapter.close()

        # Without the resource, the worker runs the forged payload, which it refuses.
        adapter = DaskAdapter()
        await adapter.start("direct", {"address": dask_address})
        forged = BackendJob(
            run_id=job_id,
            task_id="t",
            job_id=unique("forged"),
            idempotency_key=None,
            attempt=1,
            payload="not a payload",
            environment="direct",
        )
        try:
            forged.handle = await adapter.submit(forged)
            while forged.handle.status == "pending":  # noqa: ASYNC110 - Dask's own future
                await asyncio.sleep(0.05)
            status = await adapter.status(forged)
            assert status.state == "failed"
            assert status.detail.startswith("FrameRejectedError: ")
        finally:
            await adapter.close()

    asyncio.run(exercise())


# -- (c) task keys come from the idempotency key -------------------------------------------------


def test_task_key_is_the_idempotency_key_and_a_duplicate_is_refused(
    dask_address: str, observer: Client, environments: list[str]
) -> None:
    configure(cluster=dask_environment(dask_address), other=dask_environment(dask_address))
    environments.extend(["cluster", "other"])
    key = unique("order")

    with wove.weave(delivery_timeout=GUARD) as first:

        @first.do(environment="cluster", delivery_idempotency_key=key)
        def charge() -> str:
            time.sleep(0.5)
            return "charged once"

        @first.do
        def look() -> str | None:
            wait_for(lambda: scheduler_state(observer, key) is not None, "the task reached Dask")
            return scheduler_state(observer, key)

    assert first.result.charge == "charged once"
    assert first.result.look in ("waiting", "queued", "processing")
    # Held for idempotency_window after the weave: Dask keeps the key and run_payload's word
    # (the result event reaches the weave a moment before run_payload returns).
    wait_for(lambda: scheduler_state(observer, key) == "memory", "the task finished in Dask")
    held, _ = adapter_of("cluster")._held[key]
    assert held.key == key
    # Called from this thread, the asynchronous client's result() blocks until it has it.
    assert held.result(timeout=GUARD) == "task_result"

    # The same environment (its client holds the key) and another one (another client: the
    # scheduler holds it) both refuse; the weave reports the adapter's DuplicateJobError.
    for environment, says in (("cluster", "this Dask client"), ("other", "the Dask scheduler")):
        with (
            pytest.raises(
                wove.EnvironmentExecutionError, match=rf"refused job '{key}' as a duplicate"
            ) as caught,
            wove.weave(environment=environment, delivery_timeout=GUARD) as second,
        ):

            @second.do(delivery_idempotency_key=key)
            def charge_again() -> str:
                return "charged twice"

        assert caught.value.kind == "wove.DuplicateJobError"
        assert caught.value.source == "transport"
        assert f"{says} already holds task '{key}'" in str(caught.value)


def test_without_an_idempotency_window_a_key_runs_again_after_its_weave(
    dask_address: str, tmp_path: Path, environments: list[str]
) -> None:
    configure(cluster=dask_environment(dask_address, idempotency_window=0))
    environments.append("cluster")
    key = unique("again")
    for attempt in (1, 2):
        with wove.weave(environment="cluster", delivery_timeout=GUARD) as w:

            @w.do(delivery_idempotency_key=key)
            def charge() -> int:
                return attempt  # noqa: B023 - the weave ends within this iteration

        assert w.result.charge == attempt
        # Dask forgets a task once no client holds its future.
        with Client(dask_address, timeout=GUARD, set_as_default=False) as observer:
            wait_for(lambda: scheduler_state(observer, key) is None, "Dask forgot the key")


# -- (d) configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("executor_config", "message"),
    [
        ({}, r"no Dask scheduler: set address='tcp://127.0.0.1:8786'"),
        ({"address": 8786}, r"address must be a scheduler address string"),
        (
            {"address": "tcp://127.0.0.1:1", "client": object()},
            r"address and client both name a Dask scheduler; keep only one",
        ),
        ({"client": "tcp://127.0.0.1:8786"}, r"client must be a distributed.Client.*address="),
        (
            {"address": "tcp://127.0.0.1:1", "submit_options": {"key": "x"}},
            r"submit_options may not set key: Wove sets key from the idempotency key",
        ),
        (
            {"address": "tcp://127.0.0.1:1", "submit_options": {"resource": {"GPU": 1}}},
            r"submit_options does not take 'resource'; it takes .*Did you mean 'resources'",
        ),
        (
            {"address": "tcp://127.0.0.1:1", "submit_options": {"retries": 2}},
            r"retries'\] must be 0: a payload runs at most once.*task's retries option.*got 2",
        ),
        (
            {"address": "tcp://127.0.0.1:1", "submit_options": {"resources": ["GPU"]}},
            r"resources'\] must be a dict mapping resource names to amounts",
        ),
        (
            {"address": "tcp://127.0.0.1:1", "submit_options": {"priority": "high"}},
            r"priority'\] must be an integer",
        ),
        ({"address": "tcp://127.0.0.1:1", "submit_options": 3}, r"submit_options must be a dict"),
        ({"address": "tcp://127.0.0.1:1", "connect_timeout": 0}, r"connect_timeout must be a"),
        ({"address": "tcp://127.0.0.1:1", "idempotency_window": "1h"}, r"idempotency_window"),
        ({"address": "tcp://127.0.0.1:1", "scheduler": "x"}, r"scheduler"),
    ],
)
def test_configuration_errors_name_the_problem_and_the_fix(
    executor_config: dict[str, Any], message: str, environments: list[str]
) -> None:
    configure(
        broken={"executor": "dask", "executor_config": {"security": SECRET, **executor_config}}
    )
    environments.append("broken")

    with (
        pytest.raises(wove.WoveError, match=message),
        wove.weave(environment="broken", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None


def test_unreachable_scheduler_says_where_it_looked(environments: list[str]) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    configure(gone=dask_environment(address, connect_timeout=0.5))
    environments.append("gone")

    with (
        pytest.raises(ConnectionError, match=rf"cannot reach the Dask scheduler at '{address}'"),
        wove.weave(environment="gone", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None


def test_a_given_client_is_used_and_left_open(
    dask_address: str, observer: Client, environments: list[str]
) -> None:
    configure(
        mine={"executor": "dask", "executor_config": {"client": observer, "security": SECRET}}
    )
    environments.append("mine")
    key = unique("given")

    with wove.weave(environment="mine", delivery_timeout=GUARD) as w:

        @w.do(delivery_idempotency_key=key)
        def where() -> str:
            return "on the cluster"

    assert w.result.where == "on the cluster"
    assert key in observer.futures  # submitted through the given client, and held
    stop_environments("mine")
    environments.clear()
    assert observer.status == "running"
    assert key not in observer.futures  # the environment let go of what it held
    assert observer.submit(len, "abc").result(timeout=GUARD) == 3
    assert issubclass(DaskExecutor, wove.Executor)


def test_an_asynchronous_client_of_another_loop_is_refused(
    dask_address: str, environments: list[str]
) -> None:
    async def refused() -> None:
        async with Client(dask_address, asynchronous=True, set_as_default=False) as client:
            adapter = DaskAdapter()
            with pytest.raises(wove.InvalidOptionError, match=r"asynchronous distributed.Client"):
                await adapter.start("x", {"client": client})

    asyncio.run(refused())


# -- (e) the worker-side helper ------------------------------------------------------------------


def test_run_payload_skips_a_run_nobody_waits_for_and_refuses_forgeries(
    dask_address: str, environments: list[str]
) -> None:
    configure(cluster=dask_environment(dask_address))
    environments.append("cluster")
    with wove.weave(environment="cluster", delivery_timeout=GUARD) as w:

        @w.do
        def warm() -> int:
            return 1

    assert w.result.warm == 1
    executor: Any = executor_of("cluster")
    frame = RunTask(
        run_id=new_run_id("orphan"),
        task_id="orphan",
        callable=dumps(lambda: 1, "test"),
        args=dumps({}, "test"),
        delivery=Delivery(callback=executor.callback_server.url),
    )
    line = LineCodec(executor.security).encode(frame).decode()
    assert run_payload(line) == NOT_CLAIMED == "not_claimed"

    forged = LineCodec(Security(secrets.token_bytes(32))).encode(frame).decode()
    with pytest.raises(FrameRejectedError):
        run_payload(forged)


def test_run_payload_submitted_by_hand_reports_to_the_weave(
    dask_address: str, observer: Client, environments: list[str]
) -> None:
    """The documented contract: ``client.submit(run_payload, line, key=..., pure=False)`` is
    all the executor does; here a run registered on the callback server is submitted so."""
    configure(cluster=dask_environment(dask_address))
    environments.append("cluster")
    with wove.weave(environment="cluster", delivery_timeout=GUARD) as w:

        @w.do
        def warm() -> int:
            return 1

    assert w.result.warm == 1
    executor: Any = executor_of("cluster")
    received: list[Any] = []
    run_id = new_run_id("by-hand")
    executor.callback_server.register_run(run_id, received.append)  # from any thread
    frame = RunTask(
        run_id=run_id,
        task_id="by-hand",
        callable=dumps(lambda: 6 * 7, "test"),
        args=dumps({}, "test"),
        delivery=Delivery(callback=executor.callback_server.url),
    )
    line = LineCodec(executor.security).encode(frame).decode()
    try:
        future = observer.submit(run_payload, line, key=run_id, pure=False)
        assert future.result(timeout=GUARD) == "task_result"
        wait_for(lambda: any(type(e).__name__ == "TaskResult" for e in received), "the result")
    finally:
        executor.callback_server.unregister_run(run_id)
