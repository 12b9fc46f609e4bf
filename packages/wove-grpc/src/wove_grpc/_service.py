"""The worker service: the ``wove.Worker`` gRPC methods, for embedding or for
``wove worker grpc``.

Every request is verified and decoded by :class:`wove.network.ServiceSessions` before anything
else happens, and runs on the one worker runtime of the process. A ``Run`` call streams its
run's events back until the terminal one; when the caller goes away (cancelled call, lost
connection) the run is cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Final

import grpc
import grpc.aio

from wove.network import (
    DEFAULT_MAX_BODY_BYTES,
    ServiceSessions,
    add_service_arguments,
    service_options,
)
from wove.plugins import FrameRejectedError, RunTask

from ._protocol import MAX_MESSAGE_BYTES, SERVICE_NAME, is_command_line, is_terminal_line

__all__ = [
    "WorkerServicer",
    "add_worker_to_server",
    "configure_command",
    "run_command",
    "serve",
]

logger = logging.getLogger(__name__)

#: How long a stopping service lets calls in flight finish before it cancels them.
STOP_GRACE_SECONDS: Final = 5.0


def _identity(data: bytes) -> bytes:
    return data


class WorkerServicer:
    """The ``wove.Worker`` methods over one :class:`~wove.network.ServiceSessions`.

    Args:
        sessions: verifies requests and runs them; its security must match the executors'.

    Example:
        Embedding the service in a gRPC server of your own::

            server = grpc.aio.server()
            sessions = ServiceSessions(security_from_config("env:WOVE_SECRET", ...))
            add_worker_to_server(server, sessions)
            server.add_secure_port("0.0.0.0:8701", credentials)
            await server.start()
    """

    def __init__(self, sessions: ServiceSessions) -> None:
        self.sessions = sessions

    async def run(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        """Run one ``run_task`` line and stream its events until the terminal one."""
        events: asyncio.Queue[bytes] = asyncio.Queue()

        async def send(line: bytes) -> None:
            events.put_nowait(line)

        try:
            frame = await self.sessions.submit(request, send)
        except FrameRejectedError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"frame refused: {error}")
        if not isinstance(frame, RunTask):
            # A cancel_task sent to Run is carried out; it has no events of its own.
            self.sessions.forget(send)
            return
        try:
            while True:
                line = await events.get()
                yield line
                if is_terminal_line(line):
                    return
        finally:
            # The caller went away (or the run ended): cancel whatever this call still owns.
            owned = self.sessions.forget(send)
            if owned:
                await self.sessions.cancel(owned)

    async def cancel(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        """Carry out one ``cancel_task`` line; the outcome arrives on the run's own stream."""

        if not is_command_line(request, b"cancel_task"):
            # Refused before verification: a run started here would have nowhere to report.
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "frame refused: Cancel takes a cancel_task frame"
            )

        async def discard(line: bytes) -> None:
            logger.warning("dropped an event sent to a Cancel call: %r", line[:200])

        try:
            await self.sessions.submit(request, discard)
        except FrameRejectedError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"frame refused: {error}")
        return b""

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler that serves ``wove.Worker`` with bytes in and out."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Run": grpc.unary_stream_rpc_method_handler(
                    self.run, request_deserializer=_identity, response_serializer=_identity
                ),
                "Cancel": grpc.unary_unary_rpc_method_handler(
                    self.cancel, request_deserializer=_identity, response_serializer=_identity
                ),
            },
        )


def add_worker_to_server(server: grpc.aio.Server, sessions: ServiceSessions) -> WorkerServicer:
    """Serve ``wove.Worker`` on ``server`` (a ``grpc.aio.Server``) and return the servicer.

    Give the server ``("grpc.max_receive_message_length", N)`` and
    ``("grpc.max_send_message_length", N)`` options large enough for your payloads: gRPC's
    default receive limit is 4 MiB.
    """
    servicer = WorkerServicer(sessions)
    server.add_generic_rpc_handlers((servicer.handler(),))
    return servicer


# -- wove worker grpc ------------------------------------------------------------------------


def configure_command(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``wove worker grpc``."""
    add_service_arguments(parser, default_port=8701)


def run_command(args: argparse.Namespace) -> int:
    """Run ``wove worker grpc`` until SIGTERM or SIGINT; return the exit status."""
    try:
        options = service_options(args, name="grpc")
        credentials = (
            _server_credentials(options.tls_cert, options.tls_key, options.tls_client_ca)
            if options.tls_cert and options.tls_key
            else None
        )
    except (ValueError, OSError) as error:
        print(f"wove: {error}", file=sys.stderr)
        return 2
    sessions = ServiceSessions(
        options.security, max_threads=options.max_threads, name=f"grpc:{args.bind}"
    )
    asyncio.run(
        serve(
            sessions,
            host=options.host,
            port=options.port,
            credentials=credentials,
            max_body_bytes=options.max_body_bytes,
        )
    )
    return 0


def _server_credentials(
    cert_file: str, key_file: str, client_ca_file: str | None
) -> grpc.ServerCredentials:
    chain = Path(cert_file).read_bytes()
    key = Path(key_file).read_bytes()
    client_ca = Path(client_ca_file).read_bytes() if client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


async def serve(
    sessions: ServiceSessions,
    *,
    host: str,
    port: int,
    credentials: grpc.ServerCredentials | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    stop: asyncio.Event | None = None,
    announce: bool = True,
) -> None:
    """Serve ``wove.Worker`` on ``host:port`` until ``stop`` is set (or SIGTERM/SIGINT).

    Once bound, prints ``wove worker grpc listening on <url>`` with the real port (``announce``).
    """
    options: Sequence[tuple[str, Any]] = (
        ("grpc.max_receive_message_length", max_body_bytes),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # Two services must never share a port by accident.
        ("grpc.so_reuseport", 0),
    )
    server = grpc.aio.server(options=options)
    add_worker_to_server(server, sessions)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    await server.start()
    try:
        if announce:
            scheme = "grpcs" if credentials is not None else "grpc"
            shown = address.rpartition(":")[0]
            print(f"wove worker grpc listening on {scheme}://{shown}:{bound}", flush=True)
        await stop.wait()
    finally:
        await server.stop(STOP_GRACE_SECONDS)
        await sessions.aclose()
