"""The worker service of the ``http`` executor: a plain ASGI application.

``POST /runs`` takes one signed ``run_task`` line and answers ``200`` with a stream of the run's
signed event lines (``application/x-ndjson``) that ends after its terminal event. ``POST
/cancel`` takes one signed ``cancel_task`` line and answers ``202``. Every body is verified by
:class:`wove.network.ServiceSessions` before anything in it is decoded; a refused body gets a
one-line JSON error (``401`` for a failed signature check, ``400`` for a malformed or wrong
frame, ``413`` beyond ``max_body_bytes``, checked before the body is read in full) and the
service goes on serving. A client that disconnects while its run streams cancels that run.

Serve it with any ASGI server; ``wove worker http`` uses uvicorn::

    app = wove_http.create_app(security=Security.from_config("env:WOVE_SECRET"))
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from wove.network import DEFAULT_MAX_BODY_BYTES, ServiceSessions
from wove.plugins import Frame, FrameRejectedError, RunTask, Security

__all__ = ["WorkerApp", "create_app"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_NDJSON: Final = [(b"content-type", b"application/x-ndjson")]
_JSON: Final = [(b"content-type", b"application/json")]
#: How every terminal event's body begins (msgspec writes the tag first).
_TERMINAL_PREFIXES: Final = tuple(
    b'{"type":"%s"' % tag for tag in (b"task_result", b"task_error", b"task_cancelled")
)
_CLOSED: Final = b""  # queued when the client went away


class _BodyTooLarge(Exception):
    pass


class WorkerApp:
    """An ASGI application that runs verified Wove command frames on this process's worker
    runtime and streams each run's signed events back in the response.

    Args:
        security: the :class:`~wove.plugins.Security` every request must be signed with, or
            ``None`` for an unsigned (loopback-only) service.
        max_threads: how many sync task bodies may run at the same time.
        max_body_bytes: the largest request body accepted; larger ones get ``413``.
        name: reported in ``task_started`` as where the task ran.
    """

    def __init__(
        self,
        security: Security | None,
        *,
        max_threads: int = 32,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        name: str = "http",
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes!r}")
        self.security = security
        self.max_threads = max_threads
        self.max_body_bytes = max_body_bytes
        self.name = name
        self._sessions: ServiceSessions | None = None

    @property
    def sessions(self) -> ServiceSessions:
        """The service sessions (and worker runtime), created on first use inside the loop."""
        if self._sessions is None:
            self._sessions = ServiceSessions(
                self.security, max_threads=self.max_threads, name=self.name
            )
        return self._sessions

    async def aclose(self) -> None:
        """Cancel what still runs and release the worker runtime."""
        sessions, self._sessions = self._sessions, None
        if sessions is not None:
            await sessions.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _ = self.sessions
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if path not in ("/runs", "/cancel"):
            await _error(send, 404, f"no such endpoint {path!r}; POST /runs or /cancel")
            return
        if scope.get("method") != "POST":
            await _error(send, 405, f"{path} accepts only POST")
            return
        try:
            body = await self._read_body(scope, receive)
        except _BodyTooLarge:
            await _error(send, 413, f"request body exceeds {self.max_body_bytes} bytes")
            return
        if body is None:
            return  # the client went away while sending
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        async def route(line: bytes) -> None:
            queue.put_nowait(line)

        async def answer(frame: Frame) -> None:
            # The status line goes out before the run starts: a client that never got one
            # knows the run did not start here and may send it again.
            if isinstance(frame, RunTask):
                await send({"type": "http.response.start", "status": 200, "headers": _NDJSON})

        sessions = self.sessions
        try:
            frame = await sessions.submit(body, route, accepted=answer)
        except FrameRejectedError as error:
            message = str(error)
            status = 400 if _is_malformed(message) else 401
            logger.warning("refused a request to %s: %s", path, message)
            await _error(send, status, message)
            return
        if not isinstance(frame, RunTask):
            await send({"type": "http.response.start", "status": 202, "headers": _JSON})
            await send({"type": "http.response.body", "body": b'{"accepted":true}\n'})
            return
        await self._stream(queue, route, receive, send)

    async def _stream(
        self,
        queue: asyncio.Queue[bytes],
        route: Callable[[bytes], Awaitable[None]],
        receive: Receive,
        send: Send,
    ) -> None:
        sessions = self.sessions

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            owned = sessions.forget(route)
            queue.put_nowait(_CLOSED)
            await sessions.cancel(owned)

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            ended = False
            while not ended:
                lines = [await queue.get()]
                while not queue.empty():
                    lines.append(queue.get_nowait())
                if _CLOSED in lines:
                    await watcher  # let it finish cancelling the run
                    return
                ended = _is_terminal(lines[-1])
                await send(
                    {"type": "http.response.body", "body": b"".join(lines), "more_body": not ended}
                )
        finally:
            if not watcher.done():
                watcher.cancel()

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        limit = self.max_body_bytes
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def create_app(
    security: Security | None = None,
    *,
    max_threads: int = 32,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    name: str = "http",
) -> WorkerApp:
    """Create the worker service as an ASGI application, for embedding in any ASGI server.

    Args:
        security: what every request must be signed with; ``None`` only on loopback.
        max_threads: how many sync task bodies may run at the same time.
        max_body_bytes: the largest request body accepted (``413`` beyond it).
        name: reported in ``task_started`` as where the task ran.

    Example:
        >>> import uvicorn
        >>> from wove.plugins import security_from_config
        >>> app = create_app(security_from_config("env:WOVE_SECRET", where="app", loopback=False))
        >>> uvicorn.run(app, host="0.0.0.0", port=8700, ssl_certfile=..., ssl_keyfile=...)
    """
    return WorkerApp(security, max_threads=max_threads, max_body_bytes=max_body_bytes, name=name)


def _is_terminal(line: bytes) -> bool:
    _, tab, body = line.partition(b"\t")
    return (body if tab else line).startswith(_TERMINAL_PREFIXES)


def _is_malformed(message: str) -> bool:
    # Signature failures (401) mention the signature, key, timestamp or replay; the rest
    # (unparseable JSON, a frame that is not a command) is a bad request.
    return message.startswith("malformed") or "not a command" in message or "shutdown" in message


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode() + b"\n"
    await send({"type": "http.response.start", "status": status, "headers": _JSON})
    await send({"type": "http.response.body", "body": body})
