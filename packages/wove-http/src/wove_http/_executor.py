"""The ``http`` executor: run tasks on a Wove worker service over persistent HTTP connections.

Each ``run_task`` is one ``POST <url>/runs`` whose body is the signed command line; the
response streams the run's signed event lines (JSON lines) until its terminal event. A
``cancel_task`` is one ``POST <url>/cancel``. One ``httpx.AsyncClient`` per environment keeps a
keep-alive pool sized to ``max_in_flight``; an ``asyncio.Semaphore`` of the same size bounds the
runs in flight. No thread is used per request and no connection is opened per frame.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final, cast
from urllib.parse import urlsplit

import httpx

from wove import InvalidOptionError, WeaveUsageError
from wove.network import ClientRuns, NetworkExecutorSettings, NetworkSettings, network_settings
from wove.plugins import (
    CancelTask,
    Executor,
    ExecutorKind,
    ExecutorSettings,
    Frame,
    FrameRejectedError,
    Heartbeat,
    LogRecord,
    NormalizedError,
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
    setting_keys,
    validate_executor_config,
)

__all__ = ["HttpExecutor", "HttpSettings", "HTTP_CONFIG_KEYS"]

logger = logging.getLogger(__name__)


class HttpSettings(NetworkExecutorSettings, kw_only=True):
    """The ``executor_config`` of an http or https environment: the service's URL, and the
    keys every network executor takes."""

    url: Annotated[
        str,
        setting(
            "the worker service's address, such as `http://127.0.0.1:8700` (what "
            "`wove worker http` prints); `https://` for TLS",
            expect="an http:// or https:// URL with a host",
            pattern=r"^https?://[^/?#]",
        ),
    ]
    headers: Annotated[
        Mapping[str, str],
        setting(
            "HTTP headers sent with every request (for a proxy or gateway in between)",
            expect="a dict mapping header names to strings",
        ),
    ] = {}
    read_timeout: Annotated[
        Seconds | None,
        setting(
            "how long an event stream may stay silent; by default heartbeats and "
            "`delivery_timeout` bound a run",
            default="none",
            gt=0,
        ),
    ] = None


#: ``executor_config`` keys of the http and https executors.
HTTP_CONFIG_KEYS: Final = setting_keys(HttpSettings)
#: Media type of command bodies and event streams.
NDJSON: Final = "application/x-ndjson"
_EVENTS: Final = (TaskStarted, TaskResult, TaskError, TaskCancelled, Heartbeat, LogRecord)
#: Extra pooled connections beyond ``max_in_flight``, so a cancel never waits for a free slot.
_CANCEL_CONNECTIONS: Final = 4
#: Failures of a POST that got no answer (no status line): retried like a refused connect.
_UNANSWERED_ERRORS: Final = (
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
#: Queued by ``stop()`` to wake and end every pending ``recv()``.
_STOPPED: Final = cast("Frame", object())


class HttpExecutor(Executor):
    """Run an environment's tasks on a ``wove worker http`` service.

    Its ``executor_config`` keys are declared by :class:`HttpSettings` and checked at
    ``start``. ``connect_timeout`` is also how long a refused connection is retried (while a
    service restarts). A non-loopback ``url`` without TLS or without ``security`` raises
    ``ValueError`` at ``start`` unless ``insecure=True``; nothing is sent before that check.
    """

    kind: ClassVar[ExecutorKind] = "network"
    settings_class: ClassVar[type[ExecutorSettings] | None] = HttpSettings
    #: The executor name, used in messages.
    name: ClassVar[str] = "http"
    #: Whether the URL must use ``https://`` (the ``https`` executor sets this).
    require_tls: ClassVar[bool] = False

    def __init__(self) -> None:
        self._environment = ""
        self._settings: NetworkSettings | None = None
        self._client: httpx.AsyncClient | None = None
        self._runs: ClientRuns | None = None
        self._slots: asyncio.Semaphore | None = None
        self._streams: set[asyncio.Task[None]] = set()
        self._base = ""
        self._stopped = False

    # -- the Executor contract -----------------------------------------------------------------
    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        self._environment = environment_name
        config = validate_executor_config(
            HttpSettings, environment_config, environment=environment_name, executor=self.name
        )
        where = config_location(environment_name, self.name)
        url = config.url
        parts = urlsplit(url)
        if not parts.hostname:
            raise InvalidOptionError(f"{where}: url must be http://HOST[:PORT], got {url!r}")
        if self.require_tls and parts.scheme != "https":
            raise ValueError(f"{where}: the https executor needs an https:// url, got {url!r}")
        settings = network_settings(
            config, host=parts.hostname, tls=parts.scheme == "https", where=where
        )
        self._settings = settings
        self._base = url.rstrip("/")
        pool = settings.max_in_flight + _CANCEL_CONNECTIONS
        self._client = httpx.AsyncClient(
            verify=settings.ssl_context if settings.ssl_context is not None else True,
            headers={**config.headers, "content-type": NDJSON},
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=config.read_timeout,
                write=None,
                pool=None,
            ),
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            trust_env=False,
        )
        self._runs = ClientRuns()
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._stopped = False

    async def send(self, frame: Any) -> None:
        settings, client, runs, slots = self._require("send")
        if isinstance(frame, RunTask):
            line = settings.codec.encode(frame)
            await slots.acquire()
            token = object()  # this request is the run's connection
            runs.started(frame.run_id, token)
            stream = asyncio.get_running_loop().create_task(self._stream(frame.run_id, line, token))
            self._streams.add(stream)
            stream.add_done_callback(self._stream_done)
        elif isinstance(frame, CancelTask):
            response = await client.post(
                f"{self._base}/cancel", content=settings.codec.encode(frame)
            )
            if response.status_code >= 300:
                raise FrameRejectedError(
                    f"the worker service at {self._base} refused cancel_task "
                    f"({response.status_code}): {response.text.strip()}"
                )
        elif isinstance(frame, Shutdown):
            pass  # a worker service outlives the weaves that use it
        else:
            raise TypeError(f"{type(frame).__name__} is not a command frame")

    async def recv(self) -> Any:
        runs = self._runs
        if runs is None:
            raise WeaveUsageError(
                f"the {self.name} executor of environment {self._environment!r} is not started; "
                "await start() before recv()"
            )
        event = await runs.events.get()
        if event is _STOPPED:
            runs.events.put_nowait(_STOPPED)  # wake the next receiver too
            raise WeaveUsageError(
                f"the {self.name} executor of environment {self._environment!r} is stopped; "
                "no more events will arrive"
            )
        return event

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        streams = list(self._streams)
        for stream in streams:
            stream.cancel()
        if streams:
            await asyncio.gather(*streams, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        if self._runs is not None:
            self._runs.events.put_nowait(_STOPPED)

    # -- for tests and embedders ---------------------------------------------------------------
    @property
    def security(self) -> Security | None:
        """The :class:`~wove.plugins.Security` frames are signed with (after ``start``)."""
        return None if self._settings is None else self._settings.security

    async def post_raw(self, line: bytes, path: str = "/runs") -> tuple[int, bytes]:
        """POST ``line`` as given to the service; return the status and the whole body."""
        _, client, _, _ = self._require("post_raw")
        response = await client.post(f"{self._base}{path}", content=line)
        return response.status_code, response.content

    # -- internals -----------------------------------------------------------------------------
    def _require(
        self, what: str
    ) -> tuple[NetworkSettings, httpx.AsyncClient, ClientRuns, asyncio.Semaphore]:
        if (
            self._settings is None
            or self._client is None
            or self._runs is None
            or self._slots is None
        ):
            raise WeaveUsageError(
                f"the {self.name} executor of environment {self._environment!r} is not started "
                f"(or is stopped); await start() before {what}()"
            )
        return self._settings, self._client, self._runs, self._slots

    def _stream_done(self, stream: asyncio.Task[None]) -> None:
        self._streams.discard(stream)
        if self._slots is not None:
            self._slots.release()

    async def _stream(self, run_id: str, line: bytes, token: object) -> None:
        """POST one run and pass its verified events on until the terminal one."""
        settings, client, runs, _ = self._require("send")
        reason = "the response ended before the run's terminal event"
        deadline = time.monotonic() + settings.connect_timeout
        delay = 0.05
        try:
            while True:
                answered = False
                try:
                    async with client.stream(
                        "POST", f"{self._base}/runs", content=line
                    ) as response:
                        answered = True
                        if response.status_code != 200:
                            body = (await response.aread()).decode(errors="replace").strip()
                            self._fail(
                                run_id,
                                f"the worker service at {self._base} refused the run "
                                f"({response.status_code}): {body}",
                            )
                            return
                        await self._read_events(response, run_id, runs, settings)
                    break
                except _UNANSWERED_ERRORS as error:
                    # No answer yet: nothing ran, or the service died with the run (the same
                    # signed line cannot run twice on one service: its replay cache refuses
                    # it). A pooled connection to a service that died fails this way too.
                    # Retry while the service may be (re)starting, but not a TLS failure,
                    # which a retry cannot fix.
                    if answered:
                        raise
                    if _is_tls_failure(error) or time.monotonic() + delay > deadline:
                        self._fail(
                            run_id,
                            f"could not connect to the worker service at {self._base}: {error}",
                        )
                        return
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
        except httpx.HTTPError as error:
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        finally:
            if runs.owns(run_id):
                runs.connection_lost(token, reason)

    async def _read_events(
        self,
        response: httpx.Response,
        run_id: str,
        runs: ClientRuns,
        settings: NetworkSettings,
    ) -> None:
        buffer = bytearray()
        async for chunk in response.aiter_raw():
            buffer += chunk
            if b"\n" not in chunk:
                continue
            *lines, rest = bytes(buffer).split(b"\n")
            buffer = bytearray(rest)
            for event_line in lines:
                if event_line:
                    self._deliver(event_line, run_id, runs, settings)
        # Read to the end of the body (the service ends it after the terminal event), so the
        # connection goes back to the keep-alive pool.

    def _deliver(
        self, line: bytes, run_id: str, runs: ClientRuns, settings: NetworkSettings
    ) -> None:
        try:
            frame = settings.codec.decode(line)
        except FrameRejectedError as error:
            logger.warning(
                "dropped an event for run %s from %s that failed verification: %s",
                run_id,
                self._base,
                error,
            )
            return
        if not isinstance(frame, _EVENTS):
            logger.warning("dropped a %s from %s: not an event", type(frame).__name__, self._base)
            return
        runs.deliver(frame)

    def _fail(self, run_id: str, message: str) -> None:
        if self._runs is not None:
            self._runs.deliver(
                TaskError(
                    run_id=run_id,
                    error=NormalizedError(
                        kind="wove.TransportError", message=message, source="transport"
                    ),
                )
            )


def _is_tls_failure(error: BaseException) -> bool:
    """Whether TLS refused the connection (a bad certificate: retrying cannot help), as opposed
    to the peer vanishing mid-handshake (a restarting service: retry)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
