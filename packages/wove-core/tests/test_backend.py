"""The backend adapter base beyond the conformance suite: configuration errors, duplicates,
jobs that end without reporting, the worker refusing runs it may not start, and the one word a
task system's job returns (``run_job``/``arun_job``)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wove
from wove import DeliveryOrphanedError, InvalidOptionError, RunNotClaimedError, UnknownOptionError
from wove._callback_server import acquire_callback_server
from wove._frames import (
    Delivery,
    RunTask,
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskStarted,
    new_run_id,
)
from wove._registry import get_registry
from wove._security import LineCodec, Security
from wove._serializer import dumps
from wove.backends import BackendJob, DuplicateJobError, safe_job_name
from wove.integrations import worker
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


class _RecordingAdapter(SubprocessAdapter):
    """Keeps every payload line it hands to a worker."""

    name = "recording"
    payloads: list[str] = []

    async def submit(self, job: BackendJob) -> Any:
        self.payloads.append(job.payload)
        return await super().submit(job)


class _RecordingExecutor(SubprocessExecutor):
    adapter_class = _RecordingAdapter


class _Plugin:
    @hookimpl
    def register_executors(self, register: RegisterExecutor) -> None:
        register(name="subprocess", kind="backend", load=lambda: SubprocessExecutor)
        register(name="dedup", kind="backend", load=lambda: _DedupExecutor)
        register(name="recording", kind="backend", load=lambda: _RecordingExecutor)


@pytest.fixture(autouse=True)  # each test gets a fresh plugin registry (wove_fresh_state)
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


def test_max_inline_payload_bytes_zero_sends_every_payload_by_reference():
    configure("recording", max_inline_payload_bytes=0)
    _RecordingAdapter.payloads.clear()

    with wove.weave(environment="jobs") as w:

        @w.do
        def small() -> int:
            return 7

    assert w.result.small == 7
    (line,) = _RecordingAdapter.payloads
    assert '"type":"payload_ref"' in line
    assert '"type":"run_task"' not in line


def test_a_negative_inline_limit_is_refused_with_the_key():
    configure(max_inline_payload_bytes=-1)

    with (
        pytest.raises(InvalidOptionError, match=r"max_inline_payload_bytes must be an integer >="),
        wove.weave(environment="jobs") as w,
    ):

        @w.do
        def never() -> None:
            raise AssertionError("ran with a negative inline limit")


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


# -- run_job / arun_job: the body of a task system's job ----------------------------------------


def _fail() -> None:
    raise KeyError("missing")


def _job_frame(server_url: str, name: str, function: Any) -> RunTask:
    return RunTask(
        run_id=new_run_id(name),
        task_id=name,
        callable=dumps(function, "test"),
        args=dumps({}, "test"),
        delivery=Delivery(callback=server_url),
    )


def test_job_outcomes_are_the_terminal_events_wire_tags():
    tags = [kind.__struct_config__.tag for kind in (TaskResult, TaskError, TaskCancelled)]
    assert tags == [worker.TASK_RESULT, worker.TASK_ERROR, worker.TASK_CANCELLED]
    assert worker.NOT_CLAIMED == "not_claimed"


@pytest.mark.parametrize("cancelled_early", [False, True], ids=["ran", "cancelled-early"])
def test_run_job_returns_the_tag_of_the_event_the_weave_received(
    tmp_path: Path, cancelled_early: bool
):
    security = Security(os.environ["WOVE_SECRET"])
    marker = tmp_path / "ran"
    seen: list[Any] = []

    async def scenario() -> list[str]:
        server = await acquire_callback_server(security=security)
        try:
            outcomes = []
            for name, function in (("ok", marker.touch), ("fails", _fail)):
                frame = _job_frame(server.url, name, function)
                server.register_run(frame.run_id, seen.append)
                if cancelled_early:
                    server.request_cancel(frame.run_id)
                line = LineCodec(security).encode(frame)
                outcomes.append(await asyncio.to_thread(worker.run_job, line, security=security))
            return outcomes
        finally:
            await server.release()

    outcomes = asyncio.run(scenario())

    if cancelled_early:
        assert outcomes == ["task_cancelled", "task_cancelled"]
        assert not marker.exists()
        assert [type(frame) for frame in seen] == [TaskStarted, TaskCancelled] * 2
    else:
        assert outcomes == ["task_result", "task_error"]
        assert marker.exists()
        assert [type(frame) for frame in seen] == [TaskStarted, TaskResult, TaskStarted, TaskError]


def test_run_job_logs_a_run_nobody_waits_for_and_returns_not_claimed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    security = Security(os.environ["WOVE_SECRET"])
    marker = tmp_path / "ran"

    async def scenario() -> tuple[str, str]:
        server = await acquire_callback_server(security=security)
        try:  # the run was never registered: the weave gave up on it, or it already finished
            stale = LineCodec(security).encode(_job_frame(server.url, "stale", marker.touch))
            from_thread = await asyncio.to_thread(worker.run_job, stale, security=security)
            again = LineCodec(security).encode(_job_frame(server.url, "stale2", marker.touch))
            from_loop = await worker.arun_job(again, security=security)
            return from_thread, from_loop
        finally:
            await server.release()

    with caplog.at_level(logging.INFO, logger="wove.worker"):
        outcomes = asyncio.run(scenario())

    assert outcomes == ("not_claimed", "not_claimed")
    assert not marker.exists()
    skipped = [record for record in caplog.records if record.name == "wove.worker"]
    assert [record.levelno for record in skipped] == [logging.INFO, logging.INFO]
    assert "no longer waits" in skipped[0].getMessage()


def test_arun_job_returns_the_tag_of_the_event_the_weave_received():
    security = Security(os.environ["WOVE_SECRET"])
    seen: list[Any] = []

    async def scenario() -> str:
        server = await acquire_callback_server(security=security)
        try:
            frame = _job_frame(server.url, "async-ok", _fail)
            server.register_run(frame.run_id, seen.append)
            return await worker.arun_job(LineCodec(security).encode(frame), security=security)
        finally:
            await server.release()

    assert asyncio.run(scenario()) == "task_error"
    assert [type(frame) for frame in seen] == [TaskStarted, TaskError]


def test_run_job_lets_a_forged_payload_fail_the_job(tmp_path: Path):
    security = Security(os.environ["WOVE_SECRET"])
    marker = tmp_path / "ran"

    async def scenario() -> None:
        server = await acquire_callback_server(security=security)
        try:
            frame = _job_frame(server.url, "forged", marker.touch)
            server.register_run(frame.run_id, lambda event: None)
            forged = LineCodec(Security("not-the-secret-0123456789abcdef")).encode(frame)
            with pytest.raises(wove.FrameRejectedError, match="bad signature"):
                await asyncio.to_thread(worker.run_job, forged, security=security)
            with pytest.raises(wove.FrameRejectedError, match="bad signature"):
                await worker.arun_job(forged, security=security)
        finally:
            await server.release()

    asyncio.run(scenario())
    assert not marker.exists()


def test_safe_job_name_keeps_valid_ids_and_keeps_others_distinct():
    valid = re.compile(r"[a-z0-9-]{1,20}")
    invalid = re.compile(r"[^a-z0-9-]+")

    def name(job_id: str) -> str:
        return safe_job_name(
            job_id, valid=valid, invalid=invalid, replacement="-", base_length=8, digest_length=6
        )

    assert name("invoice-42") == "invoice-42"
    assert name("order 7/eu").startswith("order-7-")
    assert len(name("order 7/eu")) == 8 + 1 + 6
    assert name("a b") != name("a/b")
