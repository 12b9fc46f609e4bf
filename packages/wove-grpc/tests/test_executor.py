"""The grpc executor and the ``wove worker grpc`` service, against real service processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

import wove
from wove import InvalidOptionError, UnknownOptionError, WeaveUsageError
from wove.network import ServiceSessions
from wove.plugins import (
    CancelTask,
    Heartbeat,
    LineCodec,
    RunTask,
    Security,
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskStarted,
    dumps,
    loads,
    new_run_id,
)
from wove_grpc import GrpcExecutor, GrpcSettings, add_worker_to_server

SECRET = os.environ["WOVE_TEST_SECRET"]
REASON = "the wove-grpc tests"
WAIT = 30.0
TERMINAL = (TaskResult, TaskError, TaskCancelled)


def secured(target: str, **extra: Any) -> dict[str, Any]:
    return {"target": target, "security": "env:WOVE_TEST_SECRET", **extra}


def run_task(function: Any, args: dict[str, Any] | None = None, **options: Any) -> RunTask:
    return RunTask(
        run_id=new_run_id(getattr(function, "__name__", "task")),
        task_id="task",
        callable=dumps(function, REASON),
        args=dumps(args or {}, REASON),
        **options,
    )


def add(a: int, b: int) -> int:
    return a + b


@asynccontextmanager
async def started(config: dict[str, Any]) -> AsyncIterator[GrpcExecutor]:
    executor = GrpcExecutor()
    await executor.start("remote", config, {})
    try:
        yield executor
    finally:
        await executor.stop()


async def events_until_terminal(executor: GrpcExecutor, run_id: str) -> list[Any]:
    events: list[Any] = []
    async with asyncio.timeout(WAIT):
        while True:
            event = await executor.recv()
            if event.run_id != run_id:
                continue
            events.append(event)
            if isinstance(event, TERMINAL):
                return events


async def terminal_events(executor: GrpcExecutor, run_ids: set[str]) -> dict[str, Any]:
    ends: dict[str, Any] = {}
    async with asyncio.timeout(WAIT):
        while set(ends) != run_ids:
            event = await executor.recv()
            if event.run_id in run_ids and isinstance(event, TERMINAL):
                ends[event.run_id] = event
    return ends


def raw_call(target: str, request: bytes) -> list[bytes]:
    """One ``Run`` call with ``request`` exactly as given; its responses."""
    with grpc.insecure_channel(target) as channel:
        method = channel.unary_stream("/wove.Worker/Run")
        return list(method(request, timeout=WAIT))


def refusal(target: str, request: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        raw_call(target, request)
    return caught.value


# -- running tasks ---------------------------------------------------------------------------


def test_a_run_reports_started_heartbeats_and_its_result(service):
    def slow(seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    async def body() -> list[Any]:
        async with started(secured(service.target)) as executor:
            frame = run_task(slow, {"seconds": 0.5}, delivery={"heartbeat_seconds": 0.05})
            await executor.send(frame)
            return await events_until_terminal(executor, frame.run_id)

    events = asyncio.run(body())
    assert isinstance(events[0], TaskStarted)
    assert any(isinstance(event, Heartbeat) for event in events[1:-1])
    assert isinstance(events[-1], TaskResult)
    assert loads(events[-1].result, REASON) == "done"


def test_cancel_reaches_the_running_task(service, tmp_path: Path):
    marker = str(tmp_path / "cancelled")

    async def waits() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            Path(marker).touch()  # noqa: ASYNC240 - a tiny write in a test task
            raise

    async def body() -> list[Any]:
        async with started(secured(service.target)) as executor:
            frame = run_task(waits, is_async=True)
            await executor.send(frame)
            async with asyncio.timeout(WAIT):
                while not isinstance(await executor.recv(), TaskStarted):
                    pass
            await executor.send(CancelTask(run_id=frame.run_id))
            return await events_until_terminal(executor, frame.run_id)

    events = asyncio.run(body())
    assert isinstance(events[-1], TaskCancelled)
    assert Path(marker).exists()


def test_weaves_share_the_executor_and_its_channel(service):
    wove.config(
        environments={"remote": {"executor": "grpc", "executor_config": secured(service.target)}}
    )
    for offset in range(3):
        with wove.weave(environment="remote", offset=offset) as w:

            @w.do(range(20))
            def double(item: int, offset: int) -> int:
                return item * 2 + offset

        assert w.result.double == [item * 2 + offset for item in range(20)]


def test_max_in_flight_bounds_the_calls(service, tmp_path: Path):
    release = tmp_path / "release"

    def blocked() -> int:
        while not release.exists():
            time.sleep(0.01)
        return 1

    async def body() -> None:
        async with started(secured(service.target, max_in_flight=2)) as executor:
            first, second, third = (run_task(blocked) for _ in range(3))
            await executor.send(first)
            await executor.send(second)
            third_sent = asyncio.ensure_future(executor.send(third))
            await asyncio.sleep(0)
            assert executor.in_flight == 2
            assert not third_sent.done()
            release.touch()
            await third_sent
            ends = await terminal_events(executor, {f.run_id for f in (first, second, third)})
            assert all(isinstance(event, TaskResult) for event in ends.values())

    asyncio.run(body())


def test_a_lost_service_orphans_its_runs(tmp_path: Path):
    process, target = start_service("--security", "env:WOVE_TEST_SECRET")
    try:

        def forever() -> None:
            time.sleep(600)

        async def body() -> list[Any]:
            async with started(secured(target)) as executor:
                frame = run_task(forever)
                await executor.send(frame)
                async with asyncio.timeout(WAIT):
                    while not isinstance(await executor.recv(), TaskStarted):
                        pass
                process.kill()
                return await events_until_terminal(executor, frame.run_id)

        events = asyncio.run(body())
    finally:
        stop_service(process)
    assert isinstance(events[-1], TaskError)
    assert events[-1].error.source == "orphaned"
    assert "connection to the worker service was lost" in events[-1].error.message


def test_a_secret_mismatch_fails_the_run_with_a_clear_error(service, monkeypatch):
    monkeypatch.setenv("WOVE_OTHER_SECRET", "a-different-secret-0123456789")

    async def body() -> list[Any]:
        config = {"target": service.target, "security": "env:WOVE_OTHER_SECRET"}
        async with started(config) as executor:
            frame = run_task(add, {"a": 1, "b": 2})
            await executor.send(frame)
            return await events_until_terminal(executor, frame.run_id)

    [error] = asyncio.run(body())
    assert isinstance(error, TaskError)
    assert error.error.kind == "wove.FrameRejected"
    assert error.error.retryable is False
    assert "bad signature" in error.error.message


# -- the service refuses bad requests ---------------------------------------------------------


def signed_line(security: Security, frame: Any) -> bytes:
    return LineCodec(security).encode(frame)


def test_wrong_secret_is_refused(service):
    line = signed_line(Security("not-the-service-secret-0123456"), run_task(add, {"a": 1, "b": 1}))
    error = refusal(service.target, line)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "bad signature" in error.details()


def test_tampered_body_is_refused(service):
    security = Security(SECRET)
    line = signed_line(security, run_task(add, {"a": 1, "b": 1}))
    tampered = line.replace(b'"task_id":"task"', b'"task_id":"evil"')
    assert tampered != line
    error = refusal(service.target, tampered)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "bad signature" in error.details()


def test_replayed_frame_is_refused(service):
    line = signed_line(Security(SECRET), run_task(add, {"a": 1, "b": 1}))
    [*_, last] = raw_call(service.target, line)
    assert isinstance(LineCodec(Security(SECRET)).decode(last), TaskResult)
    error = refusal(service.target, line)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "replayed" in error.details()


def test_expired_timestamp_is_refused(service):
    stale = time.time() - 3600
    line = signed_line(Security(SECRET, clock=lambda: stale), run_task(add, {"a": 1, "b": 1}))
    error = refusal(service.target, line)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expired" in error.details()


@pytest.fixture
def small_service() -> Iterator[str]:
    process, target = start_service(
        "--security", "env:WOVE_TEST_SECRET", "--max-body-bytes", "4096"
    )
    yield target
    stop_service(process)


@pytest.mark.parametrize(
    ("request_", "status", "detail"),
    [
        (b"\x00\xff garbage \x13", grpc.StatusCode.INVALID_ARGUMENT, "frame refused"),
        (b"", grpc.StatusCode.INVALID_ARGUMENT, "frame refused"),
        (b"x" * 5000, grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
    ],
    ids=["garbage", "empty", "oversized"],
)
def test_malformed_requests_get_an_error_and_the_service_keeps_serving(
    small_service, request_, status, detail
):
    error = refusal(small_service, request_)
    assert error.code() == status
    assert detail in error.details()
    assert_service_works(small_service)


def test_truncated_frame_is_refused_and_the_service_keeps_serving(small_service):
    line = signed_line(Security(SECRET), run_task(add, {"a": 1, "b": 1}))
    error = refusal(small_service, line[: len(line) // 2])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "frame refused" in error.details()
    assert_service_works(small_service)


def assert_service_works(target: str) -> None:
    wove.config(environments={"remote": {"executor": "grpc", "executor_config": secured(target)}})
    with wove.weave(environment="remote") as w:

        @w.do
        def answer() -> int:
            return 42

    assert w.result.answer == 42
    wove.config(environments={})


# -- endpoint rules and settings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"target": "example.invalid:8701", "security": "env:WOVE_TEST_SECRET"}, "must use TLS"),
        ({"target": "example.invalid:8701", "tls": True}, "needs security"),
    ],
)
def test_an_unprotected_remote_target_is_refused_at_start(config, match):
    executor = GrpcExecutor()
    with pytest.raises(ValueError, match=match):
        asyncio.run(executor.start("remote", config, {}))
    assert executor.settings is None


def test_a_weave_on_an_unprotected_remote_target_fails_before_submitting():
    wove.config(
        environments={
            "remote": {"executor": "grpc", "executor_config": {"target": "example.invalid:1"}}
        }
    )
    with (
        pytest.raises(ValueError, match="not a loopback address"),
        wove.weave(environment="remote") as w,
    ):

        @w.do
        def never() -> None:
            raise AssertionError("ran")


def test_insecure_accepts_a_remote_target_in_the_settings():
    settings = GrpcSettings.from_config(
        {"target": "example.invalid:8701", "insecure": True}, "remote"
    )
    assert settings.network.insecure
    assert settings.network.security is None
    assert not settings.network.tls


def test_tls_is_on_when_certificate_files_are_given(certificates):
    settings = GrpcSettings.from_config(
        secured("example.invalid:8701", ca_file=str(certificates.ca_file)), "remote"
    )
    assert settings.network.tls
    assert settings.root_certificates == certificates.ca_file.read_bytes()


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({}, "target must be 'HOST:PORT'"),
        ({"target": "127.0.0.1"}, "target must be 'HOST:PORT'"),
        ({"target": "127.0.0.1:1", "tls": "yes"}, "tls must be True or False"),
        ({"target": "127.0.0.1:1", "metadata": {"x-token": 3}}, "metadata must be a dict mapping"),
        ({"target": "127.0.0.1:1", "metadata": {"X-Token": "a"}}, "lower case"),
        ({"target": "127.0.0.1:1", "max_message_bytes": 0}, "max_message_bytes must be"),
        ({"target": "127.0.0.1:1", "max_in_flight": 0}, "max_in_flight must be"),
    ],
)
def test_bad_settings_are_refused(config, match):
    with pytest.raises((InvalidOptionError, ValueError), match=match):
        GrpcSettings.from_config(config, "remote")


def test_an_unreadable_tls_file_is_refused_with_its_path(tmp_path: Path):
    missing = str(tmp_path / "missing-ca.pem")
    with pytest.raises(InvalidOptionError, match=r"cannot load the TLS files .*missing-ca\.pem"):
        GrpcSettings.from_config({"target": "127.0.0.1:1", "ca_file": missing}, "remote")


def test_an_unknown_key_is_refused_with_a_suggestion():
    with pytest.raises(
        UnknownOptionError, match=r"unknown option 'targte'\. Did you mean 'target'"
    ):
        GrpcSettings.from_config({"target": "127.0.0.1:1", "targte": "x"}, "remote")


def test_no_service_fails_at_start_with_the_target():
    process, target = start_service()
    stop_service(process)  # nothing listens there now
    executor = GrpcExecutor()
    with pytest.raises(
        ConnectionError, match=f"no 'wove worker grpc' service answered at '{target}'"
    ):
        asyncio.run(executor.start("remote", {"target": target, "connect_timeout": 0.5}, {}))


def test_stop_ends_runs_in_flight_and_is_idempotent(service):
    def forever() -> None:
        time.sleep(3)

    async def body() -> None:
        executor = GrpcExecutor()
        await executor.start("remote", secured(service.target), {})
        frame = run_task(forever)
        await executor.send(frame)
        await executor.stop()
        await executor.stop()
        ended = await events_until_terminal(executor, frame.run_id)
        assert isinstance(ended[-1], TaskError)
        assert ended[-1].error.source == "orphaned"
        with pytest.raises(WeaveUsageError, match="is stopped"):
            await executor.recv()
        with pytest.raises(WeaveUsageError, match="is stopped"):
            await executor.send(run_task(add, {"a": 1, "b": 1}))

    asyncio.run(body())


def test_send_before_start_says_to_start():
    with pytest.raises(WeaveUsageError, match="await start"):
        asyncio.run(GrpcExecutor().send(run_task(add)))


# -- TLS --------------------------------------------------------------------------------------


def test_mutual_tls_needs_the_client_certificate(tls_service, certificates):
    config = secured(f"localhost:{tls_service.port}", ca_file=str(certificates.ca_file))
    executor = GrpcExecutor()
    with pytest.raises(ConnectionError, match="do its TLS settings match"):
        asyncio.run(executor.start("remote", {**config, "connect_timeout": 1.0}, {}))


@pytest.mark.parametrize("key_apart", [True, False], ids=["key-file", "key-in-cert-file"])
def test_mutual_tls_runs_tasks(tls_service, certificates, tmp_path: Path, key_apart: bool):
    tls: dict[str, str] = {"ca_file": str(certificates.ca_file)}
    if key_apart:
        tls |= {
            "cert_file": str(certificates.client_cert),
            "key_file": str(certificates.client_key),
        }
    else:
        combined = tmp_path / "client-with-key.pem"
        combined.write_bytes(
            certificates.client_key.read_bytes() + certificates.client_cert.read_bytes()
        )
        tls["cert_file"] = str(combined)
    config = secured(f"127.0.0.1:{tls_service.port}", **tls)

    async def body() -> Any:
        async with started(config) as executor:
            frame = run_task(add, {"a": 2, "b": 3})
            await executor.send(frame)
            return (await events_until_terminal(executor, frame.run_id))[-1]

    result = asyncio.run(body())
    assert isinstance(result, TaskResult)
    assert loads(result.result, REASON) == 5


# -- embedding and the command ----------------------------------------------------------------


def test_the_servicer_embeds_in_a_grpc_aio_server():
    async def body() -> int:
        server = grpc.aio.server()
        sessions = ServiceSessions(None, name="embedded")
        add_worker_to_server(server, sessions)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with started({"target": f"127.0.0.1:{port}"}) as executor:
                frame = run_task(add, {"a": 20, "b": 22})
                await executor.send(frame)
                result = (await events_until_terminal(executor, frame.run_id))[-1]
                assert isinstance(result, TaskResult)
                return int(loads(result.result, REASON))
        finally:
            await server.stop(None)
            await sessions.aclose()

    assert asyncio.run(body()) == 42


def test_metadata_reaches_the_service_with_every_call():
    seen: list[tuple[str, str | None]] = []

    class Recorder(grpc.aio.ServerInterceptor):  # type: ignore[misc]
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            headers = dict(details.invocation_metadata or ())
            seen.append((details.method, headers.get("x-team")))
            return await continuation(details)

    async def body() -> None:
        server = grpc.aio.server(interceptors=[Recorder()])
        sessions = ServiceSessions(None, name="embedded")
        add_worker_to_server(server, sessions)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            config = {"target": f"127.0.0.1:{port}", "metadata": {"x-team": "ledger"}}
            async with started(config) as executor:
                frame = run_task(add, {"a": 1, "b": 1})
                await executor.send(frame)
                await events_until_terminal(executor, frame.run_id)
        finally:
            await server.stop(None)
            await sessions.aclose()

    asyncio.run(body())
    assert ("/wove.Worker/Run", "ledger") in seen


def test_stopping_the_executor_cancels_its_runs_on_the_service(service, tmp_path: Path):
    marker = str(tmp_path / "cancelled")

    async def waits() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            Path(marker).touch()  # noqa: ASYNC240
            raise

    def cancelled() -> bool:
        deadline = time.monotonic() + WAIT
        while not Path(marker).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return Path(marker).exists()

    async def body() -> bool:
        async with started(secured(service.target)) as executor:
            frame = run_task(waits, is_async=True)
            await executor.send(frame)
            async with asyncio.timeout(WAIT):
                while not isinstance(await executor.recv(), TaskStarted):
                    pass
        # The executor is stopped: its call went away, so the service cancels the run.
        return await asyncio.to_thread(cancelled)

    assert asyncio.run(body())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--bind", "0.0.0.0:0"], "not a loopback address"),
        (["--bind", "0.0.0.0:0", "--insecure"], None),
        (["--bind", "127.0.0.1"], "--bind must be HOST:PORT"),
        (["--bind", "127.0.0.1:0", "--tls-cert", "x.pem"], "--tls-cert and --tls-key go together"),
        (["--bind", "127.0.0.1:0", "--security", "nope"], "security must be 'env:NAME'"),
    ],
)
def test_the_command_refuses_unsafe_or_bad_arguments(arguments, message):
    if message is None:
        # --insecure lifts the rule; check only that it gets past it, without binding.
        arguments = [*arguments, "--max-threads", "0"]
        message = "--max-threads must be at least 1"
    done = subprocess.run(
        [sys.executable, "-m", "wove", "worker", "grpc", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr


def test_the_command_stops_cleanly_on_sigint():
    process, _ = start_service()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=WAIT) == 0
    stop_service(process)


# -- helpers ----------------------------------------------------------------------------------


def start_service(*arguments: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "wove", "worker", "grpc", "--bind", "127.0.0.1:0", *arguments],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    prefix = "wove worker grpc listening on grpc://"
    assert line.startswith(prefix), line
    return process, line.removeprefix(prefix)


def stop_service(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


# -- the wire helpers and loops ---------------------------------------------------------------


def test_terminal_lines_are_recognised_in_what_the_codec_writes():
    from wove.plugins import LogRecord, NormalizedError
    from wove_grpc._protocol import is_command_line, is_terminal_line

    for security in (None, Security(SECRET)):
        codec = LineCodec(security)
        terminal = [
            TaskResult(run_id="r", result=b"x"),
            TaskError(run_id="r", error=NormalizedError(kind="k", message="m")),
            TaskCancelled(run_id="r"),
        ]
        other = [TaskStarted(run_id="r"), Heartbeat(run_id="r"), LogRecord(run_id="r")]
        assert all(is_terminal_line(codec.encode(frame)) for frame in terminal)
        assert not any(is_terminal_line(codec.encode(frame)) for frame in other)
        assert is_command_line(codec.encode(CancelTask(run_id="r")), b"cancel_task")
        assert not is_command_line(codec.encode(run_task(add)), b"cancel_task")


def test_cancel_refuses_a_run_task_frame(service):
    line = signed_line(Security(SECRET), run_task(add, {"a": 1, "b": 1}))
    with grpc.insecure_channel(service.target) as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/wove.Worker/Cancel")(line, timeout=WAIT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Cancel takes a cancel_task frame" in caught.value.details()


def test_stop_from_another_loop_runs_on_the_loop_that_owns_the_channel(service):
    import threading

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="owner-loop")
    thread.start()
    try:
        executor = GrpcExecutor()
        starting = executor.start("remote", secured(service.target), {})
        asyncio.run_coroutine_threadsafe(starting, loop).result(WAIT)

        asyncio.run(executor.stop())

        with pytest.raises(WeaveUsageError, match="is stopped"):
            asyncio.run_coroutine_threadsafe(executor.send(run_task(add)), loop).result(WAIT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()
