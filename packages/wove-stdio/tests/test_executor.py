"""The ``stdio`` executor driven directly (start/send/recv/stop) against real worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

import cloudpickle
import msgspec
import pytest

from wove import InvalidOptionError, WeaveUsageError
from wove.plugins import (
    TERMINAL_EVENTS,
    CancelTask,
    LineCodec,
    LogRecord,
    RunTask,
    Security,
    Shutdown,
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskStarted,
    dumps,
    loads,
    new_run_id,
)
from wove_stdio import StdioExecutor, StdioSettings, StdioWorkerStartError
from wove_stdio._executor import default_processes

# The workers cannot import this test module, so its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

REASON = "testing the stdio executor"
#: Every wait in these tests fails the test after this long instead of hanging it.
WAIT = 20.0


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


@contextlib.asynccontextmanager
async def started(**executor_config: Any) -> AsyncIterator[StdioExecutor]:
    executor = StdioExecutor()
    await executor.start("workers", executor_config, {})
    try:
        yield executor
    finally:
        await executor.stop()


def run_task(function: Callable[..., Any], args: dict[str, Any] | None = None) -> RunTask:
    return RunTask(
        run_id=new_run_id(getattr(function, "__name__", "task")),
        task_id=getattr(function, "__name__", "task"),
        callable=dumps(function, REASON),
        args=dumps(args or {}, REASON),
        is_async=inspect.iscoroutinefunction(function),
    )


async def next_event(executor: StdioExecutor) -> Any:
    return await asyncio.wait_for(executor.recv(), WAIT)


async def event_for(executor: StdioExecutor, run_id: str, kinds: tuple[type, ...]) -> Any:
    """The next event of one of ``kinds`` for ``run_id``, skipping heartbeats and logs."""
    while True:
        event = await next_event(executor)
        if event.run_id == run_id and isinstance(event, kinds):
            return event
        assert isinstance(event, (TaskStarted, LogRecord)) or not isinstance(
            event, TERMINAL_EVENTS
        ), f"unexpected {event!r} while waiting for {kinds} of {run_id}"


async def outcomes(executor: StdioExecutor, run_ids: Iterable[str]) -> dict[str, Any]:
    """Receive events until every run in ``run_ids`` has its terminal event; return those."""
    waiting = set(run_ids)
    terminal: dict[str, Any] = {}
    while waiting:
        event = await next_event(executor)
        if isinstance(event, TERMINAL_EVENTS):
            assert event.run_id in waiting, f"second or unknown terminal event {event!r}"
            waiting.discard(event.run_id)
            terminal[event.run_id] = event
    return terminal


async def result_of(executor: StdioExecutor, frame: RunTask) -> Any:
    await executor.send(frame)
    [outcome] = (await outcomes(executor, [frame.run_id])).values()
    assert isinstance(outcome, TaskResult), outcome
    return loads(outcome.result, REASON)


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- the callables the workers run ---------------------------------------------------------------


def add(a: int, b: int) -> int:
    return a + b


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def worker_pid() -> int:
    return os.getpid()


async def wait_forever() -> None:
    await asyncio.Event().wait()


def wait_for_file(release: str, finished: str) -> None:
    while not os.path.exists(release):
        time.sleep(0.01)
    with open(finished, "w"):
        pass


def big_bytes(size: int) -> bytes:
    return os.urandom(size)


# -- results and errors --------------------------------------------------------------------------


def test_sync_callable_reports_started_then_result():
    async def body() -> None:
        async with started(processes=1) as executor:
            frame = run_task(add, {"a": 2, "b": 3})
            await executor.send(frame)

            first = await next_event(executor)
            assert isinstance(first, TaskStarted)
            assert first.run_id == frame.run_id
            result = await event_for(executor, frame.run_id, TERMINAL_EVENTS)
            assert isinstance(result, TaskResult)
            assert loads(result.result, REASON) == 5

    run(body)


def test_async_callable_reports_started_then_result():
    async def body() -> None:
        async with started(processes=1) as executor:
            frame = run_task(async_add, {"a": 40, "b": 2})
            assert frame.is_async
            await executor.send(frame)

            assert isinstance(await event_for(executor, frame.run_id, (TaskStarted,)), TaskStarted)
            result = await event_for(executor, frame.run_id, TERMINAL_EVENTS)
            assert isinstance(result, TaskResult)
            assert loads(result.result, REASON) == 42

    run(body)


def test_exception_becomes_task_error_with_the_exception_and_traceback():
    async def body() -> None:
        async with started(processes=1) as executor:
            frame = run_task(fail, {"message": "no good"})
            await executor.send(frame)

            error = await event_for(executor, frame.run_id, TERMINAL_EVENTS)
            assert isinstance(error, TaskError)
            assert error.error.source == "task"
            assert "ValueError" in error.error.kind
            assert error.error.message == "no good"
            assert "fail" in error.error.traceback
            assert error.exception is not None
            rebuilt = loads(error.exception, REASON)
            assert isinstance(rebuilt, ValueError)
            assert str(rebuilt) == "no good"

    run(body)


def test_large_payload_crosses_in_one_line():
    size = 12 * 1024 * 1024

    async def body() -> None:
        async with started(processes=1) as executor:
            value = await result_of(executor, run_task(big_bytes, {"size": size}))
            assert isinstance(value, bytes)
            assert len(value) == size

    run(body)


# -- the pool -------------------------------------------------------------------------------------


def test_runs_spread_over_the_processes_and_all_come_back():
    async def body() -> None:
        async with started(processes=2) as executor:
            pids = executor.pids
            assert len(pids) == 2
            frames = [run_task(worker_pid) for _ in range(20)]
            for frame in frames:
                await executor.send(frame)

            done = await outcomes(executor, [frame.run_id for frame in frames])

            assert all(isinstance(event, TaskResult) for event in done.values())
            answered_by = [loads(event.result, REASON) for event in done.values()]
            assert set(answered_by) == set(pids)
            assert sorted(answered_by.count(pid) for pid in pids) == [10, 10]

    run(body)


def test_one_process_serves_many_runs():
    async def body() -> None:
        async with started(processes=1) as executor:
            [pid] = executor.pids
            for _ in range(10):
                assert await result_of(executor, run_task(worker_pid)) == pid
            assert executor.pids == (pid,)

    run(body)


def test_concurrent_runs_share_one_process():
    async def body() -> None:
        async with started(processes=1) as executor:
            [pid] = executor.pids
            frames = [run_task(async_add, {"a": n, "b": n}) for n in range(25)]
            for frame in frames:
                await executor.send(frame)
            done = await outcomes(executor, [frame.run_id for frame in frames])
            assert [loads(done[frame.run_id].result, REASON) for frame in frames] == [
                2 * n for n in range(25)
            ]
            assert executor.pids == (pid,)

    run(body)


# -- cancellation ---------------------------------------------------------------------------------


def test_cancel_running_task_reports_task_cancelled():
    async def body() -> None:
        async with started(processes=1) as executor:
            frame = run_task(wait_forever)
            await executor.send(frame)
            await event_for(executor, frame.run_id, (TaskStarted,))

            await executor.send(CancelTask(run_id=frame.run_id))

            ended = await event_for(executor, frame.run_id, TERMINAL_EVENTS)
            assert isinstance(ended, TaskCancelled)
            # The worker carries on serving runs.
            assert await result_of(executor, run_task(add, {"a": 1, "b": 1})) == 2

    run(body)


def test_cancelled_sync_task_really_stops_when_its_worker_is_recycled(tmp_path):
    # A thread cannot be stopped from inside the worker, so the worker takes no new runs,
    # finishes the ones it has, and exits, which ends the cancelled task's thread too.
    release, finished = tmp_path / "release", tmp_path / "finished"

    async def body() -> None:
        async with started(processes=1) as executor:
            [worker] = executor._workers
            other = run_task(wait_forever)
            blocked = run_task(wait_for_file, {"release": str(release), "finished": str(finished)})
            await executor.send(other)
            await executor.send(blocked)
            await outcomes_started(executor, [other.run_id, blocked.run_id])

            await executor.send(CancelTask(run_id=blocked.run_id))
            ended = await event_for(executor, blocked.run_id, TERMINAL_EVENTS)
            assert isinstance(ended, TaskCancelled)

            # New work goes to a fresh worker; the old one keeps its other run until it ends.
            fresh_pid = await result_of(executor, run_task(worker_pid))
            assert fresh_pid != worker.pid
            assert executor.pids == (worker.pid, fresh_pid)
            await executor.send(CancelTask(run_id=other.run_id))
            assert isinstance(
                await event_for(executor, other.run_id, TERMINAL_EVENTS), TaskCancelled
            )

            assert await asyncio.wait_for(worker.process.wait(), WAIT) == 0
            assert executor.pids == (fresh_pid,)
            release.touch()  # too late: the thread went with its process
            assert await result_of(executor, run_task(worker_pid)) == fresh_pid

    run(body)
    assert not finished.exists()


def test_sync_task_that_timed_out_on_the_worker_is_stopped_with_its_worker(tmp_path):
    release, finished = tmp_path / "release", tmp_path / "finished"

    async def body() -> None:
        async with started(processes=1) as executor:
            [worker] = executor._workers
            frame = run_task(wait_for_file, {"release": str(release), "finished": str(finished)})
            frame = msgspec.structs.replace(frame, timeout=0.2)
            await executor.send(frame)

            error = await event_for(executor, frame.run_id, TERMINAL_EVENTS)
            assert isinstance(error, TaskError)
            assert error.error.kind == "builtins.TimeoutError"
            assert await asyncio.wait_for(worker.process.wait(), WAIT) == 0
            release.touch()  # too late: the thread went with its process
            assert await result_of(executor, run_task(worker_pid)) != worker.pid

    run(body)
    assert not finished.exists()


def test_cancel_of_unknown_run_is_ignored():
    async def body() -> None:
        async with started(processes=1) as executor:
            await executor.send(CancelTask(run_id="never-sent"))
            assert await result_of(executor, run_task(add, {"a": 1, "b": 2})) == 3

    run(body)


# -- crashes --------------------------------------------------------------------------------------


def test_killed_worker_orphans_its_run_and_the_next_run_gets_a_fresh_worker():
    async def body() -> None:
        async with started(processes=1) as executor:
            frame = run_task(wait_forever)
            await executor.send(frame)
            await event_for(executor, frame.run_id, (TaskStarted,))
            [pid] = executor.pids

            os.kill(pid, signal.SIGKILL)

            error = await event_for(executor, frame.run_id, TERMINAL_EVENTS)
            assert isinstance(error, TaskError)
            assert error.error.source == "orphaned"
            assert error.error.kind == "wove.WorkerExited"
            assert error.error.retryable is True
            assert error.error.message == (
                f"stdio worker process {pid} exited with code -9 (SIGKILL) while running this task"
            )
            assert executor.pids == ()

            new_pid = await result_of(executor, run_task(worker_pid))
            assert new_pid != pid
            assert executor.pids == (new_pid,)

    run(body)


def test_a_crash_fails_only_the_runs_of_the_crashed_worker():
    async def body() -> None:
        async with started(processes=2) as executor:
            doomed, survivor = run_task(wait_forever), run_task(wait_forever)
            await executor.send(doomed)
            await executor.send(survivor)
            await outcomes_started(executor, [doomed.run_id, survivor.run_id])
            victim = executor._owners[doomed.run_id].pid  # which worker took it
            assert victim in executor.pids

            os.kill(victim, signal.SIGKILL)

            error = await event_for(executor, doomed.run_id, TERMINAL_EVENTS)
            assert isinstance(error, TaskError)
            assert error.error.source == "orphaned"
            assert f"process {victim} exited" in error.error.message
            assert victim not in executor.pids
            assert len(executor.pids) == 1

            # The survivor is still running on the other worker: it can still be cancelled.
            await executor.send(CancelTask(run_id=survivor.run_id))
            assert isinstance(
                await event_for(executor, survivor.run_id, TERMINAL_EVENTS), TaskCancelled
            )
            # The pool refills when there is work for the missing worker.
            busy = run_task(wait_forever)
            await executor.send(busy)
            await event_for(executor, busy.run_id, (TaskStarted,))
            await executor.send(run_task(worker_pid))
            assert len(executor.pids) == 2
            assert victim not in executor.pids
            await executor.send(CancelTask(run_id=busy.run_id))

    run(body)


async def outcomes_started(executor: StdioExecutor, run_ids: list[str]) -> None:
    waiting = set(run_ids)
    while waiting:
        event = await next_event(executor)
        assert not isinstance(event, TERMINAL_EVENTS), event
        if isinstance(event, TaskStarted):
            waiting.discard(event.run_id)


def test_shutdown_frame_ends_the_workers_and_the_next_run_starts_fresh_ones():
    async def body() -> None:
        async with started(processes=1) as executor:
            [pid] = executor.pids
            await executor.send(Shutdown(run_id=""))
            frame = run_task(worker_pid)
            new_pid = await result_of(executor, frame)
            assert new_pid != pid

    run(body)


# -- verification ---------------------------------------------------------------------------------

FORGING_WORKER = textwrap.dedent(
    """
    import os, sys
    from wove.plugins import LineCodec, Security, TaskResult

    # Lines the executor must drop: a result signed with the wrong secret, and a stray print.
    forged = LineCodec(Security(b"not-the-executor-secret-at-all!!", key_id="ephemeral"))
    out = sys.stdout.buffer
    out.write(forged.encode(TaskResult(run_id=sys.argv[1], result=b"forged")))
    out.write(b"hello from a stray print\\n")
    out.flush()
    # Then become the real worker, on the same pipes.
    os.execv(sys.argv[2], sys.argv[2:])
    """
)


def test_lines_that_fail_verification_are_dropped_with_a_warning(caplog):
    run_id = new_run_id("forged")

    async def body() -> None:
        worker = StdioSettings.from_config({}, "workers").command
        command = [sys.executable, "-c", FORGING_WORKER, run_id, *worker]
        with caplog.at_level(logging.WARNING, logger="wove_stdio"):
            async with started(processes=1, command=command) as executor:
                frame = RunTask(
                    run_id=run_id,
                    task_id="add",
                    callable=dumps(add, REASON),
                    args=dumps({"a": 1, "b": 1}, REASON),
                )
                assert await result_of(executor, frame) == 2

    run(body)
    dropped = [r.getMessage() for r in caplog.records if "dropped a line" in r.getMessage()]
    assert len(dropped) == 2, dropped
    assert "bad signature" in dropped[0]
    assert "unsigned frame refused" in dropped[1]


def test_the_workers_get_the_secret_and_a_signed_line_from_them_verifies():
    # What the executor hands its workers is exactly what verifies their lines.
    async def body() -> None:
        async with started(processes=1) as executor:
            security = executor._security
            assert security is not None
            worker = Security(bytes.fromhex(security.secret_hex), key_id=security.key_id)
            line = LineCodec(worker).encode(TaskStarted(run_id="r-1"))
            assert isinstance(LineCodec(security).decode(line), TaskStarted)

    run(body)


# -- lifecycle ------------------------------------------------------------------------------------


def test_stop_is_idempotent_and_leaves_no_process_running():
    async def body() -> None:
        executor = StdioExecutor()
        await executor.start("workers", {"processes": 2}, {})
        assert await result_of(executor, run_task(add, {"a": 1, "b": 1})) == 2
        pids = executor.pids
        assert len(pids) == 2

        await executor.stop()
        await executor.stop()

        assert executor.pids == ()
        assert not any(is_running(pid) for pid in pids)
        with pytest.raises(WeaveUsageError, match="is stopped"):
            await executor.recv()
        with pytest.raises(WeaveUsageError, match="is stopped; await start"):
            await executor.send(run_task(add, {"a": 1, "b": 1}))

    run(body)


def test_stop_ends_runs_in_flight_with_one_terminal_event_each():
    async def body() -> None:
        executor = StdioExecutor()
        await executor.start("workers", {"processes": 1}, {})
        frame = run_task(wait_forever)
        await executor.send(frame)
        await event_for(executor, frame.run_id, (TaskStarted,))

        await executor.stop()

        ended = await event_for(executor, frame.run_id, TERMINAL_EVENTS)
        assert isinstance(ended, (TaskCancelled, TaskError))
        if isinstance(ended, TaskError):
            assert ended.error.source == "orphaned"
        with pytest.raises(WeaveUsageError, match="is stopped"):
            await executor.recv()

    run(body)


def test_stop_from_another_loop_runs_on_the_loop_that_owns_the_workers():
    # The engine keeps executors on its dispatch loop; a stop may come from any other loop.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="owner-loop")
    thread.start()
    try:
        executor = StdioExecutor()
        starting = executor.start("workers", {"processes": 1}, {})
        asyncio.run_coroutine_threadsafe(starting, loop).result(WAIT)
        [pid] = executor.pids

        asyncio.run(executor.stop())

        assert executor.pids == ()
        assert not is_running(pid)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()


def test_stop_without_start_is_a_no_op():
    run(StdioExecutor().stop)


def test_send_before_start_says_to_start():
    async def body() -> None:
        with pytest.raises(WeaveUsageError, match="await start"):
            await StdioExecutor().send(run_task(add))
        with pytest.raises(WeaveUsageError, match="await start"):
            await StdioExecutor().recv()

    run(body)


def test_a_command_that_cannot_run_fails_at_start():
    async def body() -> None:
        executor = StdioExecutor()
        with pytest.raises(StdioWorkerStartError, match="cannot launch the stdio worker"):
            await executor.start("workers", {"command": ["/nonexistent/wove-worker"]}, {})
        assert executor.pids == ()

    run(body)


def test_a_worker_that_exits_at_once_fails_at_start():
    async def body() -> None:
        executor = StdioExecutor()
        command = [sys.executable, "-c", "raise SystemExit(3)"]
        with pytest.raises(
            StdioWorkerStartError, match="exited with code 3 before it answered its first run"
        ):
            await executor.start("workers", {"command": command, "processes": 2}, {})
        assert executor.pids == ()

    run(body)


def test_a_worker_that_never_answers_times_out_at_start():
    async def body() -> None:
        executor = StdioExecutor()
        # Reads its input and never writes: the probe is never answered.
        command = [sys.executable, "-c", "import sys; sys.stdin.read()"]
        with pytest.raises(TimeoutError, match=r"did not start within start_timeout=0\.5s"):
            await executor.start("workers", {"command": command, "start_timeout": 0.5}, {})
        assert executor.pids == ()

    run(body)


def test_env_and_cwd_reach_the_workers(tmp_path):
    def look() -> tuple[str | None, str]:
        return os.environ.get("WOVE_TEST_FLAVOUR"), os.getcwd()

    async def body() -> tuple[str | None, str]:
        config = {"processes": 1, "env": {"WOVE_TEST_FLAVOUR": "plum"}, "cwd": str(tmp_path)}
        async with started(**config) as executor:
            return await result_of(executor, run_task(look))

    flavour, cwd = asyncio.run(body())
    assert flavour == "plum"
    assert os.path.samefile(cwd, tmp_path)


# -- settings -------------------------------------------------------------------------------------


def test_settings_defaults():
    settings = StdioSettings.from_config({}, "workers")

    assert settings.command == (sys.executable, "-m", "wove.stdio_worker")
    assert settings.processes == default_processes() == min(4, os.cpu_count() or 1)
    assert settings.env == {}
    assert settings.cwd is None
    assert settings.start_timeout == 30.0


def test_max_threads_is_passed_to_the_default_command():
    settings = StdioSettings.from_config({"max_threads": 3}, "workers")

    assert settings.command == (sys.executable, "-m", "wove.stdio_worker", "--max-threads", "3")


def test_config_keys():
    assert StdioExecutor.kind == "process"
    assert StdioExecutor.config_keys == frozenset(
        {"command", "processes", "max_threads", "env", "cwd", "start_timeout"}
    )


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"processes": 0}, "processes must be a positive integer, got 0"),
        ({"processes": True}, "processes must be a positive integer, got True"),
        ({"max_threads": -1}, "max_threads must be a positive integer, got -1"),
        ({"command": "python -m wove.stdio_worker"}, "command must be a non-empty list"),
        ({"command": []}, "command must be a non-empty list"),
        ({"command": ["python"], "max_threads": 2}, "add '--max-threads', '2' to it yourself"),
        ({"env": {"A": 1}}, "env must be a dict mapping variable names to string values"),
        ({"cwd": 3}, "cwd must be a path, got 3"),
        (
            {"start_timeout": 0},
            "start_timeout must be a datetime.timedelta or a positive number of seconds, got 0",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_value(config, match):
    with pytest.raises(InvalidOptionError, match=match) as caught:
        StdioSettings.from_config(config, "workers")
    assert "environment 'workers'" in str(caught.value)
