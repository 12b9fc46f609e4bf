"""Batching the signed lines bound for one WebSocket connection.

A message carries one or more complete :class:`~wove.plugins.LineCodec` lines, each ending in
``\\n``; both sides split messages at newlines. Under load this turns many small writes into
one, which matters because each write is a system call and a WebSocket frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final, Protocol

__all__ = ["BATCH_LIMIT_BYTES", "OUTBOX_LIMIT_BYTES", "Outbox", "split_lines"]

#: Bytes a connection may have waiting before senders wait too.
OUTBOX_LIMIT_BYTES: Final = 16 * 1024 * 1024
#: Lines are combined only up to this size, so a batch never exceeds a peer's message limit
#: when each of its lines does not (a larger line always goes alone).
BATCH_LIMIT_BYTES: Final = 64 * 1024


class _Connection(Protocol):
    async def send(self, message: bytes) -> None: ...


def split_lines(message: str | bytes) -> list[bytes]:
    """The non-empty lines of one message."""
    data = message.encode() if isinstance(message, str) else message
    return [line for line in data.split(b"\n") if line]


class Outbox:
    """The lines waiting for one WebSocket connection, written by a single writer task.

    Lines that are ready at the same moment (many runs sent or finishing together) go out as
    one message (up to :data:`BATCH_LIMIT_BYTES`), so a busy connection makes one write per
    batch instead of one per frame. A line is never split across messages. ``send`` waits while
    more than :data:`OUTBOX_LIMIT_BYTES` are waiting, so a slow peer slows the senders instead
    of filling memory.
    """

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self._lines: list[bytes] = []
        self._size = 0
        self._writer: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._room.set()

    async def send(self, line: bytes) -> None:
        await self._room.wait()
        self._lines.append(line)
        self._size += len(line)
        if self._size > OUTBOX_LIMIT_BYTES:
            self._room.clear()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while self._lines:
                taken, size = 1, len(self._lines[0])
                while (
                    taken < len(self._lines) and size + len(self._lines[taken]) <= BATCH_LIMIT_BYTES
                ):
                    size += len(self._lines[taken])
                    taken += 1
                batch = b"".join(self._lines[:taken]) if taken > 1 else self._lines[0]
                del self._lines[:taken]
                self._size -= size
                if self._size <= OUTBOX_LIMIT_BYTES:
                    self._room.set()
                await self._connection.send(batch)
        except ConnectionClosed:
            self._lines.clear()
            self._room.set()

    async def aclose(self) -> None:
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
