"""The backend adapter base beyond the conformance suite: configuration errors, duplicates,
jobs that end without reporting, and the worker refusing runs it may not start."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wove
from wove import DeliveryOrphanedError, InvalidOptionError, RunNotClaimedError, UnknownOptionError
from wove._callback_server import acquire_callback_server
from wove._frames import Delivery, RunTask, TaskCancelled, TaskStarted, new_run_id
from wove._registry import get_registry
from wove._security import LineCodec, Security
from wove._serializer import dumps
from wove.backends import BackendJob, DuplicateJobError
from wove.integrations.worker import run
from wove.plugins import RegisterExecutor, hookimpl
from wove.testing import free_port

from .subprocess_backend import SubprocessAdapter, SubprocessExecutor

os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))


class _DuplicateRefusingAdapter(SubprocessAdapter):
    """Refuses a job id it has seen, as ARQ does while it keeps a job's result."""

    name = "dedup"
    seen: set[str] = set()

    async def submit(self, job: BackendJob) -> Any:
        if job.job_id in self.seen:
            raise DuplicateJobError(f"job {job.job_id!r} exists")
        self.seen.add(job.job_id)
        return await super().submit(job)


class _DedupExecutor(SubprocessExecutor):
    adapter_class = _DuplicateRefusingAdapter


class _Plugin:
    @hookimpl
    def register_executors(self, register: RegisterExecutor) -> None:
        register(name="subprocess", kind="backend", load=lambda: SubprocessExecutor)
        register(name="dedup", kind="backend", load=lambda: _DedupExecutor)


@pytest.fixture(scope="module", autouse=True)
def backend_plugins() -> Iterator[None]:
    plugin = _Plugin()
    get_registry().register_plugin(plugin, distribution="wove-core-tests")
    yield
    get_registry().unregister_plugin(plugin)


def configure(executor: str = "subprocess", **executor_config: Any) -> None:
    config = {"security": "env:WOVE_SECRET", "status_interval": 0.2, **executor_config}
    wove.config(environments={"jobs": {"executor": executor, "executor_config": config}})


def test_a_backend_environment_without_security_is_refused():
    wove.config(environments={"jobs": {"executor": "subprocess", "executor_config": {}}})

    with (
        pytest.raises(InvalidOptionError, match="security is required") as caught,
        wove.weave(environment="jobs") as w,
    ):

        @w.do
        def never() -> None:
            raise AssertionError("ran without security")

    assert "WOVE_SECRET" in str(caught.value)


def test_a_public_callback_host_needs_tls_or_insecure():
    configure(callback_host="192.0.2.10")

    with (
        pytest.raises(ValueError, match="callback_cert_file") as caught,
        wove.weave(environment="jobs") as w,
    ):

        @w.do
        def never() -> None:
            raise AssertionError("ran with an unprotected public callback server")

    assert "insecure=True" in str(caught.value)


def test_an_unknown_backend_key_gets_a_hint():
    configure(status_intervall=1)

    with (
        pytest.raises(UnknownOptionError, match="status_interval"),
        wove.weave(environment="jobs") as w,
    ):

        @w.do
        def never() -> None:
            raise AssertionError("ran with a misspelt option")


def test_a_duplicate_job_id_fails_the_task_with_a_clear_message():
    configure("dedup")

    with wove.weave(environment="jobs") as w:

        @w.do(delivery_idempotency_key="order-7")
        def first() -> int:
            return 1

    assert w.result.first == 1
    with (
        pytest.raises(wove.EnvironmentExecutionError, match="duplicate") as caught,
        wove.weave(environment="jobs") as w2,
    ):

        @w2.do(delivery_idempotency_key="order-7")
        def second() -> int:
            return 2

    assert "order-7" in str(caught.value)


def test_a_job_whose_worker_cannot_reach_the_callback_server_fails_the_weave(monkeypatch):
    # The worker process inherits these: it gives up posting quickly and exits non-zero.
    monkeypatch.setenv("WOVE_CALLBACK_RETRY_SECONDS", "0.3")
    configure(callback_url=f"http://127.0.0.1:{free_port()}")

    with (
        pytest.raises(DeliveryOrphanedError, match="failed") as caught,
        wove.weave(environment="jobs", delivery_timeout=60) as w,
    ):

        @w.do
        def unreachable() -> int:
            return 1

    assert "subprocess reports job" in str(caught.value)


def test_a_worker_refuses_a_run_nobody_waits_for(tmp_path: Path):
    security = Security(os.environ["WOVE_SECRET"])
    marker = tmp_path / "ran"

    # A server that is up, but where this run was never registered (or already finished).
    async def scenario() -> None:
        server = await acquire_callback_server(security=security)
        try:
            frame = RunTask(
                run_id=new_run_id("stale"),
                task_id="stale",
                callable=dumps(marker.touch, "test"),
                args=dumps({}, "test"),
                delivery=Delivery(callback=server.url),
            )
            line = LineCodec(security).encode(frame)
            with pytest.raises(RunNotClaimedError, match="no longer waits"):
                await asyncio.to_thread(run, line, security=security)
        finally:
            await server.release()

    asyncio.run(scenario())
    assert not marker.exists()


def test_a_run_cancelled_before_its_worker_claims_it_never_starts(tmp_path: Path):
    security = Security(os.environ["WOVE_SECRET"])
    marker = tmp_path / "ran"
    seen: list[Any] = []

    async def scenario() -> Any:
        server = await acquire_callback_server(security=security)
        try:
            frame = RunTask(
                run_id=new_run_id("cancelled-early"),
                task_id="cancelled-early",
                callable=dumps(marker.touch, "test"),
                args=dumps({}, "test"),
                delivery=Delivery(callback=server.url),
            )
            server.register_run(frame.run_id, seen.append)
            server.request_cancel(frame.run_id)  # the weave gave up while the job was queued
            line = LineCodec(security).encode(frame)
            return await asyncio.to_thread(run, line, security=security)
        finally:
            await server.release()

    terminal = asyncio.run(scenario())

    assert isinstance(terminal, TaskCancelled)
    assert not marker.exists()
    assert [type(frame) for frame in seen] == [TaskStarted, TaskCancelled]
