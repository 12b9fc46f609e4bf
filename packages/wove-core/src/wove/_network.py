"""What every network executor and worker service shares: endpoint safety rules, TLS contexts,
and the service-side session that runs verified frames and routes each run's events back to
the connection that sent it.

The HTTP, HTTPS, gRPC and WebSocket plugins differ only in how bytes move; everything else --
refusing an unprotected remote endpoint, checking signatures before decoding, one worker runtime
per service process, exactly one terminal event per run -- lives here once.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Annotated, Any, Final

from ._errors import FrameRejectedError, InvalidOptionError
from ._frames import (
    TERMINAL_EVENTS,
    CancelTask,
    Frame,
    LogRecord,
    NormalizedError,
    RunTask,
    Shutdown,
    TaskError,
)
from ._security import LineCodec, Security, is_loopback_host, security_from_config
from ._settings import (
    ExecutorSettings,
    FilePath,
    Seconds,
    SecuritySetting,
    check_settings,
    setting,
    setting_keys,
)
from .integrations.worker import WorkerRuntime

__all__ = [
    "ClientRuns",
    "ServiceOptions",
    "add_service_arguments",
    "service_options",
    "DEFAULT_MAX_BODY_BYTES",
    "NETWORK_CONFIG_KEYS",
    "NetworkExecutorSettings",
    "NetworkSettings",
    "ServiceSessions",
    "client_ssl_context",
    "network_settings",
    "server_ssl_context",
]

logger = logging.getLogger("wove.network")

#: Requests larger than this are refused before they are read further (override per service).
DEFAULT_MAX_BODY_BYTES: Final = 256 * 1024 * 1024


class NetworkExecutorSettings(ExecutorSettings, kw_only=True):
    """``executor_config`` keys every network executor takes, besides its own (the endpoint).

    A network executor declares its own keys in a subclass and hands the checked settings to
    :func:`network_settings`, which applies the endpoint safety rules.
    """

    security: Annotated[
        SecuritySetting | None,
        setting(
            "the shared secret that signs frames both ways; required for a non-loopback "
            "endpoint unless `insecure=True`"
        ),
    ] = None
    insecure: Annotated[
        bool,
        setting("allow a non-loopback endpoint without TLS or without `security`"),
    ] = False
    ca_file: Annotated[
        FilePath | None,
        setting(
            "the CA certificate to verify the service with (a private CA)",
            default="the system CAs",
        ),
    ] = None
    cert_file: Annotated[FilePath | None, setting("a client certificate, for mutual TLS")] = None
    key_file: Annotated[
        FilePath | None, setting("the client certificate's private key, when not in `cert_file`")
    ] = None
    connect_timeout: Annotated[
        Seconds,
        setting(
            "how long to wait for the service to accept a connection (and to retry a refused "
            "one, while a service restarts)",
            gt=0,
        ),
    ] = 10.0
    max_in_flight: Annotated[int, setting("runs in flight at once; more wait for a slot", ge=1)] = (
        64
    )


#: ``executor_config`` keys every network executor understands.
NETWORK_CONFIG_KEYS: Final = setting_keys(NetworkExecutorSettings)


class NetworkSettings:
    """The validated transport settings of one network environment."""

    def __init__(
        self,
        *,
        host: str,
        tls: bool,
        security: Security | None,
        insecure: bool,
        ssl_context: ssl.SSLContext | None,
        connect_timeout: float,
        max_in_flight: int,
    ) -> None:
        self.host = host
        self.tls = tls
        self.security = security
        self.insecure = insecure
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.max_in_flight = max_in_flight
        self.codec = LineCodec(security)


def network_settings(
    config: NetworkExecutorSettings | Mapping[str, Any],
    *,
    host: str,
    tls: bool,
    where: str,
    extra_keys: Collection[str] = frozenset(),
) -> NetworkSettings:
    """Apply the endpoint safety rules to an environment's transport settings.

    A non-loopback endpoint must use TLS *and* have ``security``; without either, this raises
    ``ValueError`` unless the configuration says ``insecure=True``.

    Args:
        config: the checked settings (a :class:`NetworkExecutorSettings`, usually a subclass
            of it), or the raw ``executor_config``, checked here against
            :class:`NetworkExecutorSettings` with ``extra_keys`` accepted as well.
        host: the endpoint's host.
        tls: whether the connection uses TLS.
        where: how messages name the configuration (see
            :func:`~wove.plugins.config_location`).
    """
    if isinstance(config, NetworkExecutorSettings):
        settings = config
    else:
        settings = check_settings(
            NetworkExecutorSettings, config, where=where, extra_keys=extra_keys
        )
    insecure = settings.insecure
    loopback = is_loopback_host(host)
    if not loopback and not insecure and not tls:
        raise ValueError(
            f"{where}: {host!r} is not a loopback address, so the connection must use TLS "
            "(an https:// URL, or TLS options for the transport); set insecure=True to send "
            "frames in the clear anyway"
        )
    # The secret was read with the settings; here only whether one is needed is decided.
    security = security_from_config(settings.security, where=where, loopback=loopback or insecure)
    context = (
        client_ssl_context(
            ca_file=_path(settings.ca_file),
            cert_file=_path(settings.cert_file),
            key_file=_path(settings.key_file),
        )
        if tls
        else None
    )
    return NetworkSettings(
        host=host,
        tls=tls,
        security=security,
        insecure=insecure,
        ssl_context=context,
        connect_timeout=settings.connect_timeout,
        max_in_flight=settings.max_in_flight,
    )


def _path(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else os.fspath(value)


def client_ssl_context(
    *, ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A verifying client context: the system CAs or ``ca_file``; a client certificate for
    mutual TLS when ``cert_file`` is given."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    elif key_file:
        raise InvalidOptionError("key_file was given without cert_file")
    return context


def server_ssl_context(
    *, cert_file: str, key_file: str | None = None, client_ca_file: str | None = None
) -> ssl.SSLContext:
    """A server context; with ``client_ca_file``, clients must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        context.load_verify_locations(client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


Send = Callable[[bytes], Awaitable[None]]


class ServiceSessions:
    """The service side of a network transport: one worker runtime for the whole process, and
    for each run the connection (``send``) its events go back to.

    A transport calls :meth:`submit` with each line it receives and the ``send`` for that
    connection. Lines are verified and decoded by the codec before anything else happens; a bad
    one raises :class:`FrameRejectedError` for the transport to turn into its own error reply.
    """

    def __init__(self, security: Security | None, *, max_threads: int = 32, name: str = "") -> None:
        self.codec = LineCodec(security)
        self._routes: dict[str, Send] = {}
        self._runtime = WorkerRuntime(self._emit, max_threads=max_threads, worker_name=name)

    async def submit(
        self,
        line: bytes,
        send: Send,
        *,
        accepted: Callable[[Frame], Awaitable[None]] | None = None,
    ) -> Frame:
        """Verify and run one command line; its events go to ``send``. Returns the frame.

        ``accepted``, when given, is awaited once the frame is verified and before it runs: a
        transport answers there (an HTTP status line), so a client that got no answer knows
        the command never ran on this service and may safely send it again.
        """
        frame: Frame = self.codec.decode(line)
        if isinstance(frame, RunTask):
            self._routes[frame.run_id] = send
        elif isinstance(frame, Shutdown):
            raise FrameRejectedError("shutdown frames are not accepted over the network")
        elif not isinstance(frame, CancelTask):
            raise FrameRejectedError(f"a {type(frame).__name__} is not a command")
        if accepted is not None:
            await accepted(frame)
        await self._runtime.handle(frame)
        return frame

    def forget(self, send: Send) -> list[str]:
        """The connection behind ``send`` closed: cancel the runs it owned and return them."""
        owned = [run_id for run_id, route in self._routes.items() if route is send]
        for run_id in owned:
            del self._routes[run_id]
        return owned

    async def cancel(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            await self._runtime.handle(CancelTask(run_id=run_id))

    async def _emit(self, frame: Frame) -> None:
        route = self._routes.get(frame.run_id)
        if isinstance(frame, TERMINAL_EVENTS):
            self._routes.pop(frame.run_id, None)
        if route is None:
            if isinstance(frame, (LogRecord, TaskError)):
                logger.warning("event for an unknown or closed run: %r", frame)
            return
        try:
            await route(self.codec.encode(frame))
        except Exception:
            logger.warning(
                "could not deliver %s for run %s", type(frame).__name__, frame.run_id, exc_info=True
            )

    async def aclose(self) -> None:
        await self._runtime.aclose()


class ClientRuns:
    """The client side's bookkeeping: which runs are in flight on which connection, the queue
    ``Executor.recv`` reads, and turning a lost connection into orphaned runs.

    Every event passes through :meth:`deliver`; events for runs this client does not own are
    dropped, so each run yields exactly one terminal event even when a late result races a
    lost connection.
    """

    def __init__(self) -> None:
        import asyncio

        self.events: asyncio.Queue[Frame] = asyncio.Queue()
        self._owners: dict[str, object] = {}

    @property
    def in_flight(self) -> int:
        return len(self._owners)

    def owns(self, run_id: str) -> bool:
        return run_id in self._owners

    def owner_of(self, run_id: str) -> object | None:
        return self._owners.get(run_id)

    def started(self, run_id: str, connection: object) -> None:
        """Record that ``run_id`` was sent over ``connection``."""
        self._owners[run_id] = connection

    def deliver(self, frame: Frame) -> None:
        """Queue one verified event for ``recv``, if its run is still ours."""
        if isinstance(frame, LogRecord) and not frame.run_id:
            self.events.put_nowait(frame)
            return
        if frame.run_id not in self._owners:
            return
        if isinstance(frame, TERMINAL_EVENTS):
            del self._owners[frame.run_id]
        self.events.put_nowait(frame)

    def connection_lost(self, connection: object, reason: str) -> None:
        """Every run still owned by ``connection`` ends orphaned; the delivery policy decides."""
        for run_id in [run for run, owner in self._owners.items() if owner is connection]:
            self.deliver(
                TaskError(
                    run_id=run_id,
                    error=NormalizedError(
                        kind="wove.ConnectionLost",
                        message=f"the connection to the worker service was lost: {reason}",
                        source="orphaned",
                    ),
                )
            )


# -- worker-service command lines -------------------------------------------------------------


class ServiceOptions:
    """The checked options of a ``wove worker <name>`` command."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Security | None,
        ssl_context: ssl.SSLContext | None,
        tls_cert: str | None,
        tls_key: str | None,
        tls_client_ca: str | None,
        max_threads: int,
        max_body_bytes: int,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.ssl_context = ssl_context
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.tls_client_ca = tls_client_ca
        self.max_threads = max_threads
        self.max_body_bytes = max_body_bytes

    @property
    def tls(self) -> bool:
        return self.ssl_context is not None

    def url(self, scheme: str, port: int) -> str:
        """The address to announce, e.g. ``https://127.0.0.1:8700``."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{shown}:{port}"


def add_service_arguments(
    parser: argparse.ArgumentParser, *, default_port: int, require_tls: bool = False
) -> None:
    """Add the arguments every ``wove worker <name>`` service takes."""
    parser.add_argument(
        "--bind",
        metavar="HOST:PORT",
        default=f"127.0.0.1:{default_port}",
        help=f"address to listen on (default 127.0.0.1:{default_port}; port 0 picks a free one)",
    )
    tls_help = "(required)" if require_tls else "(enables TLS)"
    parser.add_argument("--tls-cert", metavar="PATH", help=f"server certificate chain {tls_help}")
    parser.add_argument("--tls-key", metavar="PATH", help="private key of --tls-cert")
    parser.add_argument(
        "--tls-client-ca",
        metavar="PATH",
        help="require client certificates signed by this CA (mutual TLS)",
    )
    parser.add_argument(
        "--security",
        metavar="SPEC",
        help="the shared secret frames are signed with, e.g. env:WOVE_SECRET",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address without TLS and --security",
    )
    parser.add_argument(
        "--max-threads", type=int, default=32, metavar="N", help="sync tasks run at once (32)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="N",
        help=f"largest request accepted (default {DEFAULT_MAX_BODY_BYTES})",
    )


def service_options(
    arguments: argparse.Namespace, *, name: str, require_tls: bool = False
) -> ServiceOptions:
    """Check a service's arguments; raise ``ValueError`` with a message that says what to fix.

    A non-loopback address needs TLS *and* ``--security`` unless ``--insecure`` says otherwise:
    anyone who can reach an unprotected service can run code on it.
    """
    host, colon, port_text = str(arguments.bind).rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"--bind must be HOST:PORT, e.g. 127.0.0.1:8700, got {arguments.bind!r}")
    if require_tls and not arguments.tls_cert:
        raise ValueError(f"'wove worker {name}' needs --tls-cert and --tls-key")
    if bool(arguments.tls_key) != bool(arguments.tls_cert):
        raise ValueError("--tls-cert and --tls-key go together: give both or neither")
    if arguments.tls_client_ca and not arguments.tls_cert:
        raise ValueError("--tls-client-ca needs --tls-cert (mutual TLS runs over TLS)")
    if arguments.max_threads < 1:
        raise ValueError(f"--max-threads must be at least 1, got {arguments.max_threads}")
    if arguments.max_body_bytes < 1:
        raise ValueError(f"--max-body-bytes must be at least 1, got {arguments.max_body_bytes}")
    loopback = is_loopback_host(host)
    tls = bool(arguments.tls_cert)
    if not loopback and not arguments.insecure and not (tls and arguments.security):
        raise ValueError(
            f"{host!r} is not a loopback address: refusing to listen there without TLS "
            "(--tls-cert/--tls-key) or without --security, since anyone who can reach it could "
            "run code here. Pass both, or --insecure to accept that"
        )
    security = security_from_config(
        arguments.security, where=f"wove worker {name} --security", loopback=True
    )
    context = (
        server_ssl_context(
            cert_file=arguments.tls_cert,
            key_file=arguments.tls_key,
            client_ca_file=arguments.tls_client_ca,
        )
        if tls
        else None
    )
    return ServiceOptions(
        host=host,
        port=int(port_text),
        security=security,
        ssl_context=context,
        tls_cert=arguments.tls_cert,
        tls_key=arguments.tls_key,
        tls_client_ca=arguments.tls_client_ca,
        max_threads=arguments.max_threads,
        max_body_bytes=arguments.max_body_bytes,
    )
