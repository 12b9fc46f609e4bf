"""The worker service: ``wove worker websocket``, and the connection handler to embed it.

Every message a client sends holds one or more signed command lines.
:class:`~wove.network.ServiceSessions` verifies each before anything is decoded and runs it on
the process's one worker runtime; that run's events go back, signed, on the connection that
sent it. When a connection closes, the runs it started are cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from wove.network import (
    DEFAULT_MAX_BODY_BYTES,
    ServiceSessions,
    add_service_arguments,
    service_options,
)
from wove.plugins import (
    FrameRejectedError,
    LogRecord,
    Security,
)

from ._outbox import Outbox, split_lines

if TYPE_CHECKING:
    import ssl

    from websockets.asyncio.server import Server, ServerConnection

__all__ = ["handler", "serve", "configure_command", "run_command"]

logger = logging.getLogger(__name__)

COMMAND: Final = "websocket"


def handler(sessions: ServiceSessions) -> Callable[[ServerConnection], Awaitable[None]]:
    """Return a connection handler for :func:`websockets.asyncio.server.serve`.

    Each line of each message on a connection is handed to ``sessions``; a line that fails
    verification or is not a command (and an empty message) gets a signed ``log`` frame with
    ``level="error"`` in reply, and the connection stays open. Events go back on the same
    connection, several to a message when they are ready together. When the connection closes,
    its runs are cancelled.

    Example:
        >>> from websockets.asyncio.server import serve
        >>> from wove.network import ServiceSessions
        >>> async def main():  # doctest: +SKIP
        ...     sessions = ServiceSessions(None)
        ...     async with serve(handler(sessions), "127.0.0.1", 8765) as server:
        ...         await server.serve_forever()
    """

    async def refuse(send: Callable[[bytes], Awaitable[None]], why: str) -> None:
        reply = LogRecord(run_id="", level="error", message=f"rejected the message: {why}")
        await send(sessions.codec.encode(reply))

    async def handle(connection: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        outbox = Outbox(connection)
        send = outbox.send

        try:
            async for message in connection:
                lines = split_lines(message)
                if not lines:
                    await refuse(send, "an empty message carries no frame")
                for line in lines:
                    try:
                        await sessions.submit(line, send)
                    except FrameRejectedError as error:
                        logger.warning(
                            "rejected a line from %s: %s", connection.remote_address, error
                        )
                        await refuse(send, str(error))
        except ConnectionClosed:
            pass
        finally:
            orphaned = sessions.forget(send)
            if orphaned:
                logger.info(
                    "a client connection closed with %d runs in flight; cancelling them",
                    len(orphaned),
                )
                await sessions.cancel(orphaned)
            await outbox.aclose()

    return handle


async def serve(
    sessions: ServiceSessions,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``sessions`` on ``host:port`` until ``stop`` is set (forever without one).

    Args:
        sessions: the service's sessions (one worker runtime for the process).
        host: the address to bind.
        port: the port to bind; 0 picks a free one.
        ssl_context: a server TLS context (:func:`wove.network.server_ssl_context`).
        max_body_bytes: the largest message accepted; a larger one closes its connection
            with code 1009 (message too big).
        ready: called with the service's URL once it is listening.
        stop: set it to close the listener and every connection.
    """
    from websockets.asyncio.server import serve as ws_serve

    server: Server
    async with ws_serve(
        handler(sessions),
        host,
        port,
        ssl=ssl_context,
        max_size=max_body_bytes,
        max_queue=None,
        compression=None,
    ) as server:
        if ready is not None:
            ready(_url_of(server, tls=ssl_context is not None))
        if stop is None:
            await server.serve_forever()
        else:
            await stop.wait()


def _url_of(server: Server, *, tls: bool) -> str:
    socket = next(iter(server.sockets))
    address = socket.getsockname()
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{'wss' if tls else 'ws'}://{host}:{port}"


# -- the command --------------------------------------------------------------------------------
def configure_command(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``wove worker websocket``."""
    add_service_arguments(parser, default_port=8702)


def run_command(arguments: argparse.Namespace) -> int:
    """Run ``wove worker websocket`` until SIGTERM or SIGINT; return the exit status."""
    where = "wove worker websocket"
    try:
        options = service_options(arguments, name="websocket")
    except (ValueError, OSError) as error:
        print(f"{where}: {error}", file=sys.stderr)
        return 2
    security, context = options.security, options.ssl_context
    host, port_text = options.host, str(options.port)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # not a line per connection
    try:
        asyncio.run(
            _serve_until_signalled(
                security,
                host,
                int(port_text),
                ssl_context=context,
                max_threads=options.max_threads,
                max_body_bytes=options.max_body_bytes,
            )
        )
    except OSError as error:  # the address is in use, or cannot be bound here
        print(f"{where}: cannot listen on {arguments.bind}: {error}", file=sys.stderr)
        return 1
    return 0


async def _serve_until_signalled(
    security: Security | None,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    max_threads: int,
    max_body_bytes: int,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def announce(url: str) -> None:
        print(f"wove worker {COMMAND} listening on {url}", flush=True)

    sessions = ServiceSessions(security, max_threads=max_threads, name=f"websocket@{host}:{port}")
    try:
        await serve(
            sessions,
            host,
            port,
            ssl_context=ssl_context,
            max_body_bytes=max_body_bytes,
            ready=announce,
            stop=stop,
        )
    finally:
        await sessions.aclose()
