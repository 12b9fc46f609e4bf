"""``python -m wove.stdio_worker`` as a real subprocess, spoken to over its pipes.

Every event line the worker writes is decoded with a signing codec, so each test also proves
that nothing but signed frames reached stdout. Waits have timeouts that fail the test; nothing
sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import cloudpickle

from wove._frames import (
    TERMINAL_EVENTS,
    CancelTask,
    Delivery,
    Frame,
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

#: Seconds any wait may take before the test calls the worker wrong.
WAIT = 20.0


def task(fn: Callable[..., Any], *, is_async: bool = False, **args: Any) -> RunTask:
    return RunTask(
        run_id=new_run_id("stdio"),
        task_id=getattr(fn, "__name__", "t"),
        callable=cloudpickle.dumps(fn),
        args=cloudpickle.dumps(args),
        is_async=is_async,
        delivery=Delivery(),
    )


class StdioWorker:
    """The parent's side of one worker process."""

    def __init__(self, process: asyncio.subprocess.Process, codec: LineCodec) -> None:
        self.process = process
        self.codec = codec
        self.seen: list[Frame] = []
        assert process.stderr is not None
        self._stderr = asyncio.ensure_future(process.stderr.read())

    async def send(self, frame: Frame, codec: LineCodec | None = None) -> None:
        await self.send_line((codec or self.codec).encode(frame))

    async def send_line(self, line: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line)
        await asyncio.wait_for(self.process.stdin.drain(), WAIT)

    async def _read(self) -> Frame | None:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), WAIT)
        if not line:
            return None
        frame: Frame = self.codec.decode(line)  # verifies the signature first
        self.seen.append(frame)
        return frame

    async def first(self, kind: Any, run_id: str | None = None) -> Any:
        """The first event of ``kind`` (for ``run_id``), waiting for it if need be."""
        while True:
            for frame in self.seen:
                if isinstance(frame, kind) and run_id in (None, frame.run_id):
                    return frame
            if await self._read() is None:
                raise AssertionError(f"stdout closed before a {kind} for {run_id!r}")

    async def terminal(self, run_id: str) -> Any:
        return await self.first(TERMINAL_EVENTS, run_id)

    async def finish(self) -> int:
        """Close stdin, read every remaining event, and return the exit status."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        while await self._read() is not None:
            pass
        return await asyncio.wait_for(self.process.wait(), WAIT)

    async def stderr(self) -> str:
        return (await asyncio.wait_for(self._stderr, WAIT)).decode()

    def of(self, run_id: str) -> list[type[Frame]]:
        return [type(frame) for frame in self.seen if frame.run_id == run_id]


@asynccontextmanager
async def stdio_worker(
    *args: str, security: Security | None = None, signed: bool = True
) -> AsyncIterator[StdioWorker]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WOVE_")}
    if signed:
        security = security or Security.ephemeral()
        env["WOVE_STDIO_SECRET"] = security.secret_hex
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wove.stdio_worker",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        limit=64 << 20,
    )
    worker = StdioWorker(process, LineCodec(security if signed else None))
    try:
        yield worker
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await worker.stderr()


def test_runs_sync_and_async_tasks_and_signs_every_event() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    async def greet(name: str) -> str:
        await asyncio.sleep(0)
        return f"hello {name}"

    async def scenario() -> tuple[list[type[Frame]], int, Any, Any]:
        async with stdio_worker() as worker:
            sync_run, async_run = task(add, a=1, b=2), task(greet, is_async=True, name="stdio")
            await worker.send(sync_run)
            await worker.send(async_run)
            first = await worker.terminal(sync_run.run_id)
            second = await worker.terminal(async_run.run_id)
            started = await worker.first(TaskStarted, sync_run.run_id)
            return worker.of(sync_run.run_id), await worker.finish(), (first, second), started

    kinds, code, (first, second), started = asyncio.run(scenario())
    assert kinds == [TaskStarted, TaskResult]
    assert pickle.loads(first.result) == 3
    assert pickle.loads(second.result) == "hello stdio"
    assert started.worker.startswith("stdio:")
    assert code == 0


def test_task_output_cannot_corrupt_the_protocol() -> None:
    def noisy() -> str:
        print("print() from the task")
        sys.stdout.write("sys.stdout from the task\n")
        sys.stdout.flush()
        os.write(1, b"fd 1 from the task\n")
        return "still clean"

    async def scenario() -> tuple[Any, int, str]:
        async with stdio_worker() as worker:
            noisy_run = task(noisy)
            await worker.send(noisy_run)
            result = await worker.terminal(noisy_run.run_id)
            code = await worker.finish()  # every later line must verify too
            return result, code, await worker.stderr()

    result, code, stderr = asyncio.run(scenario())
    assert pickle.loads(result.result) == "still clean"
    assert code == 0
    for text in ("print() from the task", "sys.stdout from the task", "fd 1 from the task"):
        assert text in stderr


def test_refused_lines_are_logged_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    def touch() -> None:
        with open(marker, "a") as handle:
            handle.write("ran\n")

    def tampered(line: bytes) -> bytes:
        header, _, body = line.partition(b"\t")
        return header + b"\t" + body.replace(b'"task_id":"touch"', b'"task_id":"other"')

    async def scenario() -> tuple[list[LogRecord], Any]:
        async with stdio_worker() as worker:
            bad_lines = [
                LineCodec(Security.ephemeral()).encode(task(touch)),  # forged: another secret
                tampered(worker.codec.encode(task(touch))),
                LineCodec(None).encode(task(touch)),  # unsigned
                b'{"k":1}\t' + LineCodec(None).encode(task(touch)),  # garbage header
                b"this is not json\n",
            ]
            for line in bad_lines:
                await worker.send_line(line)
            genuine = task(touch)
            line = worker.codec.encode(genuine)
            await worker.send_line(line)
            await worker.terminal(genuine.run_id)
            await worker.send_line(line)  # the same signed line again: a replay
            after = task(lambda: "still serving")
            await worker.send(after)
            result = await worker.terminal(after.run_id)
            assert await worker.finish() == 0
            return [frame for frame in worker.seen if isinstance(frame, LogRecord)], result

    refusals, result = asyncio.run(scenario())
    reasons = [
        "bad signature",
        "bad signature",
        "unsigned frame refused",
        "signature header is malformed",
        "unsigned frame refused",
        "replayed",
    ]
    assert len(refusals) == len(reasons)
    for refusal, reason in zip(refusals, reasons, strict=True):
        assert refusal.level == "error"
        assert refusal.run_id == ""
        assert reason in refusal.message
    assert pickle.loads(result.result) == "still serving"
    assert marker.read_text() == "ran\n"  # only the genuine line ran, and only once


def test_ten_megabyte_argument_and_result_round_trip() -> None:
    data = os.urandom(10 * 1024 * 1024)

    def reverse(blob: bytes) -> bytes:
        return blob[::-1]

    async def scenario() -> Any:
        async with stdio_worker() as worker:
            frame = task(reverse, blob=data)
            await worker.send(frame)
            result = await worker.terminal(frame.run_id)
            assert await worker.finish() == 0
            return result

    assert pickle.loads(asyncio.run(scenario()).result) == data[::-1]


def test_cancel_a_running_task() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def scenario() -> tuple[list[type[Frame]], int]:
        async with stdio_worker() as worker:
            frame = task(forever, is_async=True)
            await worker.send(frame)
            await worker.first(TaskStarted, frame.run_id)
            await worker.send(CancelTask(run_id=frame.run_id))
            await worker.terminal(frame.run_id)
            return worker.of(frame.run_id), await worker.finish()

    kinds, code = asyncio.run(scenario())
    assert kinds == [TaskStarted, TaskCancelled]
    assert code == 0


def test_eof_cancels_running_tasks_and_exits_zero_even_with_a_stuck_thread() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    def stuck() -> None:
        import threading

        threading.Event().wait()  # cannot be interrupted; must not keep the process alive

    async def scenario() -> tuple[list[type[Frame]], list[type[Frame]], int]:
        async with stdio_worker() as worker:
            waiting, blocked = task(forever, is_async=True), task(stuck)
            await worker.send(waiting)
            await worker.send(blocked)
            await worker.first(TaskStarted, waiting.run_id)
            await worker.first(TaskStarted, blocked.run_id)
            code = await worker.finish()
            assert "exiting with 1 task thread(s) still running" in await worker.stderr()
            return worker.of(waiting.run_id), worker.of(blocked.run_id), code

    waiting, blocked, code = asyncio.run(scenario())
    assert waiting == [TaskStarted, TaskCancelled]
    assert blocked == [TaskStarted, TaskCancelled]
    assert code == 0


def test_shutdown_frame_cancels_and_exits_zero() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def scenario() -> tuple[list[type[Frame]], int | None]:
        async with stdio_worker() as worker:
            frame = task(forever, is_async=True)
            await worker.send(frame)
            await worker.first(TaskStarted, frame.run_id)
            await worker.send(Shutdown(run_id=""))
            await worker.terminal(frame.run_id)
            code = await asyncio.wait_for(worker.process.wait(), WAIT)  # stdin still open
            return worker.of(frame.run_id), code

    kinds, code = asyncio.run(scenario())
    assert kinds == [TaskStarted, TaskCancelled]
    assert code == 0


def test_without_a_secret_the_worker_runs_unsigned() -> None:
    def fail() -> None:
        raise RuntimeError("plain failure")

    async def scenario() -> Any:
        async with stdio_worker("--max-threads", "2", signed=False) as worker:
            frame = task(fail)
            await worker.send(frame)
            error = await worker.terminal(frame.run_id)
            assert await worker.finish() == 0
            return error

    error = asyncio.run(scenario())
    assert isinstance(error, TaskError)
    assert error.error.message == "plain failure"


def test_bad_max_threads_is_a_usage_error() -> None:
    async def scenario() -> tuple[int, str]:
        async with stdio_worker("--max-threads", "0") as worker:
            code = await asyncio.wait_for(worker.process.wait(), WAIT)
            return code, await worker.stderr()

    code, stderr = asyncio.run(scenario())
    assert code == 2
    assert "--max-threads: must be at least 1, got 0" in stderr
