"""Small real executors for testing the conformance kit itself: one that works, and one per
defect the kit must catch.

:class:`PipeExecutor` runs tasks in ``python -m wove.stdio_worker`` processes and talks to them
in signed JSON lines over their pipes: the ``stdio`` executor in a few dozen lines, built only
on the public base classes. Each broken executor below changes one method of it, the way a
plugin author could get that one thing wrong.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from wove.plugins import (
    CancelTask,
    Executor,
    ExecutorKind,
    FrameRejectedError,
    LineCodec,
    NormalizedError,
    RunTask,
    Security,
    TaskCancelled,
    TaskError,
    TaskResult,
)

__all__ = [
    "DeafExecutor",
    "LossyExecutor",
    "PipeExecutor",
    "TwiceExecutor",
    "UnsignedExecutor",
]

logger = logging.getLogger(__name__)

TERMINAL: Final = (TaskResult, TaskError, TaskCancelled)
#: One line holds a whole payload, so the pipe reader must accept lines this long.
LINE_LIMIT: Final = 1 << 30


class _Worker:
    """One worker process, the runs it still owes an end, and the task reading its events."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.owed: set[str] = set()
        self.reader: asyncio.Task[None] | None = None

    async def write(self, line: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(line)
        await stdin.drain()


class PipeExecutor(Executor):
    """Send each run to one of ``processes`` stdio workers in turn; sign every line."""

    kind: ClassVar[ExecutorKind] = "process"
    config_keys: ClassVar[frozenset[str] | None] = frozenset({"processes"})
    #: How long a line the event reader accepts.
    line_limit: ClassVar[int] = LINE_LIMIT

    def __init__(self) -> None:
        self.security = Security.ephemeral()
        self._workers: list[_Worker] = []
        self._turn = 0

    # -- the executor contract ------------------------------------------------------------------
    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        self._codec = self.codec()
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        processes = int(environment_config.get("processes", 1))
        self._workers = [await self._spawn() for _ in range(processes)]

    async def send(self, frame: Any) -> None:
        line = self._codec.encode(frame)
        for worker in self.workers_for(frame):
            if isinstance(frame, RunTask):
                worker.owed.add(frame.run_id)
            await worker.write(line)

    async def recv(self) -> Any:
        return await self._events.get()

    async def stop(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            stdin = worker.process.stdin
            assert stdin is not None
            stdin.close()  # end of input: the worker cancels what still runs and exits
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 10)
            except asyncio.TimeoutError:
                worker.process.kill()
            if worker.reader is not None:
                await worker.reader

    # -- what the broken executors change -----------------------------------------------------
    def codec(self) -> LineCodec:
        """How lines are written and read: signed with :attr:`security`."""
        return LineCodec(self.security)

    def worker_environment(self) -> dict[str, str]:
        """The environment a worker process starts with: the secret it checks lines with."""
        return {
            **os.environ,
            "WOVE_STDIO_SECRET": self.security.secret_hex,
            "WOVE_STDIO_KEY_ID": self.security.key_id,
        }

    def workers_for(self, frame: Any) -> list[_Worker]:
        """Where a command goes: a run to the next worker, a cancel to the run's worker."""
        if isinstance(frame, RunTask):
            worker = self._workers[self._turn % len(self._workers)]
            self._turn += 1
            return [worker]
        if isinstance(frame, CancelTask):
            return [worker for worker in self._workers if frame.run_id in worker.owed]
        return list(self._workers)

    async def read_line(self, stream: asyncio.StreamReader) -> bytes:
        """The next line a worker wrote; empty at end of output."""
        return await stream.readline()

    # -- for the conformance suite ----------------------------------------------------------
    async def write_raw(self, line: bytes) -> None:
        """Write ``line`` exactly as given to the first worker."""
        await self._workers[0].write(line)

    # -- internals ------------------------------------------------------------------------------
    async def _spawn(self) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wove.stdio_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self.worker_environment(),
            limit=self.line_limit,
        )
        worker = _Worker(process)
        worker.reader = asyncio.get_running_loop().create_task(self._read(worker))
        return worker

    async def _read(self, worker: _Worker) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        while line := await self.read_line(stdout):
            try:
                frame = self._codec.decode(line)  # the signature is checked first
            except FrameRejectedError as error:
                logger.warning("dropped a line from a pipe worker: %s", error)
                continue
            if isinstance(frame, TERMINAL):
                worker.owed.discard(frame.run_id)
            self._events.put_nowait(frame)
        code = await worker.process.wait()
        for run_id in sorted(worker.owed):  # the worker is gone: its runs are orphaned
            message = f"the pipe worker exited with code {code} while running this task"
            orphaned = NormalizedError(kind="WorkerExited", message=message, source="orphaned")
            self._events.put_nowait(TaskError(run_id=run_id, error=orphaned))
        worker.owed.clear()


class LossyExecutor(PipeExecutor):
    """Drops results: its event reader keeps asyncio's default 64 KiB line limit and skips a
    line that outgrows it, so a large result never reaches Wove."""

    line_limit = 1 << 16

    async def read_line(self, stream: asyncio.StreamReader) -> bytes:
        while True:
            try:
                return await stream.readline()
            except ValueError:  # the line outgrew the limit; the rest of it arrives as garbage
                logger.warning("skipped an over-long line from a pipe worker")


class TwiceExecutor(PipeExecutor):
    """Delivers twice: it sends every command to every worker, as it rightly does with
    ``shutdown``, so each task body runs on both and each run reports two terminal events."""

    def workers_for(self, frame: Any) -> list[_Worker]:
        return list(self._workers)


class DeafExecutor(PipeExecutor):
    """Ignores cancellation: it never forwards ``cancel_task``, so a cancelled run keeps
    running on its worker."""

    async def send(self, frame: Any) -> None:
        if not isinstance(frame, CancelTask):
            await super().send(frame)


class UnsignedExecutor(PipeExecutor):
    """Sends unsigned frames: it keeps a :class:`~wove.plugins.Security` but never wires it to
    the transport, starting its workers without the secret, so a worker runs whatever line
    reaches its pipe."""

    def codec(self) -> LineCodec:
        return LineCodec(None)

    def worker_environment(self) -> dict[str, str]:
        environment = super().worker_environment()
        del environment["WOVE_STDIO_SECRET"]
        return environment
