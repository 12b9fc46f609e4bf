"""The callback server: one asyncio HTTP server per process and bind address, routing by run.

Backend workers (Celery, RQ, ARQ, Taskiq, ...) report a run's events by POSTing signed frames to
``<url>/runs/<run_id>/events``, and fetch payloads too large for the backend to carry from
``<url>/runs/<run_id>/payload`` with a signed GET. Every weave and environment in the process
that binds the same address shares one server; each registers the runs it is waiting for and
receives their events on the dispatch loop (``wove._delivery.dispatch_loop``), never on its own
loop, so a busy weave never delays event intake.

Routes::

    POST /runs/{run_id}/events   signed LineCodec lines -> on_event(frame), in order
                                 -> 200 {"accepted": N, "cancel": bool}
                                 -> 409 when it holds a second task_started for the run
    GET  /runs/{run_id}/payload  X-Wove-Signature: sign(b"GET /runs/<run_id>/payload")
                                 -> 200, the payload bytes

Every line is verified (HMAC, constant-time compare, clock skew, replay cache) before anything
in it is decoded, and a request is delivered all-or-nothing: one bad line refuses the request
and nothing from it reaches a run.

A run is *claimed* by the first ``task_started`` posted for it; a request that starts it again
is refused with 409. Backend workers post ``task_started`` before they run anything, so a
payload delivered twice -- redelivered by a broker, replayed by someone who copied it -- runs
at most once per run id, whichever process the copy reaches. Every answer to an accepted post
says whether the weave asked to cancel the run (:meth:`CallbackServer.request_cancel`); that is
how a worker observes cancellation on backends that cannot interrupt a running job.

An optional bearer token (``callback_token``), meant for a
proxy in front of the server, is checked in constant time on every request as well.

Thread safety: :func:`acquire_callback_server` and :meth:`CallbackServer.release` may be awaited
on any event loop in any thread; they hop to the dispatch loop, which owns the table of servers.
:meth:`~CallbackServer.register_run` and :meth:`~CallbackServer.unregister_run` may be called
from any thread. ``on_event`` is always called on the dispatch loop and must not block.

aiohttp is imported only when a server is acquired; without it,
:class:`MissingCallbackFeatureError` names the extra to install.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ._delivery import dispatch_loop
from ._errors import (
    FrameRejectedError,
    InvalidOptionError,
    MissingCallbackFeatureError,
    WeaveUsageError,
)
from ._frames import Frame, TaskStarted, check_run_id
from ._security import LineCodec, Security

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "DEFAULT_CALLBACK_MAX_BODY_BYTES",
    "SIGNATURE_HEADER",
    "CallbackServer",
    "MissingCallbackFeatureError",
    "acquire_callback_server",
    "payload_request_body",
]

logger = logging.getLogger("wove.callback")

#: Requests with a larger body are refused with 413 before more of it is read.
DEFAULT_CALLBACK_MAX_BODY_BYTES: Final = 256 * 1024 * 1024
#: The header that carries the signature of a payload request.
SIGNATURE_HEADER: Final = "X-Wove-Signature"

EventHandler = Callable[[Frame], None]


def require_aiohttp() -> Any:
    """The ``aiohttp`` module, or :class:`MissingCallbackFeatureError` naming the extra."""
    try:
        import aiohttp
        import aiohttp.web
    except ImportError as error:
        raise MissingCallbackFeatureError() from error
    return aiohttp


def payload_request_body(run_id: str) -> bytes:
    """Return what a worker signs to fetch ``run_id``'s payload: ``b"GET /runs/<run_id>/payload"``.

    Example:
        >>> headers = {SIGNATURE_HEADER: security.sign(payload_request_body(run_id)).decode()}
    """
    return f"GET /runs/{run_id}/payload".encode()


class _Run:
    __slots__ = ("cancel", "claimed", "on_event", "payload")

    def __init__(self, on_event: EventHandler, payload: bytes | None) -> None:
        self.on_event = on_event
        self.payload = payload
        self.claimed = False
        self.cancel = False


class CallbackServer:
    """One listening HTTP server and the runs registered with it.

    Get one with :func:`acquire_callback_server`, never by constructing it; give it back with
    :meth:`release`.

    Attributes:
        url: the base URL workers use to reach this server (``callback_url`` when given).
        bound: the ``(host, port)`` the server listens on.
    """

    def __init__(
        self,
        host: str,
        *,
        security: Security,
        public_url: str | None,
        callback_token: str | None,
        max_body_bytes: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self.bound: tuple[str, int] = (host, 0)
        self.url = ""
        self.security = security
        self.public_url = public_url
        self.callback_token = callback_token
        self.max_body_bytes = max_body_bytes
        self._codec = LineCodec(security)
        self._runs: dict[str, _Run] = {}
        self._runs_lock = threading.Lock()
        self._references = 0
        self._runner: web.AppRunner | None = None
        self._keys: list[tuple[str, int]] = []

    def __repr__(self) -> str:
        state = "serving" if self._runner is not None else "stopped"
        return f"<CallbackServer {self.url or self.host!r} {state}, {len(self._runs)} runs>"

    @property
    def is_serving(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    # -- runs --------------------------------------------------------------------------------

    def register_run(
        self, run_id: str, on_event: EventHandler, payload: bytes | None = None
    ) -> str:
        """Route ``run_id``'s events to ``on_event`` and return the URL a worker posts them to.

        Args:
            run_id: the run, from ``[A-Za-z0-9_-]``.
            on_event: called on the dispatch loop with each verified frame, in order.
            payload: bytes to serve at ``<url>/runs/<run_id>/payload`` on a signed request.

        Raises:
            InvalidOptionError: a malformed or already registered run id.
            WeaveUsageError: the server was released and has stopped.
        """
        check_run_id(run_id)
        if self._runner is None:
            raise WeaveUsageError(
                f"cannot register run {run_id!r}: the callback server {self.url!r} has stopped; "
                "acquire a server again with acquire_callback_server()"
            )
        with self._runs_lock:
            if run_id in self._runs:
                raise InvalidOptionError(
                    f"run {run_id!r} is already registered with the callback server {self.url!r}; "
                    "unregister it first"
                )
            self._runs[run_id] = _Run(on_event, payload)
        return f"{self.url}/runs/{run_id}/events"

    def unregister_run(self, run_id: str) -> None:
        """Stop routing ``run_id``; its later posts get 404. Unknown run ids are ignored."""
        with self._runs_lock:
            self._runs.pop(run_id, None)

    def request_cancel(self, run_id: str) -> None:
        """Tell the worker of ``run_id`` to cancel it, in the answer to its next post.

        Unknown run ids are ignored.
        """
        with self._runs_lock:
            run = self._runs.get(run_id)
            if run is not None:
                run.cancel = True

    def payload_url(self, run_id: str) -> str:
        """The URL a worker fetches ``run_id``'s payload from."""
        return f"{self.url}/runs/{run_id}/payload"

    def _run(self, run_id: str) -> _Run | None:
        with self._runs_lock:
            return self._runs.get(run_id)

    # -- lifetime ----------------------------------------------------------------------------

    async def release(self) -> None:
        """Give back one reference; the last one stops the server and frees its port.

        May be awaited on any loop; the work happens on the dispatch loop.
        """
        if dispatch_loop.is_current():
            await self._release()
        else:
            await asyncio.wrap_future(dispatch_loop.run(self._release()))

    async def _release(self) -> None:
        async with _servers_lock():
            if self._references <= 0:
                return
            self._references -= 1
            if self._references:
                return
            for key in self._keys:
                if _servers.get(key) is self:
                    del _servers[key]
            self._keys.clear()
            runner, self._runner = self._runner, None
            with self._runs_lock:
                left = list(self._runs)
                self._runs.clear()
            if left:
                logger.warning(
                    "callback server %s stopped with %d runs still registered: %s",
                    self.url,
                    len(left),
                    ", ".join(left[:10]),
                )
            if runner is not None:
                await runner.cleanup()
            logger.debug("callback server %s stopped", self.url)

    async def _start(self, port: int) -> None:
        from aiohttp import web as aio

        app = aio.Application(
            client_max_size=self.max_body_bytes, middlewares=[self._token_middleware()]
        )
        app.router.add_post("/runs/{run_id}/events", self._post_events)
        app.router.add_get("/runs/{run_id}/payload", self._get_payload, allow_head=False)
        runner = aio.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = aio.TCPSite(runner, self.host, port, ssl_context=self.ssl_context)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = _bound_port(runner)
        self.bound = (self.host, bound_port)
        if self.public_url is not None:
            self.url = self.public_url.rstrip("/")
        else:
            shown = f"[{self.host}]" if ":" in self.host else self.host
            scheme = "https" if self.ssl_context is not None else "http"
            self.url = f"{scheme}://{shown}:{bound_port}"
        logger.debug("callback server listening on %s:%d (url %s)", *self.bound, self.url)

    # -- HTTP --------------------------------------------------------------------------------

    def _error(self, status: int, message: str) -> web.Response:
        from aiohttp import web as aio

        response: web.Response = aio.json_response({"error": message}, status=status)
        return response

    def _token_middleware(self) -> Any:
        from aiohttp import web as aio

        token = self.callback_token

        @aio.middleware
        async def check_token(request: web.Request, handler: Any) -> web.StreamResponse:
            if token is not None:
                scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
                # compare_digest keeps the check constant-time whatever the sent token is.
                matches = hmac.compare_digest(sent.strip().encode(), token.encode())
                if scheme.lower() != "bearer" or not matches:
                    response = self._error(401, "missing or wrong callback token")
                    response.headers["WWW-Authenticate"] = 'Bearer realm="wove"'
                    return response
            try:
                result: web.StreamResponse = await handler(request)
            except aio.HTTPException as error:
                # aiohttp's own 404/405/413 answers, in the same one-line JSON as ours.
                response = self._error(error.status, error.reason)
                if "Allow" in error.headers:
                    response.headers["Allow"] = error.headers["Allow"]
                return response
            return result

        return check_token

    async def _post_events(self, request: web.Request) -> web.Response:
        from aiohttp import web as aio

        run_id = request.match_info["run_id"]
        if self._run(run_id) is None:
            return self._error(404, f"no run {run_id!r} is registered here")
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return self._error(413, f"body larger than {self.max_body_bytes} bytes")
        try:
            body = await request.read()
        except aio.HTTPRequestEntityTooLarge:
            return self._error(413, f"body larger than {self.max_body_bytes} bytes")
        frames: list[Frame] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                # decode() verifies the signature (and records the nonce) before it parses.
                frame = self._codec.decode(line)
            except FrameRejectedError as error:
                logger.warning("callback for run %r refused: %s", run_id, error)
                return self._error(401, str(error))
            if frame.run_id != run_id:
                logger.warning(
                    "callback refused: a frame for run %r was posted to run %r",
                    frame.run_id,
                    run_id,
                )
                return self._error(
                    403, f"a frame for run {frame.run_id!r} was posted to run {run_id!r}"
                )
            frames.append(frame)
        if not frames:
            return self._error(400, "no events in the request body")
        run = self._run(run_id)
        if run is None:  # unregistered while the body was being read
            return self._error(404, f"no run {run_id!r} is registered here")
        starts = sum(isinstance(frame, TaskStarted) for frame in frames)
        if starts:
            with self._runs_lock:
                already = run.claimed
                run.claimed = True
            if already or starts > 1:
                logger.warning("run %r was started a second time; the copy was refused", run_id)
                return self._error(409, f"run {run_id!r} was already started by another worker")
        for frame in frames:
            try:
                run.on_event(frame)
            except Exception:
                logger.exception("event handler for run %r failed on %s", run_id, type(frame))
        response: web.Response = aio.json_response({"accepted": len(frames), "cancel": run.cancel})
        return response

    async def _get_payload(self, request: web.Request) -> web.Response:
        from aiohttp import web as aio

        run_id = request.match_info["run_id"]
        run = self._run(run_id)
        if run is None or run.payload is None:
            return self._error(404, f"no payload for run {run_id!r} is registered here")
        try:
            self.security.verify(
                request.headers.get(SIGNATURE_HEADER), payload_request_body(run_id)
            )
        except FrameRejectedError as error:
            logger.warning("payload request for run %r refused: %s", run_id, error)
            return self._error(401, str(error))
        return aio.Response(body=run.payload, content_type="application/octet-stream")


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the callback server started but reports no TCP address")


_servers: dict[tuple[str, int], CallbackServer] = {}
_lock: asyncio.Lock | None = None


def _servers_lock() -> asyncio.Lock:
    # Created on first use, which is always on the dispatch loop.
    global _lock
    if _lock is None:
        _lock = asyncio.Lock()
    return _lock


async def acquire_callback_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    security: Security,
    public_url: str | None = None,
    callback_token: str | None = None,
    max_body_bytes: int = DEFAULT_CALLBACK_MAX_BODY_BYTES,
    ssl_context: ssl.SSLContext | None = None,
) -> CallbackServer:
    """Return the process's callback server for ``(host, port)``, starting it if needed.

    Every call takes one reference; give each back with :meth:`CallbackServer.release`. Port 0
    picks a free port once: later calls with port 0 and the same host, or with the port it
    picked, get the same server. A fixed port is shared by any number of weaves.

    Args:
        host: the address to bind (``callback_host``).
        port: the port to bind, 0 for any free one (``callback_port``).
        security: checks every event and payload request.
        public_url: the base URL workers reach this server at (``callback_url``), when it
            differs from ``http://host:port`` (a proxy, a container's published port).
        callback_token: a bearer token every request must carry (``callback_token``).
        max_body_bytes: larger request bodies are refused with 413.
        ssl_context: serve HTTPS with this context (``callback_cert_file``/``callback_key_file``).

    Raises:
        MissingCallbackFeatureError: aiohttp is not installed.
        InvalidOptionError: the server at that address already runs with a different secret,
            URL or token.
        OSError: the address cannot be bound.

    Example:
        >>> server = await acquire_callback_server(security=security)
        >>> events_url = server.register_run(run_id, on_event)
        >>> ...
        >>> server.unregister_run(run_id)
        >>> await server.release()
    """
    require_aiohttp()  # fail here, on the caller's side, when the extra is missing
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidOptionError(f"callback_port must be an int from 0 to 65535, got {port!r}")
    if not isinstance(security, Security):
        raise InvalidOptionError(
            f"the callback server needs a Security to check events, got {security!r}"
        )
    acquire = _acquire(
        host, port, security, public_url, callback_token, max_body_bytes, ssl_context
    )
    if dispatch_loop.is_current():
        return await acquire
    return await asyncio.wrap_future(dispatch_loop.run(acquire))


async def _acquire(
    host: str,
    port: int,
    security: Security,
    public_url: str | None,
    callback_token: str | None,
    max_body_bytes: int,
    ssl_context: ssl.SSLContext | None,
) -> CallbackServer:
    async with _servers_lock():
        server = _servers.get((host, port))
        if server is not None:
            _check_same(server, security, public_url, callback_token)
            server._references += 1
            return server
        server = CallbackServer(
            host,
            security=security,
            public_url=public_url,
            callback_token=callback_token,
            max_body_bytes=max_body_bytes,
            ssl_context=ssl_context,
        )
        await server._start(port)
        server._references = 1
        # A port-0 server is found again both by (host, 0) and by the port it was given.
        server._keys = [(host, port)] if port == 0 else []
        server._keys.append(server.bound)
        for key in server._keys:
            _servers[key] = server
        return server


def _check_same(
    server: CallbackServer, security: Security, public_url: str | None, token: str | None
) -> None:
    where = f"the callback server on {server.bound[0]}:{server.bound[1]}"
    same_secret = security.key_id == server.security.key_id and hmac.compare_digest(
        security.secret_hex, server.security.secret_hex
    )
    if not same_secret:
        raise InvalidOptionError(
            f"{where} already checks events with another secret; environments that share a "
            "callback_port must share a security secret, or use different callback ports"
        )
    if public_url is not None and public_url.rstrip("/") != server.url:
        raise InvalidOptionError(
            f"{where} is already reachable at {server.url!r}, not callback_url={public_url!r}; "
            "give environments that share a callback_port the same callback_url"
        )
    if token != server.callback_token:
        raise InvalidOptionError(
            f"{where} already runs with a different callback_token; environments that share "
            "a callback_port must share the token"
        )
