"""The worker service (``wove worker http``) as a real process, spoken to with raw requests:
forged, replayed and malformed bodies are refused with a clear error, and it keeps serving."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import wove
from wove.plugins import LineCodec, RunTask, Security, dumps, loads, new_run_id

from .worker_services import SECRET_VARIABLE, Service


def _security() -> Security:
    return Security(os.environ[SECRET_VARIABLE])


def _marker_frame(marker: Path) -> RunTask:
    marker_at = str(marker)

    def touch() -> str:
        open(marker_at, "a").close()
        return "ran"

    return RunTask(
        run_id=new_run_id("raw"),
        task_id="raw",
        callable=dumps(touch, "test"),
        args=dumps({}, "test"),
    )


@pytest.fixture(scope="module")
def small_service() -> Iterator[Service]:
    service = Service(["--security", f"env:{SECRET_VARIABLE}", "--max-body-bytes", "65536"])
    yield service
    service.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _post(
    client: httpx.Client, service: Service, body: bytes, path: str = "/runs"
) -> httpx.Response:
    return client.post(f"{service.url}{path}", content=body)


def _assert_still_serving(service: Service) -> None:
    wove.config(
        environments={
            "remote": {
                "executor": "http",
                "executor_config": {"url": service.url, "security": f"env:{SECRET_VARIABLE}"},
            }
        }
    )
    with wove.weave(environment="remote", delivery_timeout=30) as w:

        @w.do([1, 2, 3])
        def double(item: int) -> int:
            return item * 2

    assert w.result.double == [2, 4, 6]


def test_a_signed_run_streams_its_events(
    small_service: Service, client: httpx.Client, tmp_path: Path
):
    codec = LineCodec(_security())

    response = _post(client, small_service, codec.encode(_marker_frame(tmp_path / "ran")))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    events = [codec.decode(line) for line in response.content.splitlines()]
    assert [type(event).__name__ for event in events] == ["TaskStarted", "TaskResult"]
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("forgery", ["wrong secret", "tampered body", "expired", "unsigned"])
def test_forged_requests_are_refused_with_401(
    forgery: str, small_service: Service, client: httpx.Client, tmp_path: Path
):
    marker = tmp_path / "forged"
    real = _security()
    body = LineCodec(None).encode(_marker_frame(marker)).rstrip(b"\n")
    if forgery == "wrong secret":
        line = Security(b"\x01" * 32).sign(body) + b"\t" + body
    elif forgery == "tampered body":
        line = real.sign(body) + b"\t" + body.replace(b'"task_id":"raw"', b'"task_id":"rax"')
    elif forgery == "expired":
        stale = time.time() - 10 * real.clock_skew_seconds - 60
        line = Security(bytes.fromhex(real.secret_hex), clock=lambda: stale).sign(body)
        line += b"\t" + body
    else:
        line = body

    response = _post(client, small_service, line + b"\n")

    assert response.status_code == 401
    assert "refused" in response.json()["error"]
    assert not marker.exists()
    _assert_still_serving(small_service)


def test_a_replayed_request_is_refused(
    small_service: Service, client: httpx.Client, tmp_path: Path
):
    line = LineCodec(_security()).encode(_marker_frame(tmp_path / "once"))

    first = _post(client, small_service, line)
    again = _post(client, small_service, line)

    assert first.status_code == 200
    assert again.status_code == 401
    assert "replayed" in again.json()["error"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"\x00\xffgarbage\n", 401),  # unsigned: refused before it is parsed
        (b'{"k":"default","t":"1","n":"x","s":"y"}\t{"type":"run_ta', 401),
    ],
)
def test_garbage_and_truncated_bodies_get_an_error(
    body: bytes, status: int, small_service: Service, client: httpx.Client
):
    response = _post(client, small_service, body)

    assert response.status_code == status
    assert response.json()["error"]
    _assert_still_serving(small_service)


def test_a_truncated_signed_body_is_refused(
    small_service: Service, client: httpx.Client, tmp_path: Path
):
    line = LineCodec(_security()).encode(_marker_frame(tmp_path / "cut"))

    response = _post(client, small_service, line[: len(line) // 2])

    assert response.status_code == 401
    assert "bad signature" in response.json()["error"]


def test_an_oversized_body_gets_413_and_the_service_keeps_serving(
    small_service: Service, client: httpx.Client
):
    response = _post(client, small_service, b"x" * 200_000)

    assert response.status_code == 413
    assert "65536" in response.json()["error"]
    _assert_still_serving(small_service)


def test_unknown_paths_and_methods(small_service: Service, client: httpx.Client):
    assert client.get(f"{small_service.url}/runs").status_code == 405
    assert _post(client, small_service, b"", path="/other").status_code == 404


def test_non_loopback_bind_without_security_is_refused():
    done = subprocess.run(
        [sys.executable, "-m", "wove", "worker", "http", "--bind", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "without --security" in done.stderr
    assert done.stdout == ""


def test_sigterm_stops_the_service_cleanly():
    process = subprocess.Popen(
        [sys.executable, "-m", "wove", "worker", "http", "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    with process.stdout:
        line = process.stdout.readline()
        assert line.startswith("wove worker http listening on http://127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_errors_are_one_json_line(small_service: Service, client: httpx.Client):
    response = _post(client, small_service, b"nonsense")

    assert response.text.count("\n") == 1
    assert set(json.loads(response.text)) == {"error"}


def _frame_of(body: Any, task_id: str) -> RunTask:
    return RunTask(
        run_id=new_run_id(task_id),
        task_id=task_id,
        callable=dumps(body, "test"),
        args=dumps({}, "test"),
        is_async=asyncio.iscoroutinefunction(body),
    )


def test_a_client_that_disconnects_cancels_its_run(
    small_service: Service, client: httpx.Client, tmp_path: Path
):
    marker = str(tmp_path / "cancelled")

    async def waits_for_ever() -> None:
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            os.close(os.open(marker, os.O_CREAT | os.O_WRONLY))
            raise

    def saw_the_cancel() -> bool:
        # Runs on the service, so the test process never waits with a sleep of its own.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(marker):
                return True
            time.sleep(0.01)
        return False

    codec = LineCodec(_security())
    with client.stream(
        "POST", f"{small_service.url}/runs", content=codec.encode(_frame_of(waits_for_ever, "w"))
    ) as response:
        first = next(response.iter_lines())
        assert type(codec.decode(first.encode())).__name__ == "TaskStarted"
    # Leaving the block before the body ended closed the connection.

    check = client.post(
        f"{small_service.url}/runs", content=codec.encode(_frame_of(saw_the_cancel, "check"))
    )
    result = [codec.decode(line) for line in check.content.splitlines()][-1]
    assert type(result).__name__ == "TaskResult"
    assert loads(result.result, "test") is True
