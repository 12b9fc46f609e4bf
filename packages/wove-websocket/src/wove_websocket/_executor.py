"""The ``websocket`` executor: runs multiplexed over persistent WebSocket connections.

Each binary WebSocket message carries one or more complete :class:`~wove.plugins.LineCodec`
lines (signed frames); lines ready at the same moment share a message. Commands go out on one
of a small pool of connections (``connections``, default 1); events come back on the connection
that carried the run. Nothing is passed on before its signature has been verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal

from wove import WeaveUsageError
from wove.network import ClientRuns, NetworkExecutorSettings, NetworkSettings, network_settings
from wove.plugins import (
    CancelTask,
    Executor,
    ExecutorKind,
    ExecutorSettings,
    FrameRejectedError,
    Heartbeat,
    LogRecord,
    RunTask,
    Seconds,
    Security,
    Shutdown,
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskStarted,
    config_location,
    setting,
    validate_executor_config,
)

from ._outbox import Outbox, split_lines

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["WebSocketConfig", "WebSocketExecutor", "WebSocketSettings"]

logger = logging.getLogger(__name__)

#: Largest message the executor accepts from the service: results of 10+ MB are normal.
DEFAULT_MAX_MESSAGE_BYTES: Final = 2**30
DEFAULT_PING_INTERVAL: Final = 20.0
DEFAULT_PING_TIMEOUT: Final = 20.0
#: Pauses between attempts to reach a service that refuses connections (it may be restarting).
RETRY_FIRST_DELAY_SECONDS: Final = 0.05
RETRY_MAX_DELAY_SECONDS: Final = 1.0
#: How long ``stop()`` waits for a connection's closing handshake.
CLOSE_TIMEOUT_SECONDS: Final = 5.0

_TERMINAL: Final = (TaskResult, TaskError, TaskCancelled)
_EVENTS: Final = (TaskStarted, TaskResult, TaskError, TaskCancelled, Heartbeat, LogRecord)
_STOPPED: Final = object()  # queued by stop() to end every pending recv()


class WebSocketConfig(NetworkExecutorSettings, kw_only=True):
    """The ``executor_config`` keys of a websocket environment, declared once; ``start``
    builds its :class:`WebSocketSettings` from them."""

    url: Annotated[
        str,
        setting(
            "the service's address, such as `wss://workers.example.com:8765`",
            expect="a ws:// or wss:// URL with a host",
            pattern=r"^wss?://[^/?#]",
        ),
    ]
    headers: Annotated[
        Mapping[str, str],
        setting(
            "extra HTTP headers sent with the opening handshake",
            expect="a dict mapping header names to string values",
        ),
    ] = {}
    connections: Annotated[
        int, setting("how many persistent connections the executor keeps for its runs", ge=1)
    ] = 1
    ping_interval: Annotated[
        Seconds | None, setting("time between WebSocket pings; None sends none", gt=0)
    ] = DEFAULT_PING_INTERVAL
    ping_timeout: Annotated[
        Seconds | None,
        setting("how long a ping may go unanswered before the connection counts as lost", gt=0),
    ] = DEFAULT_PING_TIMEOUT
    max_message_bytes: Annotated[
        int, setting("the largest event message accepted from the service", ge=1)
    ] = DEFAULT_MAX_MESSAGE_BYTES


class WebSocketSettings:
    """The checked ``executor_config`` of a websocket environment, ready to connect with.

    Attributes:
        url: the service's ``ws://`` or ``wss://`` URL.
        headers: extra HTTP headers sent with the opening handshake.
        connections: how many persistent connections the executor keeps.
        ping_interval: seconds between WebSocket pings (``None``: no pings).
        ping_timeout: seconds a ping may go unanswered before the connection counts as lost.
        max_message_bytes: the largest event message accepted from the service.
        network: the shared transport settings (TLS, security, timeouts, in-flight cap).
    """

    def __init__(
        self,
        *,
        url: str,
        headers: dict[str, str],
        connections: int,
        ping_interval: float | None,
        ping_timeout: float | None,
        max_message_bytes: int,
        network: NetworkSettings,
    ) -> None:
        self.url = url
        self.headers = headers
        self.connections = connections
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_message_bytes = max_message_bytes
        self.network = network

    @classmethod
    def from_config(cls, config: Mapping[str, Any], environment: str) -> WebSocketSettings:
        """Check ``config`` (an environment's ``executor_config``) against
        :class:`WebSocketConfig` and apply the endpoint rules.

        Raises:
            UnknownOptionError: a key the executor does not take.
            InvalidOptionError: a key has a value it cannot take.
            ValueError: the endpoint is not loopback and lacks TLS or security, and
                ``insecure`` is not set.
        """
        checked = validate_executor_config(
            WebSocketConfig, config, environment=environment, executor="websocket"
        )
        parsed = urllib.parse.urlsplit(checked.url)
        assert parsed.hostname  # the declaration's pattern requires one
        network = network_settings(
            checked,
            host=parsed.hostname,
            tls=parsed.scheme == "wss",
            where=config_location(environment, "websocket"),
        )
        return cls(
            url=checked.url,
            headers=dict(checked.headers),
            connections=checked.connections,
            ping_interval=checked.ping_interval,
            ping_timeout=checked.ping_timeout,
            max_message_bytes=checked.max_message_bytes,
            network=network,
        )


class _Link:
    """One slot of the connection pool: the current connection and the task reading it."""

    __slots__ = ("connection", "lock", "outbox", "reader")

    def __init__(self) -> None:
        self.connection: ClientConnection | None = None
        self.outbox: Outbox | None = None
        self.reader: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()  # one (re)connect at a time


class WebSocketExecutor(Executor):
    """Run an environment's tasks on a ``wove worker websocket`` service.

    ``start`` opens ``connections`` persistent WebSocket connections (default 1) and keeps them
    for every run of the environment, in every weave of the process: no connection per run or
    per frame, no thread per run. Runs are spread over the connections; each frame is one
    signed line in a binary message (lines ready together share one). At most
    ``max_in_flight`` runs are outstanding at once; ``send`` waits for a slot.

    When a connection drops, every run it carried ends with a ``task_error`` whose source is
    ``"orphaned"`` (the environment's ``delivery_orphan_policy`` decides what happens next), and
    the next run reconnects. Events that fail verification are dropped with a warning.

    Its ``executor_config`` keys are declared by :class:`WebSocketConfig`.

    Example:
        >>> import wove
        >>> _ = wove.config(
        ...     environments={
        ...         "remote": {
        ...             "executor": "websocket",
        ...             "executor_config": {"url": "ws://127.0.0.1:8765"},
        ...         }
        ...     }
        ... )
    """

    kind: ClassVar[ExecutorKind] = "network"
    settings_class: ClassVar[type[ExecutorSettings] | None] = WebSocketConfig

    def __init__(self) -> None:
        self._state: Literal["new", "started", "stopped"] = "new"
        self._environment = ""
        self._settings: WebSocketSettings | None = None
        self._links: list[_Link] = []
        self._runs: ClientRuns | None = None
        self._slots: asyncio.Semaphore | None = None
        self._holding: set[str] = set()
        self._turn = itertools.count()

    # -- introspection ------------------------------------------------------------------------
    @property
    def settings(self) -> WebSocketSettings | None:
        """The checked ``executor_config``, once started."""
        return self._settings

    @property
    def security(self) -> Security | None:
        """What signs this executor's frames and checks the service's events."""
        return None if self._settings is None else self._settings.network.security

    @property
    def open_connections(self) -> int:
        """How many of the pool's connections are open."""
        return sum(1 for link in self._links if _is_open(link.connection))

    async def send_raw(self, message: bytes) -> None:
        """Send ``message`` exactly as given on the first connection (a test hook: forged and
        replayed frames go through here). Answers for runs this executor did not send are
        dropped."""
        self._check_started("send")
        connection = await self._connect(self._links[0])
        await connection.send(message)

    def __repr__(self) -> str:
        url = self._settings.url if self._settings else None
        return f"<{type(self).__name__} {self._environment!r} {self._state} url={url!r}>"

    # -- the Executor contract ----------------------------------------------------------------
    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        """Check the configuration and open the connections.

        Raises:
            InvalidOptionError: the ``executor_config`` has a key or value it cannot take.
            ValueError: a non-loopback endpoint without TLS or security, and not ``insecure``.
            OSError: the service could not be reached.
            TimeoutError: the opening handshake took longer than ``connect_timeout``.
        """
        if self._state == "started":
            return
        settings = WebSocketSettings.from_config(environment_config, environment_name)
        self._environment = environment_name
        self._settings = settings
        self._runs = ClientRuns()
        self._slots = asyncio.Semaphore(settings.network.max_in_flight)
        self._holding = set()
        self._links = [_Link() for _ in range(settings.connections)]
        self._state = "started"
        try:
            await asyncio.gather(*(self._connect(link) for link in self._links))
        except BaseException:
            await self.stop()
            raise

    async def send(self, frame: Any) -> None:
        """Send one command: a run on the next connection in turn, a cancel on the connection
        carrying its run. ``shutdown`` frames are not sent: the service outlives its clients."""
        self._check_started("send")
        assert self._runs is not None
        assert self._slots is not None
        assert self._settings is not None
        codec = self._settings.network.codec
        if isinstance(frame, RunTask):
            await self._slots.acquire()
            self._holding.add(frame.run_id)
            try:
                link = self._links[next(self._turn) % len(self._links)]
                connection = await self._connect(link)
            except BaseException:
                self._release(frame.run_id)
                raise
            self._runs.started(frame.run_id, connection)
            await self._outbox_of(link).send(codec.encode(frame))
        elif isinstance(frame, CancelTask):
            owner = self._runs.owner_of(frame.run_id)
            carrier = next((each for each in self._links if each.connection is owner), None)
            if owner is None or carrier is None:
                return  # already finished or orphaned: nothing to cancel
            await self._outbox_of(carrier).send(codec.encode(frame))
        elif isinstance(frame, Shutdown):
            return
        else:
            raise TypeError(f"the websocket executor sends only commands, got {frame!r}")

    async def recv(self) -> Any:
        """Return the next verified event.

        Raises:
            WeaveUsageError: the executor was never started, or is stopped.
        """
        if self._runs is None:
            raise WeaveUsageError(
                f"the websocket executor of environment {self._environment!r} is not started; "
                "await start() before recv()"
            )
        event: Any = await self._runs.events.get()
        if event is _STOPPED:
            self._runs.events.put_nowait(event)  # type: ignore[arg-type]  # wake the next one too
            raise WeaveUsageError(
                f"the websocket executor of environment {self._environment!r} is stopped; "
                "no more events will arrive"
            )
        return event

    async def stop(self) -> None:
        """Close every connection; runs still in flight end orphaned. Safe to call twice."""
        if self._state != "started":
            self._state = "stopped"
            return
        self._state = "stopped"
        for link in self._links:
            connection = link.connection
            if connection is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT_SECONDS)
            if link.outbox is not None:
                await link.outbox.aclose()
            if link.reader is not None:
                link.reader.cancel()
                with contextlib.suppress(BaseException):
                    await link.reader
            if connection is not None:
                self._lost(connection, "the executor stopped")
        if self._runs is not None:
            self._runs.events.put_nowait(_STOPPED)  # type: ignore[arg-type]

    # -- internals ----------------------------------------------------------------------------
    def _check_started(self, what: str) -> None:
        if self._state != "started":
            raise WeaveUsageError(
                f"cannot {what}: the websocket executor of environment {self._environment!r} "
                f"is {self._state}"
            )

    async def _connect(self, link: _Link) -> ClientConnection:
        """The link's open connection, (re)connecting first if needed."""
        if _is_open(link.connection):
            assert link.connection is not None
            return link.connection
        async with link.lock:
            if _is_open(link.connection):
                assert link.connection is not None
                return link.connection
            self._check_started("connect")
            settings = self._settings
            assert settings is not None
            connection = await self._open(settings)
            link.connection = connection
            link.outbox = Outbox(connection)
            link.reader = asyncio.ensure_future(self._read(connection))
            return connection

    async def _open(self, settings: WebSocketSettings) -> ClientConnection:
        """Connect, retrying refused or reset connections until ``connect_timeout`` has passed:
        a service that is restarting (after a crash, or a deployment) comes back on its own."""
        from websockets.exceptions import InvalidMessage

        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.network.connect_timeout
        delay = RETRY_FIRST_DELAY_SECONDS
        while True:
            try:
                return await asyncio.wait_for(
                    _connect_coroutine(
                        settings.url,
                        ssl=settings.network.ssl_context,
                        additional_headers=settings.headers or None,
                        open_timeout=None,
                        ping_interval=settings.ping_interval,
                        ping_timeout=settings.ping_timeout,
                        max_size=settings.max_message_bytes,
                        max_queue=None,
                        compression=None,
                    ),
                    max(deadline - loop.time(), 0.001),
                )
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"the websocket executor of environment {self._environment!r} could not "
                    f"connect to {settings.url!r} within connect_timeout="
                    f"{settings.network.connect_timeout:g}s"
                ) from None
            except (ConnectionRefusedError, ConnectionResetError, InvalidMessage) as error:
                # InvalidMessage: the TCP connection was taken, then dropped before the
                # handshake answer -- a service that was going down as we connected.
                if loop.time() + delay >= deadline:
                    cause = f" ({error.__cause__})" if error.__cause__ else ""
                    hint = (
                        " (and, if it requires client certificates, that cert_file and "
                        "key_file name one its --tls-client-ca signed)"
                        if settings.network.tls
                        else ""
                    )
                    raise ConnectionRefusedError(
                        f"the websocket executor of environment {self._environment!r} could not "
                        f"connect to {settings.url!r}: {error}{cause}; check that "
                        f"'wove worker websocket' is running there{hint}"
                    ) from error
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY_SECONDS)

    @staticmethod
    def _outbox_of(link: _Link) -> Outbox:
        assert link.outbox is not None
        return link.outbox

    async def _read(self, connection: ClientConnection) -> None:
        """Pass on every verified event of one connection; when it closes, orphan its runs."""
        from websockets.exceptions import ConnectionClosed

        reason = "the connection closed"
        try:
            async for message in connection:
                self._accept(message)
        except ConnectionClosed as error:
            reason = str(error)
        except Exception as error:
            logger.exception("websocket executor of %r: reading events failed", self._environment)
            reason = repr(error)
        else:
            if connection.close_code is not None:
                reason = f"the connection closed with code {connection.close_code}"
        self._lost(connection, reason)

    def _accept(self, message: str | bytes) -> None:
        """Take one message: one signed line, or several that the service sent together."""
        for line in split_lines(message):
            self._accept_line(line)

    def _accept_line(self, data: bytes) -> None:
        assert self._settings is not None
        assert self._runs is not None
        try:
            frame = self._settings.network.codec.decode(data)
        except FrameRejectedError as error:
            logger.warning(
                "dropped a line from the websocket service of environment %r: %s (line starts %r)",
                self._environment,
                error,
                data[:80],
            )
            return
        if not isinstance(frame, _EVENTS):
            logger.warning("dropped a %s frame: the service sends only events", type(frame))
            return
        if isinstance(frame, LogRecord) and not frame.run_id:
            log = logger.error if frame.level == "error" else logger.info
            log("websocket service of environment %r: %s", self._environment, frame.message)
        self._runs.deliver(frame)
        if isinstance(frame, _TERMINAL):
            self._release(frame.run_id)

    def _lost(self, connection: object, reason: str) -> None:
        assert self._runs is not None
        owned = [run for run in self._holding if self._runs.owner_of(run) is connection]
        self._runs.connection_lost(connection, reason)
        for run_id in owned:
            self._release(run_id)

    def _release(self, run_id: str) -> None:
        if run_id in self._holding:
            self._holding.discard(run_id)
            assert self._slots is not None
            self._slots.release()


def _is_open(connection: ClientConnection | None) -> bool:
    if connection is None:
        return False
    from websockets.protocol import State

    return connection.state is State.OPEN


async def _connect_coroutine(url: str, **options: Any) -> ClientConnection:
    from websockets.asyncio.client import connect

    return await connect(url, **options)
