"""The callback server: real aiohttp on 127.0.0.1, real HTTP requests, no mocks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from wove._callback_server import (
    SIGNATURE_HEADER,
    CallbackServer,
    acquire_callback_server,
    payload_request_body,
)
from wove._delivery import dispatch_loop
from wove._errors import InvalidOptionError
from wove._frames import Frame, Heartbeat, TaskResult, TaskStarted
from wove._security import LineCodec, Security

SECRET = b"callback-server-test-secret-0123456789"
TIMEOUT = 10.0


class Recorder:
    """Collects the frames a run receives, and on which thread they arrived."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.on_dispatch_loop: list[bool] = []
        self._lock = threading.Lock()

    def __call__(self, frame: Frame) -> None:
        with self._lock:
            self.frames.append(frame)
            self.on_dispatch_loop.append(dispatch_loop.is_current())


def acquire(port: int = 0, **options: object) -> CallbackServer:
    options.setdefault("security", Security(SECRET))
    coroutine = acquire_callback_server("127.0.0.1", port, **options)  # type: ignore[arg-type]
    return dispatch_loop.run(coroutine).result(TIMEOUT)


def release(server: CallbackServer) -> None:
    dispatch_loop.run(server.release()).result(TIMEOUT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"{}")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def lines(security: Security, *frames: Frame) -> bytes:
    codec = LineCodec(security)
    return b"".join(codec.encode(frame) for frame in frames)


@pytest.fixture
def server() -> Iterator[CallbackServer]:
    found = acquire()
    yield found
    release(found)


def test_events_are_delivered_in_order_on_the_dispatch_loop(server: CallbackServer) -> None:
    recorder = Recorder()
    url = server.register_run("run-a", recorder)
    assert url == f"{server.url}/runs/run-a/events"
    assert server.url == f"http://127.0.0.1:{server.bound[1]}"
    sender = Security(SECRET)
    body = lines(sender, TaskStarted(run_id="run-a"), Heartbeat(run_id="run-a"))
    body += lines(sender, TaskResult(run_id="run-a", result=b"42"))
    status, answer = post(url, body)
    assert (status, answer) == (200, {"accepted": 3, "cancel": False})
    assert [type(frame) for frame in recorder.frames] == [TaskStarted, Heartbeat, TaskResult]
    assert recorder.on_dispatch_loop == [True, True, True]


def test_two_weaves_share_a_fixed_port_and_get_their_own_events() -> None:
    port = free_port()
    first, second = acquire(port), acquire(port)
    try:
        assert first is second
        assert first.bound == ("127.0.0.1", port)
        one, two = Recorder(), Recorder()
        url_one = first.register_run("weave-one-run", one)
        url_two = second.register_run("weave-two-run", two)
        sender = Security(SECRET)
        results: dict[str, int] = {}

        def report(url: str, run_id: str) -> None:
            frames = [Heartbeat(run_id=run_id) for _ in range(5)]
            results[run_id] = post(url, lines(sender, *frames))[0]

        threads = [
            threading.Thread(target=report, args=(url_one, "weave-one-run")),
            threading.Thread(target=report, args=(url_two, "weave-two-run")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        assert results == {"weave-one-run": 200, "weave-two-run": 200}
        assert {frame.run_id for frame in one.frames} == {"weave-one-run"}
        assert {frame.run_id for frame in two.frames} == {"weave-two-run"}
        assert len(one.frames) == len(two.frames) == 5
    finally:
        release(first)
        release(second)


def test_port_zero_allocates_once_and_is_reused(server: CallbackServer) -> None:
    again = acquire(0)
    by_port = acquire(server.bound[1])
    try:
        assert again is server
        assert by_port is server
        assert server.bound[1] != 0
    finally:
        release(again)
        release(by_port)
    assert server.is_serving


def test_forged_event_is_refused_and_never_delivered(server: CallbackServer) -> None:
    recorder = Recorder()
    url = server.register_run("run-forged", recorder)
    forger = Security(b"not-the-callback-secret-at-all-0000")
    status, answer = post(url, lines(forger, TaskResult(run_id="run-forged", result=b"evil")))
    assert status == 401
    assert "bad signature" in str(answer["error"])
    assert recorder.frames == []


def test_unsigned_event_is_refused(server: CallbackServer) -> None:
    recorder = Recorder()
    url = server.register_run("run-unsigned", recorder)
    body = LineCodec(None).encode(TaskResult(run_id="run-unsigned", result=b"x"))
    status, answer = post(url, body)
    assert status == 401
    assert "unsigned" in str(answer["error"])
    assert recorder.frames == []


def test_tampered_body_is_refused(server: CallbackServer) -> None:
    recorder = Recorder()
    url = server.register_run("run-tampered", recorder)
    body = lines(Security(SECRET), TaskResult(run_id="run-tampered", result=b"good"))
    tampered = body.replace(b'"result":"', b'"result":"A')
    assert tampered != body
    status, _ = post(url, tampered)
    assert status == 401
    assert recorder.frames == []


def test_one_bad_line_refuses_the_whole_request(server: CallbackServer) -> None:
    recorder = Recorder()
    url = server.register_run("run-mixed", recorder)
    good = lines(Security(SECRET), Heartbeat(run_id="run-mixed"))
    bad = lines(Security(b"another-secret-entirely-0123456789"), Heartbeat(run_id="run-mixed"))
    status, _ = post(url, good + bad)
    assert status == 401
    assert recorder.frames == []


def test_replayed_line_is_refused(server: CallbackServer) -> None:
    recorder = Recorder()
    url = server.register_run("run-replay", recorder)
    body = lines(Security(SECRET), Heartbeat(run_id="run-replay"))
    assert post(url, body)[0] == 200
    status, answer = post(url, body)
    assert status == 401
    assert "replayed" in str(answer["error"])
    assert len(recorder.frames) == 1


def test_expired_event_is_refused(server: CallbackServer) -> None:
    recorder = Recorder()
    url = server.register_run("run-expired", recorder)
    an_hour_ago = time.time() - 3600
    stale = Security(SECRET, clock=lambda: an_hour_ago)
    status, answer = post(url, lines(stale, Heartbeat(run_id="run-expired")))
    assert status == 401
    assert "timestamp" in str(answer["error"])
    assert recorder.frames == []


def test_event_for_another_run_is_refused(server: CallbackServer) -> None:
    mine, other = Recorder(), Recorder()
    url = server.register_run("run-mine", mine)
    server.register_run("run-other", other)
    status, answer = post(url, lines(Security(SECRET), TaskResult(run_id="run-other", result=b"")))
    assert status == 403
    assert "'run-other' was posted to run 'run-mine'" in str(answer["error"])
    assert mine.frames == []
    assert other.frames == []


def test_unknown_run_is_404(server: CallbackServer) -> None:
    url = f"{server.url}/runs/nobody-here/events"
    status, answer = post(url, lines(Security(SECRET), Heartbeat(run_id="nobody-here")))
    assert status == 404
    assert "nobody-here" in str(answer["error"])


def test_unregistered_run_is_404(server: CallbackServer) -> None:
    recorder = Recorder()
    url = server.register_run("run-gone", recorder)
    server.unregister_run("run-gone")
    assert post(url, lines(Security(SECRET), Heartbeat(run_id="run-gone")))[0] == 404
    assert recorder.frames == []


def test_other_paths_and_methods(server: CallbackServer) -> None:
    server.register_run("run-routes", Recorder(), payload=b"p")
    assert get(f"{server.url}/")[0] == 404
    assert get(f"{server.url}/runs/run-routes/events")[0] == 405
    assert post(f"{server.url}/runs/run-routes/payload", b"x")[0] == 405


def test_register_rejects_bad_and_duplicate_run_ids(server: CallbackServer) -> None:
    with pytest.raises(InvalidOptionError, match="not valid"):
        server.register_run("no/slashes", Recorder())
    server.register_run("run-twice", Recorder())
    with pytest.raises(InvalidOptionError, match="already registered"):
        server.register_run("run-twice", Recorder())


def test_payload_is_served_on_a_signed_request(server: CallbackServer) -> None:
    payload = bytes(range(256)) * 1000
    server.register_run("run-payload", Recorder(), payload=payload)
    url = server.payload_url("run-payload")
    assert url == f"{server.url}/runs/run-payload/payload"
    signature = Security(SECRET).sign(payload_request_body("run-payload")).decode()
    assert get(url, {SIGNATURE_HEADER: signature}) == (200, payload)
    # the same signature again is a replay
    assert get(url, {SIGNATURE_HEADER: signature})[0] == 401


def test_payload_without_or_with_a_bad_signature_is_refused(server: CallbackServer) -> None:
    server.register_run("run-secret-payload", Recorder(), payload=b"secret")
    url = server.payload_url("run-secret-payload")
    status, body = get(url)
    assert status == 401
    assert b"secret" not in body
    forged = Security(b"not-the-callback-secret-at-all-0000")
    header = forged.sign(payload_request_body("run-secret-payload")).decode()
    assert get(url, {SIGNATURE_HEADER: header})[0] == 401
    # a valid signature for another run's payload does not open this one
    other = Security(SECRET).sign(payload_request_body("run-elsewhere")).decode()
    assert get(url, {SIGNATURE_HEADER: other})[0] == 401


def test_payload_for_unknown_run_is_404(server: CallbackServer) -> None:
    server.register_run("run-no-payload", Recorder())
    header = Security(SECRET).sign(payload_request_body("run-no-payload")).decode()
    assert get(server.payload_url("run-no-payload"), {SIGNATURE_HEADER: header})[0] == 404
    assert get(server.payload_url("nobody"), {SIGNATURE_HEADER: header})[0] == 404


def test_oversized_body_is_413() -> None:
    small = acquire(free_port(), max_body_bytes=1024)
    try:
        recorder = Recorder()
        url = small.register_run("run-big", recorder)
        status, _ = post(url, b"x" * 4096)
        assert status == 413
        assert recorder.frames == []
    finally:
        release(small)


def test_bearer_token_is_required_when_configured() -> None:
    guarded = acquire(free_port(), callback_token="proxy-token-123")
    try:
        recorder = Recorder()
        url = guarded.register_run("run-token", recorder)
        sender = Security(SECRET)
        assert post(url, lines(sender, Heartbeat(run_id="run-token")))[0] == 401
        wrong = {"Authorization": "Bearer proxy-token-124"}
        assert post(url, lines(sender, Heartbeat(run_id="run-token")), wrong)[0] == 401
        assert recorder.frames == []
        right = {"Authorization": "Bearer proxy-token-123"}
        assert post(url, lines(sender, Heartbeat(run_id="run-token")), right)[0] == 200
        assert len(recorder.frames) == 1
    finally:
        release(guarded)


def test_sharing_a_port_needs_the_same_secret_url_and_token() -> None:
    port = free_port()
    first = acquire(port, public_url="https://callbacks.example.com/wove/")
    try:
        assert first.url == "https://callbacks.example.com/wove"
        run_url = first.register_run("run-public", Recorder())
        assert run_url == "https://callbacks.example.com/wove/runs/run-public/events"
        other_secret = Security(b"a-different-secret-0123456789abcdef")
        with pytest.raises(InvalidOptionError, match="another secret"):
            acquire(port, security=other_secret)
        with pytest.raises(InvalidOptionError, match="callback_url"):
            acquire(port, public_url="https://elsewhere.example.com")
        with pytest.raises(InvalidOptionError, match="callback_token"):
            acquire(port, callback_token="t")
    finally:
        release(first)


def test_releasing_the_last_reference_frees_the_port() -> None:
    port = free_port()
    first, second = acquire(port), acquire(port)
    release(first)
    still_serving = second.is_serving
    release(second)
    assert (still_serving, second.is_serving) == (True, False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # would raise EADDRINUSE if the server still listened
    again = acquire(port)
    try:
        assert again is not first
    finally:
        release(again)


def test_acquire_from_another_loop_hops_to_the_dispatch_loop() -> None:
    import asyncio

    async def use() -> CallbackServer:
        found = await acquire_callback_server(security=Security(SECRET))
        await found.release()
        return found

    found = asyncio.run(use())
    assert not found.is_serving


def test_importing_wove_does_not_import_aiohttp() -> None:
    code = "import sys, wove, wove._callback_server; print('aiohttp' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert result.stdout.strip() == "False"


def test_missing_aiohttp_names_the_extra_to_install() -> None:
    code = (
        "import sys, asyncio\n"
        "sys.modules['aiohttp'] = None\n"
        "from wove._callback_server import MissingCallbackFeatureError, acquire_callback_server\n"
        "from wove._security import Security\n"
        "try:\n"
        "    asyncio.run(acquire_callback_server(security=Security(b'x' * 16)))\n"
        "except MissingCallbackFeatureError as error:\n"
        "    print(isinstance(error, ImportError), error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert result.stdout.startswith("True ")
    assert 'pip install "wove-core[callback]"' in result.stdout
