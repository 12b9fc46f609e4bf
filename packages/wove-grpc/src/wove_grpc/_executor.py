"""The ``grpc`` executor: runs go to a ``wove worker grpc`` service over one gRPC channel.

Each run is one ``/wove.Worker/Run`` call: the request is the signed ``run_task`` line, the
streamed responses are the run's signed events. Every event is verified before it is used; an
event that fails verification is dropped with a warning. A call that fails (the service went
away, the connection broke) ends its run with a ``task_error`` from source ``"orphaned"``, so the
environment's ``delivery_orphan_policy`` decides what happens next.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final

import grpc
import grpc.aio

from wove import InvalidOptionError, WeaveUsageError
from wove.network import ClientRuns, NetworkExecutorSettings, NetworkSettings, network_settings
from wove.plugins import (
    CancelTask,
    Executor,
    ExecutorKind,
    ExecutorSettings,
    FrameRejectedError,
    LogRecord,
    NormalizedError,
    RunTask,
    Security,
    Shutdown,
    TaskError,
    config_location,
    setting,
    validate_executor_config,
)

from ._protocol import CANCEL_METHOD, MAX_MESSAGE_BYTES, RUN_METHOD

__all__ = ["GrpcConfig", "GrpcExecutor", "GrpcSettings"]

logger = logging.getLogger(__name__)

#: gRPC reconnects after a lost connection with exponential backoff; a worker service restarts
#: quickly, so start at 100 ms instead of gRPC's default 1 s and never wait more than 5 s.
_RECONNECT_OPTIONS: Final = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
)
_STOPPED: Final = object()


class GrpcConfig(NetworkExecutorSettings, kw_only=True):
    """The ``executor_config`` keys of a grpc environment, declared once; ``start`` builds its
    :class:`GrpcSettings` from them."""

    target: Annotated[
        str,
        setting(
            "the address of a `wove worker grpc` service",
            expect="'HOST:PORT', such as '127.0.0.1:8701'",
            pattern=r"^.+:[0-9]+$",
        ),
    ]
    tls: Annotated[
        bool | None,
        setting(
            "whether the channel uses TLS",
            default="`True` when `ca_file`, `cert_file` or `key_file` is set, else `False`",
        ),
    ] = None
    server_name: Annotated[
        str | None,
        setting(
            "the name checked against the service's certificate, when not the target's host",
            expect="a host name",
            min_length=1,
        ),
    ] = None
    metadata: Annotated[
        Mapping[Annotated[str, setting(pattern="^(?!grpc-)[^A-Z]*$")], str],
        setting(
            "sent with every call (for a proxy or gateway in between)",
            expect="a dict mapping header names in lower case, not starting with 'grpc-', to "
            "string values",
        ),
    ] = {}
    max_message_bytes: Annotated[
        int, setting("the largest message either direction may carry", ge=1)
    ] = MAX_MESSAGE_BYTES


@dataclasses.dataclass(frozen=True)
class GrpcSettings:
    """The ``executor_config`` of a grpc environment, checked.

    Attributes:
        target: ``host:port`` of the worker service.
        host: the host part of ``target``.
        network: the settings every network executor shares (security, TLS, limits).
        server_name: the name checked against the service's certificate, when not ``host``.
        metadata: sent with every call (for a proxy or gateway in between).
        max_message_bytes: the largest message either direction may carry.
    """

    target: str
    host: str
    network: NetworkSettings
    server_name: str | None
    metadata: tuple[tuple[str, str], ...]
    max_message_bytes: int
    root_certificates: bytes | None
    private_key: bytes | None
    certificate_chain: bytes | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], environment: str) -> GrpcSettings:
        """Check ``config`` and apply the endpoint rules.

        Raises:
            UnknownOptionError: a key the executor does not take.
            InvalidOptionError: a key has a value it cannot take.
            ValueError: a non-loopback target without TLS or without security, and no
                ``insecure=True``.
        """
        checked = validate_executor_config(
            GrpcConfig, config, environment=environment, executor="grpc"
        )
        where = config_location(environment, "grpc")
        target = checked.target
        host = target.rpartition(":")[0]
        files = {
            key: value
            for key, value in (
                ("ca_file", checked.ca_file),
                ("cert_file", checked.cert_file),
                ("key_file", checked.key_file),
            )
            if value
        }
        tls = bool(files) if checked.tls is None else checked.tls
        if files and not tls:
            raise InvalidOptionError(
                f"{where}: ca_file, cert_file and key_file need TLS; remove tls=False"
            )
        try:
            network = network_settings(checked, host=host.strip("[]"), tls=tls, where=where)
        except OSError as error:  # ssl.SSLError included: a TLS file is missing or not PEM
            shown = {key: str(value) for key, value in files.items()}
            raise InvalidOptionError(
                f"{where}: cannot load the TLS files {shown!r}: {error}"
            ) from None
        ca_file, cert_file, key_file = checked.ca_file, checked.cert_file, checked.key_file

        def read(key: str, path: Any) -> bytes:
            try:
                return Path(path).read_bytes()
            except (OSError, TypeError) as error:
                raise InvalidOptionError(f"{where}: cannot read {key} {path!r}: {error}") from None

        return cls(
            target=target,
            host=host,
            network=network,
            server_name=checked.server_name,
            metadata=tuple(checked.metadata.items()),
            max_message_bytes=checked.max_message_bytes,
            root_certificates=read("ca_file", ca_file) if ca_file else None,
            certificate_chain=read("cert_file", cert_file) if cert_file else None,
            private_key=(
                read("key_file" if key_file else "cert_file", key_file or cert_file)
                if cert_file
                else None
            ),
        )

    def channel(self) -> grpc.aio.Channel:
        """A new channel to the target with these settings."""
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            *_RECONNECT_OPTIONS,
        ]
        if not self.network.tls:
            return grpc.aio.insecure_channel(self.target, options=options)
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )
        return grpc.aio.secure_channel(self.target, credentials, options=options)


def _identity(data: bytes) -> bytes:
    return data


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class GrpcExecutor(Executor):
    """Run an environment's tasks on a ``wove worker grpc`` service.

    One channel (one HTTP/2 connection, reconnected by gRPC when it drops) carries every run of
    the environment; at most ``max_in_flight`` runs are in flight at once (``send`` waits for a
    slot). ``start`` checks the settings -- a non-loopback target without TLS or without
    ``security`` is refused with ``ValueError`` unless ``insecure=True`` -- and then waits up to
    ``connect_timeout`` for the service to accept the connection.

    Its ``executor_config`` keys are declared by :class:`GrpcConfig`.

    Example:
        >>> import wove
        >>> _ = wove.config(
        ...     environments={
        ...         "remote": {
        ...             "executor": "grpc",
        ...             "executor_config": {
        ...                 "target": "127.0.0.1:8701",
        ...                 "security": "env:WOVE_SECRET",
        ...             },
        ...         }
        ...     }
        ... )
    """

    kind: ClassVar[ExecutorKind] = "network"
    settings_class: ClassVar[type[ExecutorSettings] | None] = GrpcConfig

    def __init__(self) -> None:
        self._environment = ""
        self._settings: GrpcSettings | None = None
        self._channel: grpc.aio.Channel | None = None
        self._run: Any = None
        self._cancel: Any = None
        self._runs = ClientRuns()
        self._slots: asyncio.Semaphore | None = None
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._raw: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    @property
    def settings(self) -> GrpcSettings | None:
        """The checked ``executor_config``, once started."""
        return self._settings

    @property
    def security(self) -> Security | None:
        """What signs this executor's frames and checks the service's events."""
        return None if self._settings is None else self._settings.network.security

    @property
    def in_flight(self) -> int:
        """How many runs have been sent and not yet ended."""
        return self._runs.in_flight

    def __repr__(self) -> str:
        target = self._settings.target if self._settings else "-"
        return f"<{type(self).__name__} {self._environment!r} target={target!r}>"

    # -- the Executor contract ----------------------------------------------------------------
    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        """Check the settings, open the channel and wait until the service accepts it.

        Raises:
            InvalidOptionError: an ``executor_config`` value it cannot take.
            ValueError: an unprotected non-loopback target (see the class docstring).
            ConnectionError: the service did not accept a connection within ``connect_timeout``.
        """
        if self._channel is not None:
            return
        settings = GrpcSettings.from_config(environment_config, environment_name)
        channel = settings.channel()
        try:
            await asyncio.wait_for(channel.channel_ready(), settings.network.connect_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            await channel.close()
            raise ConnectionError(
                f"environment {environment_name!r}: no 'wove worker grpc' service answered at "
                f"{settings.target!r} within connect_timeout={settings.network.connect_timeout:g}s"
                " (is it running, and do its TLS settings match?)"
            ) from None
        self._environment = environment_name
        self._settings = settings
        self._channel = channel
        self._loop = asyncio.get_running_loop()
        self._run = channel.unary_stream(
            RUN_METHOD, request_serializer=_identity, response_deserializer=_identity
        )
        self._cancel = channel.unary_unary(
            CANCEL_METHOD, request_serializer=_identity, response_deserializer=_identity
        )
        self._runs = ClientRuns()
        self._slots = asyncio.Semaphore(settings.network.max_in_flight)
        self._stopped = False

    async def send(self, frame: Any) -> None:
        """Start a run (waiting for a free slot) or cancel one."""
        settings = self._usable("send")
        assert self._slots is not None
        if isinstance(frame, RunTask):
            await self._slots.acquire()
            self._runs.started(frame.run_id, frame.run_id)
            self._calls[frame.run_id] = asyncio.ensure_future(self._stream(frame.run_id, frame))
        elif isinstance(frame, CancelTask):
            if not self._runs.owns(frame.run_id):
                return
            try:
                await self._cancel(
                    settings.network.codec.encode(frame),
                    metadata=settings.metadata,
                    timeout=settings.network.connect_timeout,
                    wait_for_ready=True,
                )
            except grpc.aio.AioRpcError as error:
                # The run's own stream reports what became of it; this is only a hint.
                logger.warning(
                    "cancelling run %s on %s failed: %s", frame.run_id, settings.target, error
                )
        elif isinstance(frame, Shutdown):
            for run_id in list(self._calls):
                with contextlib.suppress(grpc.aio.AioRpcError, ConnectionError):
                    await self.send(CancelTask(run_id=run_id))
        else:
            raise TypeError(f"the grpc executor cannot send a {type(frame).__name__} frame")

    async def recv(self) -> Any:
        """Return the next verified event."""
        self._usable("receive")
        event = await self._runs.events.get()
        if event is _STOPPED:
            self._runs.events.put_nowait(event)  # wake every other waiting recv() too
            raise WeaveUsageError(
                f"the grpc executor of environment {self._environment!r} is stopped"
            )
        return event

    async def stop(self) -> None:
        """Cancel the calls in flight (so the service cancels their runs); close the channel."""
        loop = self._loop
        if self._channel is not None and loop is not None and loop is not _running_loop():
            # gRPC's aio channel belongs to the loop it was made on: stop it there.
            if loop.is_closed():
                self._channel = None
                return
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.stop(), loop))
            return
        channel, self._channel = self._channel, None
        if channel is None or self._stopped:
            return
        self._stopped = True
        in_flight = list(self._calls)
        tasks = [*self._calls.values(), *self._raw]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for run_id in in_flight:
            self._runs.connection_lost(run_id, "the executor stopped")
        self._calls.clear()
        await channel.close()
        self._runs.events.put_nowait(_STOPPED)  # type: ignore[arg-type]

    # -- for tests ----------------------------------------------------------------------------
    async def send_raw(self, line: bytes) -> None:
        """Send ``line`` exactly as given as the request of a ``Run`` call, and discard what
        comes back. A test hook: the conformance suite pushes forged and replayed frames this
        way."""
        settings = self._usable("send")
        assert self._run is not None
        call = self._run(line, metadata=settings.metadata)

        async def drain() -> None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                async for _ in call:
                    pass

        task = asyncio.ensure_future(drain())
        self._raw.add(task)
        task.add_done_callback(self._raw.discard)

    # -- internals ----------------------------------------------------------------------------
    def _usable(self, action: str) -> GrpcSettings:
        if self._settings is None or (self._channel is None and not self._stopped):
            raise WeaveUsageError(
                f"cannot {action}: the grpc executor is not started; await start() first"
            )
        if self._stopped:
            if action == "receive":
                return self._settings
            raise WeaveUsageError(
                f"cannot {action}: the grpc executor of environment {self._environment!r} is "
                "stopped; await start() again"
            )
        return self._settings

    async def _ready(self, settings: GrpcSettings) -> None:
        """Wait (up to ``connect_timeout``) for the channel to be connected, if it is not."""
        assert self._channel is not None
        if self._channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
            return
        try:
            await asyncio.wait_for(self._channel.channel_ready(), settings.network.connect_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise ConnectionError(
                f"the 'wove worker grpc' service at {settings.target!r} did not accept a "
                f"connection within connect_timeout={settings.network.connect_timeout:g}s"
            ) from None

    async def _stream(self, run_id: str, frame: RunTask) -> None:
        """Make the ``Run`` call of one run and deliver its verified events.

        A call that fails with ``UNAVAILABLE`` before the service sent anything (typically
        made on a connection that had just broken, as the service restarted) is made once
        more, freshly signed, once the channel has reconnected; a run the service already
        acknowledged is never sent twice.
        """
        settings = self._settings
        assert settings is not None
        assert self._slots is not None
        reason = "the service ended the stream before the run's terminal event"
        try:
            for attempt in (1, 2):
                error, heard = await self._call(run_id, frame, settings)
                if error is None:
                    break
                code = error.code()
                reason = f"{code.name}: {error.details()}"
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    self._refused(run_id, settings, error)
                if attempt == 2 or heard or code != grpc.StatusCode.UNAVAILABLE:
                    break
        except ConnectionError as error:
            reason = str(error)
        finally:
            self._calls.pop(run_id, None)
            self._slots.release()
        self._runs.connection_lost(run_id, f"{reason} ({settings.target})")

    async def _call(
        self, run_id: str, frame: RunTask, settings: GrpcSettings
    ) -> tuple[grpc.aio.AioRpcError | None, bool]:
        """One ``Run`` call: the error it ended with (if any) and whether the service answered."""
        codec = settings.network.codec
        # wait_for_ready: a call made while the channel reconnects (the service restarted)
        # waits for it instead of failing at once; _ready bounds that wait.
        call = self._run(codec.encode(frame), metadata=settings.metadata, wait_for_ready=True)
        try:
            await self._ready(settings)
        except ConnectionError:
            call.cancel()
            raise
        heard = False
        try:
            async for reply in call:
                heard = True
                try:
                    event = codec.decode(reply)
                except FrameRejectedError as error:
                    logger.warning("dropped an event from %s: %s", settings.target, error)
                    continue
                if event.run_id != run_id and not (
                    isinstance(event, LogRecord) and not event.run_id
                ):
                    logger.warning(
                        "dropped a %s for run %r from the stream of run %r",
                        type(event).__name__,
                        event.run_id,
                        run_id,
                    )
                    continue
                self._runs.deliver(event)
                if not self._runs.owns(run_id):
                    break  # the terminal event
        except grpc.aio.AioRpcError as error:
            return error, heard
        return None, heard

    def _refused(self, run_id: str, settings: GrpcSettings, error: grpc.aio.AioRpcError) -> None:
        """The service refused the request itself: a configuration error, not a lost worker."""
        self._runs.deliver(
            TaskError(
                run_id=run_id,
                error=NormalizedError(
                    kind="wove.FrameRejected",
                    message=(
                        f"the worker service at {settings.target!r} refused the task: "
                        f"{error.details()} (do both sides use the same security secret?)"
                    ),
                    retryable=False,
                    source="worker",
                ),
            )
        )
