"""The ``websocket`` executor and ``wove worker websocket`` service, against real processes.

Raw-protocol tests talk to the service with a plain ``websockets`` client, so they can send
exactly the bytes they mean to: forged, replayed, expired, malformed and oversized messages.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import wove
import wove.testing
from wove import InvalidOptionError, UnknownOptionError
from wove.plugins import (
    CancelTask,
    Delivery,
    Heartbeat,
    LineCodec,
    LogRecord,
    RunTask,
    Security,
    TaskCancelled,
    TaskResult,
    TaskStarted,
    dumps,
)
from wove.testing import async_blocker, blocker, max_overlap
from wove_websocket import WebSocketExecutor, WebSocketSettings

SECRET_ENV = "WOVE_TEST_SECRET"
REASON = "the websocket executor tests"


def configure(url: str, **extra: Any) -> None:
    config: dict[str, Any] = {"url": url, "security": f"env:{SECRET_ENV}", **extra}
    wove.config(environments={"ws": {"executor": "websocket", "executor_config": config}})


def executor_of(name: str = "ws") -> WebSocketExecutor:
    executor = wove.testing.executor_of(name)
    assert isinstance(executor, WebSocketExecutor)
    return executor


def run_frame(body: Any, *, is_async: bool = False, **options: Any) -> RunTask:
    return RunTask(
        run_id=f"raw-{os.urandom(6).hex()}",
        task_id="raw",
        callable=dumps(body, REASON),
        args=dumps({}, REASON),
        is_async=is_async,
        **options,
    )


def codec(shared_secret: str, **options: Any) -> LineCodec:
    return LineCodec(Security(shared_secret, **options))


_PENDING: dict[int, list[bytes]] = {}


async def receive(connection: Any, reader: LineCodec) -> Any:
    """The next event line on ``connection`` (the service may batch several per message)."""
    pending = _PENDING.setdefault(id(connection), [])
    while not pending:
        message = await asyncio.wait_for(connection.recv(), 30)
        data = message if isinstance(message, bytes) else message.encode()
        pending.extend(line for line in data.split(b"\n") if line)
    return reader.decode(pending.pop(0))


async def result_of(connection: Any, reader: LineCodec, run_id: str) -> Any:
    """Read events until the run's terminal one; return it."""
    while True:
        frame = await receive(connection, reader)
        if frame.run_id == run_id and not isinstance(frame, (TaskStarted, Heartbeat)):
            return frame


def assert_refused(reply: Any, words: str) -> None:
    assert isinstance(reply, LogRecord), reply
    assert reply.level == "error"
    assert reply.run_id == ""
    assert words in reply.message, reply.message


# -- configuration and safety ---------------------------------------------------------------------
def start(config: dict[str, Any]) -> None:
    asyncio.run(WebSocketExecutor().start("remote", config, {}))


def test_non_loopback_endpoint_without_tls_is_refused_at_start():
    with pytest.raises(ValueError, match=r"'example\.invalid' is not a loopback address"):
        start({"url": "ws://example.invalid:8765", "security": f"env:{SECRET_ENV}"})


def test_non_loopback_endpoint_without_security_is_refused_at_start():
    with pytest.raises(ValueError, match="needs security"):
        start({"url": "wss://example.invalid:8765"})


def test_weave_on_an_unprotected_remote_endpoint_fails_before_connecting():
    configure("ws://example.invalid:8765", security=None)

    with (
        pytest.raises(ValueError, match="not a loopback address"),
        wove.weave(environment="ws") as w,
    ):

        @w.do
        def never() -> int:
            return 1


def test_insecure_allows_an_unprotected_remote_endpoint():
    # Only the settings are checked: nothing connects to the non-loopback host.
    settings = WebSocketSettings.from_config(
        {"url": "ws://example.invalid:8765", "insecure": True}, "remote"
    )

    assert settings.network.security is None
    assert settings.network.ssl_context is None


def test_wss_builds_a_tls_context_from_the_ca_file(certificates: Any):
    settings = WebSocketSettings.from_config(
        {
            "url": "wss://example.invalid:8765",
            "security": f"env:{SECRET_ENV}",
            "ca_file": str(certificates.ca),
            "cert_file": str(certificates.client_cert),
            "key_file": str(certificates.client_key),
            "connections": 3,
            "headers": {"Authorization": "Bearer x"},
            "ping_interval": None,
        },
        "remote",
    )

    assert settings.network.ssl_context is not None
    assert settings.connections == 3
    assert settings.headers == {"Authorization": "Bearer x"}
    assert settings.ping_interval is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "url is required"),
        ({"url": "http://127.0.0.1:1"}, "ws:// or wss:// URL"),
        ({"url": "ws://127.0.0.1:1", "connections": 0}, "connections must be a positive"),
        ({"url": "ws://127.0.0.1:1", "headers": {"a": 1}}, "headers must be a dict mapping"),
        ({"url": "ws://127.0.0.1:1", "ping_interval": -1}, "ping_interval must be"),
        ({"url": "ws://127.0.0.1:1", "max_message_bytes": "big"}, "max_message_bytes must"),
    ],
)
def test_bad_configuration_is_refused(config: dict[str, Any], message: str):
    with pytest.raises(InvalidOptionError, match=message):
        WebSocketSettings.from_config(config, "remote")


def test_unknown_keys_are_refused_with_a_suggestion():
    with pytest.raises(UnknownOptionError, match="Did you mean 'url'"):
        start({"url": "ws://127.0.0.1:1", "urll": "x"})


def test_unreachable_service_fails_at_start():
    with pytest.raises(
        ConnectionRefusedError, match="check that 'wove worker websocket' is running there"
    ):
        start({"url": "ws://127.0.0.1:9", "connect_timeout": 0.3})


def test_tls_service_is_refused_without_the_ca(tls_service: Any, certificates: Any):
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        start({"url": tls_service.url, "security": f"env:{SECRET_ENV}"})


# -- running tasks --------------------------------------------------------------------------------
def test_weaves_share_one_persistent_connection(service: Any):
    configure(service.url)

    connections = []
    for _ in range(3):
        with wove.weave(environment="ws") as w:

            @w.do(range(8))
            def where(item: int) -> tuple[int, int]:
                return item, os.getpid()

        connections.append(executor_of()._links[0].connection)
        assert [item for item, _ in w.result.where] == list(range(8))
        assert {pid for _, pid in w.result.where} == {service.pid}

    assert connections[0] is not None
    assert all(connection is connections[0] for connection in connections)
    assert executor_of().open_connections == 1


def test_ten_megabyte_payloads_cross_both_ways(service: Any):
    configure(service.url)
    payload = os.urandom(10 * 1024 * 1024)

    with wove.weave(environment="ws") as w:

        @w.do
        def echo() -> bytes:
            return payload[::-1]

    assert w.result.echo == payload[::-1]


def test_max_in_flight_bounds_the_runs_outstanding(service: Any, tmp_path: Path):
    configure(service.url, max_in_flight=2, connections=2)
    log = str(tmp_path / "overlap.log")

    with wove.weave(environment="ws") as w:

        @w.do(range(6))
        def item(index: int) -> int:
            with open(log, "a") as out:
                out.write(f"start {index}\n")
            time.sleep(0.05)
            with open(log, "a") as out:
                out.write(f"end {index}\n")
            return index

    assert w.result.item == list(range(6))
    assert max_overlap(Path(log).read_text().splitlines()) <= 2


def test_mutual_tls_weave(tls_service: Any, certificates: Any):
    configure(
        tls_service.url,
        ca_file=str(certificates.ca),
        cert_file=str(certificates.client_cert),
        key_file=str(certificates.client_key),
    )

    with wove.weave(environment="ws") as w:

        @w.do
        def answer() -> int:
            return 42

    assert w.result.answer == 42


# -- the service, spoken to directly --------------------------------------------------------------
def test_started_and_heartbeats_arrive_while_a_task_runs(
    service: Any, shared_secret: str, tmp_path: Path
):
    release = tmp_path / "release"
    wire = codec(shared_secret)
    frame = run_frame(blocker(release), delivery=Delivery(heartbeat_seconds=0.05))

    async def scenario() -> list[Any]:
        async with connect(service.url) as connection:
            await connection.send(wire.encode(frame))
            seen = [await receive(connection, wire), await receive(connection, wire)]
            release.touch()
            seen.append(await result_of(connection, wire, frame.run_id))
            return seen

    started, heartbeat, result = asyncio.run(scenario())

    assert isinstance(started, TaskStarted)
    assert isinstance(heartbeat, Heartbeat)
    assert isinstance(result, TaskResult)


def test_cancel_reaches_the_running_task(service: Any, shared_secret: str, tmp_path: Path):
    finished = tmp_path / "finished"
    wire = codec(shared_secret)
    frame = run_frame(async_blocker(tmp_path / "never", finished=finished, limit=30), is_async=True)

    async def scenario() -> Any:
        async with connect(service.url) as connection:
            await connection.send(wire.encode(frame))
            assert isinstance(await receive(connection, wire), TaskStarted)
            await connection.send(wire.encode(CancelTask(run_id=frame.run_id)))
            return await result_of(connection, wire, frame.run_id)

    assert isinstance(asyncio.run(scenario()), TaskCancelled)
    assert not finished.exists()


@pytest.mark.parametrize(
    ("forge", "words"),
    [
        ("wrong secret", "signature"),
        ("tampered body", "signature"),
        ("expired timestamp", "timestamp"),
        ("unsigned", "signature"),
    ],
)
def test_forged_frames_are_refused(
    service: Any, shared_secret: str, tmp_path: Path, forge: str, words: str
):
    marker = tmp_path / "ran"
    frame = run_frame(marker.touch)
    if forge == "wrong secret":
        line = codec("another-secret-that-is-long-enough").encode(frame)
    elif forge == "tampered body":
        line = codec(shared_secret).encode(frame).replace(b'"task_id":"raw"', b'"task_id":"RAW"')
    elif forge == "expired timestamp":
        line = codec(shared_secret, clock=lambda: time.time() - 3600).encode(frame)
    else:
        line = LineCodec(None).encode(frame)
    wire = codec(shared_secret)

    async def scenario() -> tuple[Any, Any]:
        async with connect(service.url) as connection:
            await connection.send(line)
            refused = await receive(connection, wire)
            # The connection stays usable: a genuine frame runs on it.
            genuine = run_frame(int)
            await connection.send(wire.encode(genuine))
            return refused, await result_of(connection, wire, genuine.run_id)

    refused, after = asyncio.run(scenario())

    assert_refused(refused, "")
    assert words in refused.message.lower(), refused.message
    assert isinstance(after, TaskResult)
    assert not marker.exists()


def test_replayed_frame_runs_once(service: Any, shared_secret: str):
    wire = codec(shared_secret)
    frame = run_frame(int)
    line = wire.encode(frame)

    async def scenario() -> tuple[Any, Any]:
        async with connect(service.url) as connection:
            await connection.send(line)
            first = await result_of(connection, wire, frame.run_id)
            await connection.send(line)
            return first, await receive(connection, wire)

    first, second = asyncio.run(scenario())

    assert isinstance(first, TaskResult)
    assert_refused(second, "")
    assert "replay" in second.message.lower(), second.message


@pytest.mark.parametrize(
    "message",
    [b"\x00\xffgarbage\n", b"", "text, not bytes", b'v1 nonsense\t{"type":"run_ta'],
    ids=["garbage", "empty", "text", "truncated"],
)
def test_malformed_messages_get_an_error_and_the_connection_stays_open(
    service: Any, shared_secret: str, message: bytes | str
):
    wire = codec(shared_secret)

    async def scenario() -> tuple[Any, Any]:
        async with connect(service.url) as connection:
            await connection.send(message)
            refused = await receive(connection, wire)
            genuine = run_frame(int)
            await connection.send(wire.encode(genuine))
            return refused, await result_of(connection, wire, genuine.run_id)

    refused, after = asyncio.run(scenario())

    assert_refused(refused, "rejected")
    assert isinstance(after, TaskResult)


def test_lines_sent_together_each_run(service: Any, shared_secret: str):
    wire = codec(shared_secret)
    first, second = run_frame(int), run_frame(int)

    async def scenario() -> tuple[Any, Any]:
        async with connect(service.url) as connection:
            await connection.send(wire.encode(first) + wire.encode(second))
            return (
                await result_of(connection, wire, first.run_id),
                await result_of(connection, wire, second.run_id),
            )

    one, two = asyncio.run(scenario())

    assert isinstance(one, TaskResult)
    assert isinstance(two, TaskResult)


def test_closing_a_connection_cancels_its_runs(service: Any, shared_secret: str, tmp_path: Path):
    release, started, finished = tmp_path / "release", tmp_path / "started", tmp_path / "finished"
    wire = codec(shared_secret)
    frame = run_frame(
        async_blocker(release, started=started, finished=finished, limit=30), is_async=True
    )

    async def scenario() -> None:
        async with connect(service.url) as connection:
            await connection.send(wire.encode(frame))
            assert isinstance(await receive(connection, wire), TaskStarted)
        # Closed with the run in flight. Release it, then give the service a task of its own
        # that waits a while, so a run that was not cancelled has time to see the file.
        release.touch()
        pause = run_frame(lambda: __import__("time").sleep(0.5))
        async with connect(service.url) as connection:
            await connection.send(wire.encode(pause))
            assert isinstance(await result_of(connection, wire, pause.run_id), TaskResult)

    asyncio.run(scenario())

    assert started.exists()
    assert not finished.exists()


def test_mutual_tls_refuses_a_client_without_a_certificate(tls_service: Any, certificates: Any):
    config = {
        "url": tls_service.url,
        "security": f"env:{SECRET_ENV}",
        "ca_file": str(certificates.ca),
        "connect_timeout": 0.5,
    }

    with pytest.raises(ConnectionRefusedError, match="cert_file and key_file"):
        start(config)


def test_service_reports_an_address_in_use(service: Any):
    done = worker_command("--bind", f"127.0.0.1:{service.port}")

    assert done.returncode == 1
    assert "cannot listen on" in done.stderr


def test_a_truncated_signed_frame_is_refused(service: Any, shared_secret: str):
    wire = codec(shared_secret)
    line = wire.encode(run_frame(int))

    async def scenario() -> Any:
        async with connect(service.url) as connection:
            await connection.send(line[: len(line) // 2])
            return await receive(connection, wire)

    assert_refused(asyncio.run(scenario()), "rejected")


@pytest.fixture(scope="module")
def small_service(start_service: Any) -> Any:
    return start_service("--security", f"env:{SECRET_ENV}", "--max-body-bytes", "65536")


def test_oversized_message_closes_only_its_connection(small_service: Any):
    async def scenario() -> int | None:
        async with connect(small_service.url, max_size=None) as bystander:
            async with connect(small_service.url, max_size=None) as connection:
                await connection.send(b"x" * 100_000)
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(connection.recv(), 30)
            await bystander.ping()  # the other connection is untouched
            code = closed.value.rcvd.code if closed.value.rcvd else None
            return code

    assert asyncio.run(scenario()) == 1009  # message too big
    configure(small_service.url)
    with wove.weave(environment="ws") as w:

        @w.do
        def still_serving() -> str:
            return "yes"

    assert w.result.still_serving == "yes"


# -- the command ----------------------------------------------------------------------------------
def worker_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wove", "worker", "websocket", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_service_refuses_a_public_address_without_security():
    done = worker_command("--bind", "0.0.0.0:0")

    assert done.returncode == 2
    assert "not a loopback address" in done.stderr
    assert "listening" not in done.stdout


def test_service_refuses_a_public_address_without_tls():
    done = worker_command("--bind", "0.0.0.0:0", "--security", f"env:{SECRET_ENV}")

    assert done.returncode == 2
    assert "--insecure" in done.stderr


def test_service_refuses_a_malformed_bind():
    done = worker_command("--bind", "nowhere")

    assert done.returncode == 2
    assert "HOST:PORT" in done.stderr


def test_service_stops_cleanly_on_sigterm(start_service: Any):
    running = start_service("--security", f"env:{SECRET_ENV}")
    process = running._process
    running.close()

    assert process is not None
    assert process.returncode == 0
