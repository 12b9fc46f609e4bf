"""The worker runtime (integrations/worker.py) and ``python -m wove.backend_worker``.

The runtime is driven directly with frames and an ``emit`` that queues every event. No test
sleeps to synchronise or measures time: sync tasks block on a pipe the test writes to only after
it has seen what it waits for, and every wait has a timeout that fails the test.
"""

from __future__ import annotations

import asyncio
import decimal
import inspect
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from wove import WeaveUsageError
from wove._errors import FrameRejectedError
from wove._frames import (
    TERMINAL_EVENTS,
    CancelTask,
    Delivery,
    Frame,
    Heartbeat,
    LogRecord,
    RunTask,
    Shutdown,
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskStarted,
    new_run_id,
)
from wove._security import LineCodec, Security
from wove.integrations.worker import WorkerRuntime, arun, run

#: Seconds any wait may take before the test calls the runtime wrong.
WAIT = 10.0
SECRET = b"test-secret-0123456789abcdef"


def task(fn: Callable[..., Any], *, run_id: str | None = None, **options: Any) -> RunTask:
    """A run_task frame for ``fn``; keyword ``args`` are its arguments."""
    heartbeat = options.pop("heartbeat", None)
    return RunTask(
        run_id=run_id or new_run_id("t"),
        task_id=options.pop("task_id", "t"),
        callable=cloudpickle.dumps(fn),
        args=cloudpickle.dumps(options.pop("args", {})),
        is_async=options.pop("is_async", inspect.iscoroutinefunction(fn)),
        delivery=Delivery(heartbeat_seconds=heartbeat),
        **options,
    )


class Events:
    """An ``emit`` that queues events, and ways to wait for them."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Frame] = asyncio.Queue()
        self.seen: list[Frame] = []

    async def __call__(self, frame: Frame) -> None:
        await self.queue.put(frame)

    async def next(self) -> Frame:
        frame = await asyncio.wait_for(self.queue.get(), WAIT)
        self.seen.append(frame)
        return frame

    async def first(self, kind: Any, run_id: str | None = None, nth: int = 1) -> Any:
        """The ``nth`` event of ``kind`` (for ``run_id``), waiting for it if need be."""

        def matching() -> list[Frame]:
            return [
                frame
                for frame in self.seen
                if isinstance(frame, kind) and run_id in (None, frame.run_id)
            ]

        while len(matching()) < nth:
            await self.next()
        return matching()[nth - 1]

    async def terminal(self, run_id: str) -> Any:
        return await self.first(TERMINAL_EVENTS, run_id)

    def rest(self) -> list[Frame]:
        """Everything queued and not read yet."""
        frames = []
        while not self.queue.empty():
            frames.append(self.queue.get_nowait())
        self.seen.extend(frames)
        return frames

    def of(self, run_id: str) -> list[type[Frame]]:
        return [type(frame) for frame in self.seen if frame.run_id == run_id]


async def run_one(frame: RunTask, **runtime_options: Any) -> tuple[Any, Events]:
    events = Events()
    async with WorkerRuntime(events, **runtime_options) as runtime:
        await runtime.handle(frame)
        terminal = await events.terminal(frame.run_id)
    return terminal, events


def run_sync_scenario(frame: RunTask, **runtime_options: Any) -> tuple[Any, Events]:
    return asyncio.run(run_one(frame, **runtime_options))


@pytest.fixture
def gate() -> Iterator[tuple[int, int]]:
    """A pipe sync tasks block on (``os.read``) until the test writes to it.

    Its fds are plain ints, so a cloudpickled closure carries them. Closing the write end on
    teardown releases any task still waiting, so no pool thread stays stuck.
    """
    read_end, write_end = os.pipe()
    yield read_end, write_end
    os.close(write_end)
    os.close(read_end)


# -- results ------------------------------------------------------------------------------------


def test_sync_callable_reports_started_then_result() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    frame = task(add, args={"a": 2, "b": 40})
    terminal, events = run_sync_scenario(frame, worker_name="worker-1")
    assert isinstance(terminal, TaskResult)
    assert pickle.loads(terminal.result) == 42
    assert events.of(frame.run_id) == [TaskStarted, TaskResult]
    assert events.seen[0] == TaskStarted(run_id=frame.run_id, worker="worker-1")


def test_async_callable_is_awaited() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    terminal, events = run_sync_scenario(task(double, args={"x": 21}))
    assert pickle.loads(terminal.result) == 42
    assert [type(frame) for frame in events.seen] == [TaskStarted, TaskResult]


def test_closures_and_lambdas_travel_by_value() -> None:
    offset = 100
    scale = {"factor": 3}

    async def scaled(x: int) -> int:
        return x * scale["factor"] + offset

    lam = task(lambda x: [x, offset], args={"x": 1})
    closure = task(scaled, args={"x": 2})

    async def scenario() -> tuple[Any, Any]:
        events = Events()
        async with WorkerRuntime(events) as runtime:
            await runtime.handle(lam)
            await runtime.handle(closure)
            return await events.terminal(lam.run_id), await events.terminal(closure.run_id)

    first, second = asyncio.run(scenario())
    assert pickle.loads(first.result) == [1, 100]
    assert pickle.loads(second.result) == 106


def test_sync_frame_whose_callable_returns_a_coroutine_is_awaited() -> None:
    async def answer() -> str:
        return "awaited"

    terminal, _ = run_sync_scenario(task(answer, is_async=False))
    assert pickle.loads(terminal.result) == "awaited"


def test_contextvars_are_copied_into_worker_threads() -> None:
    def precision() -> int:
        return decimal.getcontext().prec

    async def scenario() -> Any:
        decimal.setcontext(decimal.Context(prec=7))  # decimal keeps its context in a ContextVar
        terminal, _ = await run_one(task(precision))
        return terminal

    assert pickle.loads(asyncio.run(scenario()).result) == 7


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True])
def test_exception_arrives_normalized_and_pickled(is_async: bool) -> None:
    def explode(value: int) -> None:
        raise ValueError(f"bad input {value}")

    async def explode_async(value: int) -> None:
        explode(value)

    terminal, _ = run_sync_scenario(task(explode_async if is_async else explode, args={"value": 7}))
    assert isinstance(terminal, TaskError)
    error = terminal.error
    assert error.kind == "builtins.ValueError"
    assert error.message == "bad input 7"
    assert error.source == "task"
    assert error.retryable is True
    assert "in explode" in error.traceback
    assert "ValueError: bad input 7" in error.traceback
    assert terminal.exception is not None
    rebuilt = pickle.loads(terminal.exception)
    assert type(rebuilt) is ValueError
    assert rebuilt.args == ("bad input 7",)


def test_exception_marked_not_retryable_is_reported_so() -> None:
    class PermanentError(RuntimeError):
        retryable = False

    def fail() -> None:
        raise PermanentError("no point retrying")

    terminal, _ = run_sync_scenario(task(fail))
    assert terminal.error.retryable is False
    assert terminal.error.kind.endswith("PermanentError")


def test_exception_that_cannot_be_pickled_still_reports_the_normalized_error() -> None:
    class LockedError(Exception):
        """Pickled by value (a local class), but its lock attribute cannot be pickled."""

        def __init__(self, message: str) -> None:
            super().__init__(message)
            self.lock = threading.Lock()

    def fail() -> None:
        raise LockedError("holding a lock")

    with pytest.raises(TypeError):
        cloudpickle.dumps(LockedError("check the premise"))
    terminal, _ = run_sync_scenario(task(fail))
    assert isinstance(terminal, TaskError)
    assert terminal.exception is None
    assert terminal.error.kind.endswith("LockedError")
    assert terminal.error.message == "holding a lock"
    assert "LockedError: holding a lock" in terminal.error.traceback


@pytest.mark.parametrize("is_async", [False, True])
def test_unpicklable_result_is_a_serialization_error_not_a_hang(is_async: bool) -> None:
    def make_lock() -> Any:
        return threading.Lock()

    async def make_lock_async() -> Any:
        return threading.Lock()

    terminal, events = run_sync_scenario(task(make_lock_async if is_async else make_lock))
    assert isinstance(terminal, TaskError)
    assert terminal.error.source == "serialization"
    assert terminal.error.retryable is False
    assert terminal.error.kind == "builtins.TypeError"
    assert "_thread.lock" in terminal.error.message
    assert "cannot pickle" in terminal.error.message
    assert events.of(terminal.run_id) == [TaskStarted, TaskError]


def test_callable_that_cannot_be_loaded_is_a_serialization_error() -> None:
    frame = task(print)
    frame = RunTask(
        run_id=frame.run_id,
        task_id="missing",
        callable=b"cno_such_module_for_wove\nfunc\n.",  # a reference to a module not installed
        args=frame.args,
    )
    terminal, _ = run_sync_scenario(frame)
    assert terminal.error.source == "serialization"
    assert terminal.error.retryable is False
    assert terminal.error.kind == "builtins.ModuleNotFoundError"
    assert "could not load the callable of task 'missing'" in terminal.error.message
    assert "no_such_module_for_wove" in terminal.error.message


def test_arguments_must_be_a_dict_of_keyword_arguments() -> None:
    frame = task(print)
    frame = RunTask(
        run_id=frame.run_id, task_id="t", callable=frame.callable, args=cloudpickle.dumps([1])
    )
    terminal, _ = run_sync_scenario(frame)
    assert terminal.error.source == "serialization"
    assert "must be a dict of keyword arguments, got a builtins.list" in terminal.error.message


@pytest.mark.parametrize("is_async", [False, True])
def test_timeout_is_a_task_error_with_builtin_timeout_error(
    is_async: bool, gate: tuple[int, int]
) -> None:
    read_end, _ = gate

    async def forever() -> None:
        await asyncio.Event().wait()

    def blocked() -> bytes:
        return os.read(read_end, 1)

    frame = task(forever if is_async else blocked, task_id="slow", timeout=0.05)
    terminal, events = run_sync_scenario(frame)
    assert isinstance(terminal, TaskError)
    assert terminal.error.kind == "builtins.TimeoutError"
    assert terminal.error.message == "task 'slow' timed out after 0.05s"
    assert terminal.error.retryable is True
    assert terminal.exception is not None
    assert type(pickle.loads(terminal.exception)) is TimeoutError
    assert events.of(frame.run_id) == [TaskStarted, TaskError]


# -- cancellation -------------------------------------------------------------------------------


def test_cancelling_a_running_async_task_reports_task_cancelled() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    frame = task(forever)

    async def scenario() -> Events:
        events = Events()
        async with WorkerRuntime(events) as runtime:
            await runtime.handle(frame)
            await events.first(TaskStarted, frame.run_id)
            await runtime.handle(CancelTask(run_id=frame.run_id))
            await events.terminal(frame.run_id)
            await runtime.drain()
            assert runtime.running == 0
        events.rest()
        return events

    events = asyncio.run(scenario())
    assert events.of(frame.run_id) == [TaskStarted, TaskCancelled]


def test_cancel_before_the_run_started_still_reports_task_cancelled() -> None:
    frame = task(print)

    async def scenario() -> Events:
        events = Events()
        async with WorkerRuntime(events) as runtime:
            await runtime.handle(frame)
            await runtime.handle(CancelTask(run_id=frame.run_id))  # no await in between
            await events.terminal(frame.run_id)
        events.rest()
        return events

    assert asyncio.run(scenario()).of(frame.run_id) == [TaskCancelled]


def test_cancelled_sync_task_is_reported_at_once_and_its_result_discarded(
    gate: tuple[int, int],
) -> None:
    read_end, write_end = gate

    def blocked() -> bytes:
        return os.read(read_end, 1)

    stuck = task(blocked)
    after = task(lambda: "next")

    async def scenario() -> Events:
        events = Events()
        async with WorkerRuntime(events, max_threads=1) as runtime:
            await runtime.handle(stuck)
            await events.first(TaskStarted, stuck.run_id)
            await runtime.handle(CancelTask(run_id=stuck.run_id))
            assert isinstance(await events.terminal(stuck.run_id), TaskCancelled)
            os.write(write_end, b"x")  # the thread returns now; nobody may report it
            await runtime.handle(after)
            # One thread: ``after`` runs only once the cancelled call has returned.
            assert pickle.loads((await events.terminal(after.run_id)).result) == "next"
        events.rest()
        return events

    events = asyncio.run(scenario())
    assert events.of(stuck.run_id) == [TaskStarted, TaskCancelled]


def test_cancelling_an_unknown_run_is_ignored() -> None:
    frame = task(lambda: 1)

    async def scenario() -> Events:
        events = Events()
        async with WorkerRuntime(events) as runtime:
            await runtime.handle(CancelTask(run_id="never-started"))
            await runtime.handle(frame)
            await events.terminal(frame.run_id)
            await runtime.handle(CancelTask(run_id=frame.run_id))  # already finished
        events.rest()
        return events

    events = asyncio.run(scenario())
    assert [type(frame) for frame in events.seen] == [TaskStarted, TaskResult]


def test_shutdown_cancels_every_run_and_refuses_new_ones() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    first, second, late = task(forever), task(forever), task(lambda: 1)

    async def scenario() -> Events:
        events = Events()
        async with WorkerRuntime(events, worker_name="w") as runtime:
            await runtime.handle(first)
            await runtime.handle(second)
            await events.first(TaskStarted, first.run_id)
            await runtime.handle(Shutdown(run_id=""))
            await runtime.drain()
            await runtime.handle(late)
        events.rest()
        return events

    events = asyncio.run(scenario())
    assert TaskCancelled in events.of(first.run_id)
    assert TaskCancelled in events.of(second.run_id)
    refusal = next(frame for frame in events.seen if frame.run_id == late.run_id)
    assert isinstance(refusal, TaskError)
    assert refusal.error.source == "worker"
    assert "shutting down" in refusal.error.message


# -- delivery -----------------------------------------------------------------------------------


def test_heartbeats_flow_while_a_sync_task_blocks(gate: tuple[int, int]) -> None:
    read_end, write_end = gate

    def blocked() -> str:
        os.read(read_end, 1)
        return "released"

    frame = task(blocked, heartbeat=0.05)

    async def scenario() -> Events:
        events = Events()
        async with WorkerRuntime(events) as runtime:
            await runtime.handle(frame)
            await events.first(Heartbeat, frame.run_id, nth=2)
            os.write(write_end, b"x")
            terminal = await events.terminal(frame.run_id)
            assert pickle.loads(terminal.result) == "released"
        events.rest()
        return events

    kinds = asyncio.run(scenario()).of(frame.run_id)
    assert kinds[0] is TaskStarted
    assert kinds[-1] is TaskResult
    assert kinds.count(Heartbeat) >= 2
    assert set(kinds[1:-1]) == {Heartbeat}


def test_exactly_one_terminal_event_per_run_with_200_concurrent_runs() -> None:
    async def async_value(i: int) -> int:
        await asyncio.sleep(0)
        return i

    def sync_value(i: int) -> int:
        if i % 3 == 0:
            raise ValueError(i)
        return i

    async def forever(i: int) -> None:
        await asyncio.Event().wait()

    frames = []
    for i in range(200):
        body = forever if i % 10 == 0 else async_value if i % 2 else sync_value
        frames.append(task(body, args={"i": i}, heartbeat=0.01))

    async def scenario() -> Events:
        events = Events()
        async with WorkerRuntime(events, max_threads=8) as runtime:
            for frame in frames:
                await runtime.handle(frame)
            for frame in frames[::10]:
                await runtime.handle(CancelTask(run_id=frame.run_id))
            await runtime.drain()
        events.rest()
        return events

    events = asyncio.run(scenario())
    for i, frame in enumerate(frames):
        kinds = events.of(frame.run_id)
        terminals = [kind for kind in kinds if kind in TERMINAL_EVENTS]
        assert len(terminals) == 1, (i, kinds)
        assert kinds[-1] in TERMINAL_EVENTS
        if i % 10 == 0:
            assert terminals == [TaskCancelled]


def test_duplicate_run_id_while_running_is_ignored_with_a_warning(gate: tuple[int, int]) -> None:
    read_end, write_end = gate

    def blocked() -> bytes:
        return os.read(read_end, 1)

    frame = task(blocked)

    async def scenario() -> tuple[LogRecord, Events]:
        events = Events()
        async with WorkerRuntime(events) as runtime:
            await runtime.handle(frame)
            await events.first(TaskStarted, frame.run_id)
            await runtime.handle(frame)
            warning = await events.first(LogRecord, frame.run_id)
            os.write(write_end, b"x")
            await events.terminal(frame.run_id)
            await runtime.drain()
        events.rest()
        return warning, events

    warning, events = asyncio.run(scenario())
    assert warning.level == "warning"
    assert "already running" in warning.message
    assert events.of(frame.run_id) == [TaskStarted, LogRecord, TaskResult]


def test_invalid_run_id_and_non_command_frames_are_logged_not_run() -> None:
    bad = RunTask(run_id="bad id!", task_id="t", callable=b"", args=b"")

    async def scenario() -> list[Frame]:
        events = Events()
        async with WorkerRuntime(events) as runtime:
            await runtime.handle(bad)
            await runtime.handle(Heartbeat(run_id="r1"))
        return events.rest()

    refused, ignored = asyncio.run(scenario())
    assert isinstance(refused, LogRecord)
    assert refused.level == "error"
    assert "'bad id!' is not valid" in refused.message
    assert isinstance(ignored, LogRecord)
    assert "ignored a Heartbeat frame" in ignored.message


# -- run() / arun(): signed backend payloads ----------------------------------------------------


def payload_for(frame: RunTask, security: Security | None) -> bytes:
    return LineCodec(security).encode(frame)


def creates(path: Path) -> RunTask:
    """A task whose only effect is creating ``path``: proof that it ran."""

    def touch() -> str:
        with open(path, "a") as handle:
            handle.write("ran\n")
        return "done"

    return task(touch)


def test_run_executes_a_signed_payload_and_reports_every_event(tmp_path: Path) -> None:
    security = Security(SECRET)
    marker = tmp_path / "ran"
    seen: list[Frame] = []
    terminal = run(payload_for(creates(marker), security), security=security, on_event=seen.append)
    assert isinstance(terminal, TaskResult)
    assert pickle.loads(terminal.result) == "done"
    assert [type(frame) for frame in seen] == [TaskStarted, TaskResult]
    assert seen[-1] is terminal
    assert marker.read_text() == "ran\n"


def test_arun_executes_a_signed_payload() -> None:
    security = Security(SECRET, key_id="k1")

    async def hello(name: str) -> str:
        return f"hello {name}"

    payload = payload_for(task(hello, args={"name": "wove"}), security).decode()
    terminal = asyncio.run(arun(payload, security=security))
    assert isinstance(terminal, TaskResult)
    assert pickle.loads(terminal.result) == "hello wove"


def test_run_takes_its_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WOVE_SECRET", "environment-secret-0123456789")
    monkeypatch.setenv("WOVE_SECRET_KEY_ID", "prod")
    security = Security("environment-secret-0123456789", key_id="prod")
    terminal = run(payload_for(task(lambda: 5), security))
    assert isinstance(terminal, TaskResult)
    assert pickle.loads(terminal.result) == 5


def test_run_inside_an_event_loop_points_to_arun() -> None:
    async def scenario() -> None:
        run(b"")

    with pytest.raises(WeaveUsageError, match=r"await wove\.integrations\.worker\.arun"):
        asyncio.run(scenario())


def test_on_event_failure_is_raised_after_the_run() -> None:
    security = Security(SECRET)

    def broken(frame: Frame) -> None:
        raise ConnectionError("callback server unreachable")

    with pytest.raises(ConnectionError, match="unreachable"):
        run(payload_for(task(lambda: 1), security), security=security, on_event=broken)


def _tampered(line: bytes) -> bytes:
    header, _, body = line.partition(b"\t")
    return header + b"\t" + body.replace(b'"task_id":"t"', b'"task_id":"u"')


@pytest.mark.parametrize(
    ("make_payload", "match"),
    [
        (
            lambda frame: payload_for(frame, Security(b"some-other-secret-0123456789")),
            "bad signature",
        ),
        (lambda frame: _tampered(payload_for(frame, Security(SECRET))), "bad signature"),
        (
            lambda frame: payload_for(frame, Security(SECRET, clock=lambda: time.time() - 3600)),
            "expired",
        ),
        (lambda frame: payload_for(frame, Security(SECRET, key_id="other")), "signed with key"),
        (lambda frame: payload_for(frame, None), "unsigned frame refused"),
        (lambda frame: b"not a signature\t" + payload_for(frame, None), "malformed"),
        (lambda frame: payload_for(frame, Security(SECRET)) * 2, "exactly one line"),
    ],
    ids=["forged", "tampered", "expired", "wrong-key", "unsigned", "garbage-header", "two-lines"],
)
def test_refused_payload_runs_nothing(
    make_payload: Callable[[RunTask], bytes], match: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    payload = make_payload(creates(marker))
    with pytest.raises(FrameRejectedError, match=match):
        run(payload, security=Security(SECRET))
    assert not marker.exists()


def test_replayed_payload_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    security = Security(SECRET)
    marker = tmp_path / "ran"
    payload = payload_for(creates(marker), security)
    run(payload, security=security)
    with pytest.raises(FrameRejectedError, match="replayed"):
        run(payload, security=security)
    assert marker.read_text() == "ran\n"  # once, not twice


def test_replay_is_caught_with_the_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WOVE_SECRET", "replay-secret-0123456789abcdef")
    monkeypatch.delenv("WOVE_SECRET_KEY_ID", raising=False)
    marker = tmp_path / "ran"
    payload = payload_for(creates(marker), Security("replay-secret-0123456789abcdef"))
    run(payload)
    with pytest.raises(FrameRejectedError, match="replayed"):
        run(payload)
    assert marker.read_text() == "ran\n"


def test_unsigned_payload_needs_wove_insecure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WOVE_SECRET", raising=False)
    marker = tmp_path / "ran"
    payload = payload_for(creates(marker), None)
    monkeypatch.delenv("WOVE_INSECURE", raising=False)
    with pytest.raises(FrameRejectedError, match="set WOVE_SECRET"):
        run(payload)
    assert not marker.exists()
    monkeypatch.setenv("WOVE_INSECURE", "1")
    assert isinstance(run(payload), TaskResult)
    assert marker.exists()


def test_signed_payload_on_a_worker_without_a_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WOVE_SECRET", raising=False)
    monkeypatch.setenv("WOVE_INSECURE", "1")
    marker = tmp_path / "ran"
    with pytest.raises(FrameRejectedError, match="WOVE_SECRET is not set"):
        run(payload_for(creates(marker), Security(SECRET)))
    assert not marker.exists()


def test_payload_must_hold_a_run_task_frame() -> None:
    security = Security(SECRET)
    with pytest.raises(FrameRejectedError, match="expected a run_task frame, got CancelTask"):
        run(LineCodec(security).encode(CancelTask(run_id="r1")), security=security)


# -- python -m wove.backend_worker --------------------------------------------------------------


def backend_worker(
    payload: bytes, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "wove.backend_worker", *args],
        input=payload,
        capture_output=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_backend_worker_exit_codes_and_output(tmp_path: Path) -> None:
    secret = "backend-secret-0123456789abcdef"
    security = Security(secret)
    env = {"WOVE_SECRET": secret}

    def noisy() -> int:
        print("task output goes to stderr")
        return 7

    def failing() -> None:
        raise KeyError("missing")

    payload_file = tmp_path / "payload"
    payload_file.write_bytes(payload_for(task(noisy), security))
    done = backend_worker(b"", env, "--payload-file", str(payload_file))
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert pickle.loads(LineCodec(None).decode(line).result) == 7
    assert b"task output goes to stderr" in done.stderr

    failed = backend_worker(payload_for(task(failing), security), env)  # from stdin
    assert failed.returncode == 1, failed.stderr
    assert LineCodec(None).decode(failed.stdout).error.kind == "builtins.KeyError"

    marker = tmp_path / "ran"
    forged = payload_for(creates(marker), Security("not-the-secret-0123456789"))
    refused = backend_worker(forged, env)
    assert refused.returncode == 2
    assert refused.stdout == b""
    assert b"bad signature" in refused.stderr
    assert not marker.exists()
