"""``python -m wove.stdio_worker``: the process the ``stdio`` executor starts and talks to.

The protocol is JSON lines (:class:`~wove._security.LineCodec`): commands arrive on stdin,
events leave on stdout, one frame per line. The process owns only the plumbing; running tasks
is :class:`~wove.integrations.worker.WorkerRuntime`'s job.

* **The protocol is moved off fds 0 and 1 first.** The real stdin and stdout are duplicated to
  private descriptors; fd 1 (and ``sys.stdout``) then points at stderr and fd 0 at
  ``/dev/null``, so a task's ``print()``, a C extension writing to fd 1, or a subprocess it
  starts can never corrupt or steal protocol lines.
* **Signatures.** When ``WOVE_STDIO_SECRET`` (hex) is set, every line is signed and checked in
  both directions, with key id ``WOVE_STDIO_KEY_ID`` (default ``"ephemeral"``). When it is not
  set the worker runs unsigned: the pipes are private to the parent that started it, which is
  how the ``stdio`` executor runs it on one machine.
* **Bad lines never run and never stop the worker.** A line that fails verification or decoding
  is answered with a ``log`` frame at level ``error`` and skipped.
* **Ending.** EOF on stdin or a ``shutdown`` frame cancels what is still running (each run
  reports ``task_cancelled``), flushes stdout and exits 0. Sync tasks that cannot be
  interrupted do not hold the process open.

stdin and stdout must be pipes, sockets or terminals (what asyncio can watch), not files.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Final

from ._frames import Frame, LogRecord, Shutdown, TaskResult
from ._security import LineCodec, Security
from .integrations.worker import WorkerRuntime

__all__ = ["exit_now_if_threads_remain", "main", "reserve_protocol_streams", "serve"]

logger = logging.getLogger(__name__)

SECRET_ENV: Final = "WOVE_STDIO_SECRET"
KEY_ID_ENV: Final = "WOVE_STDIO_KEY_ID"
#: One line may hold a payload of many megabytes; this only guards against a runaway sender.
LINE_LIMIT: Final = 1 << 30
#: Lines and results past this size are signed, checked and encoded off the event loop.
_OFFLOAD_BYTES: Final = 1 << 20


def reserve_protocol_streams() -> tuple[int, int]:
    """Keep the real stdin and stdout for the protocol and give the task code harmless ones.

    Returns:
        Private file descriptors ``(protocol_in, protocol_out)``; they are not inherited by
        child processes. Afterwards fd 1 and ``sys.stdout`` write to stderr and fd 0 reads
        ``/dev/null``.
    """
    sys.stdout.flush()
    protocol_in = os.dup(0)
    protocol_out = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
    finally:
        os.close(devnull)
    return protocol_in, protocol_out


class _PipeWriter(asyncio.Protocol):
    """Writes whole lines to a pipe transport, one at a time, honouring back-pressure."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport: asyncio.WriteTransport | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost: asyncio.Future[None] = loop.create_future()
        self._lock = asyncio.Lock()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self._transport = transport

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        if not self._lost.done():
            self._lost.set_result(None)
        if exc is not None:
            logger.warning("stdout of the stdio worker closed: %s", exc)

    async def write(self, line: bytes) -> None:
        async with self._lock:
            transport = self._transport
            if transport is None or transport.is_closing():
                logger.debug("dropped an event line: the parent stopped reading")
                return
            transport.write(line)
            await self._writable.wait()

    async def aclose(self) -> None:
        """Flush what is buffered and close the pipe."""
        async with self._lock:
            if self._transport is not None:
                self._transport.close()
            await self._lost


def _is_large(frame: Frame) -> bool:
    return isinstance(frame, TaskResult) and len(frame.result) > _OFFLOAD_BYTES


async def serve(
    protocol_in: int,
    protocol_out: int,
    *,
    security: Security | None,
    max_threads: int = 32,
) -> None:
    """Answer the command lines read from ``protocol_in`` with event lines on ``protocol_out``.

    Returns at EOF or after a ``shutdown`` frame, once every run has reported its end and the
    output is flushed. Both descriptors are closed.
    """
    loop = asyncio.get_running_loop()
    codec = LineCodec(security)
    writer = _PipeWriter()
    await loop.connect_write_pipe(lambda: writer, os.fdopen(protocol_out, "wb", buffering=0))
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(protocol_in, "rb", buffering=0)
    )

    async def emit(frame: Frame) -> None:
        if _is_large(frame):
            line = await loop.run_in_executor(None, codec.encode, frame)
        else:
            line = codec.encode(frame)
        await writer.write(line)

    async def refuse(message: str) -> None:
        logger.warning("%s", message)
        await emit(LogRecord(run_id="", level="error", message=message))

    runtime = WorkerRuntime(emit, max_threads=max_threads, worker_name=f"stdio:{os.getpid()}")
    try:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as eof:
                if not eof.partial.strip():
                    break
                line = eof.partial  # a last line without its newline
            except asyncio.LimitOverrunError as overrun:
                await reader.readexactly(overrun.consumed)
                await refuse(f"a line longer than {LINE_LIMIT} bytes was dropped")
                await _skip_line(reader)
                continue
            if not line.strip():
                continue
            try:
                if len(line) > _OFFLOAD_BYTES:
                    frame = await loop.run_in_executor(None, codec.decode, line)
                else:
                    frame = codec.decode(line)
            except Exception as error:  # refused: FrameRejectedError, or any checker failure
                await refuse(str(error) or repr(error))
                continue
            if isinstance(frame, Shutdown):
                break
            await runtime.handle(frame)
    finally:
        await runtime.aclose()
        read_transport.close()
        await writer.aclose()


async def _skip_line(reader: asyncio.StreamReader) -> None:
    """Discard the rest of an over-long line."""
    while True:
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.IncompleteReadError:
            return
        except asyncio.LimitOverrunError as overrun:
            await reader.readexactly(overrun.consumed)


def _security_from_env() -> Security | None:
    # Taken out of the environment so tasks (and processes they start) cannot read it.
    secret = os.environ.pop(SECRET_ENV, None)
    if not secret:
        return None
    try:
        raw = bytes.fromhex(secret)
    except ValueError:
        raise SystemExit(f"wove.stdio_worker: {SECRET_ENV} must be hex-encoded") from None
    return Security(raw, key_id=os.environ.get(KEY_ID_ENV, "ephemeral"))


def exit_now_if_threads_remain(code: int) -> None:
    """End the process even if a sync task that could not be interrupted is still running.

    Interpreter shutdown joins every non-daemon thread, so one stuck task would keep a
    finished worker alive forever. Its run already reported how it ended.
    """
    stuck = [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
    ]
    if stuck:
        logger.warning("exiting with %d task thread(s) still running", len(stuck))
        logging.shutdown()
        sys.stderr.flush()
        os._exit(code)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stdio worker until stdin closes; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m wove.stdio_worker",
        description="Run Wove tasks sent as JSON lines on stdin; write events to stdout.",
    )
    parser.add_argument(
        "--max-threads",
        type=_positive_int,
        default=32,
        metavar="N",
        help="how many sync tasks may run at once (default: 32)",
    )
    options = parser.parse_args(argv)
    protocol_in, protocol_out = reserve_protocol_streams()  # before any task code can run
    logging.basicConfig(
        level=logging.WARNING, format="wove.stdio_worker[%(process)d] %(levelname)s: %(message)s"
    )
    security = _security_from_env()
    try:
        asyncio.run(
            serve(protocol_in, protocol_out, security=security, max_threads=options.max_threads)
        )
    except ValueError as error:  # asyncio refuses regular files as pipe transports
        print(
            f"wove.stdio_worker: standard input and output must be pipes or sockets ({error}); "
            "this process is meant to be started by the stdio executor",
            file=sys.stderr,
        )
        exit_now_if_threads_remain(2)
        return 2
    exit_now_if_threads_remain(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
