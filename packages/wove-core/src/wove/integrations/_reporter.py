"""The worker side of the callback server: claim a run, post its events, hear about cancels.

A backend job (a Celery task, an RQ job, a Kubernetes pod...) cannot answer on a channel the
weave holds open, so it reports over HTTP to the callback server whose address the signed
payload names (``delivery.callback``):

1. **claim** -- post ``task_started`` before anything is unpickled. The server accepts the first
   claim of a run id and refuses later ones (409), so a payload delivered twice runs once; a run
   the weave no longer waits for (404) is not run at all.
2. **report** -- every event the runtime emits is queued and posted in order; events queued
   while a post is in flight go together in the next one, so a burst costs one request.
3. **listen** -- each answer says whether the weave asked to cancel the run; heartbeats make
   sure the worker asks at least once per ``delivery.heartbeat_seconds``.

A post that fails for a transient reason (connection refused or reset, a 5xx from a proxy, a
timeout) is retried with exponential backoff and jitter for up to ``retry_seconds``, each time
freshly signed: the server's replay cache would refuse the same signature twice. A 401/403
means the secret or token is wrong and is not retried; a 404 means nobody waits any more and
cancels the run.

The worker finds the secret in ``WOVE_SECRET``, the bearer token for a proxy in
``WOVE_CALLBACK_TOKEN`` and a CA bundle for an ``https://`` callback in ``WOVE_CALLBACK_CA_FILE``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .._callback_server import SIGNATURE_HEADER, payload_request_body, require_aiohttp
from .._errors import FrameRejectedError, RunNotClaimedError
from .._frames import Frame, PayloadRef, RunTask, TaskStarted
from .._security import LineCodec, Security

if TYPE_CHECKING:
    import aiohttp

__all__ = ["CallbackReporter", "fetch_payload"]

logger = logging.getLogger("wove.worker.callback")

#: Bearer token the worker sends to the callback server (or the proxy in front of it).
TOKEN_ENV: Final = "WOVE_CALLBACK_TOKEN"
#: CA bundle that verifies an ``https://`` callback server.
CA_FILE_ENV: Final = "WOVE_CALLBACK_CA_FILE"
#: How long (seconds) one post is retried before its events are given up.
RETRY_SECONDS_ENV: Final = "WOVE_CALLBACK_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS: Final = 60.0
_FIRST_BACKOFF: Final = 0.1
_MAX_BACKOFF: Final = 5.0
_REQUEST_TIMEOUT: Final = 30.0


class _Transient(Exception):
    """A post failed in a way that another try may fix."""


def _ssl_for(url: str) -> ssl.SSLContext | None:
    if not url.startswith("https://"):
        return None
    return ssl.create_default_context(cafile=os.environ.get(CA_FILE_ENV) or None)


def _headers() -> dict[str, str]:
    token = os.environ.get(TOKEN_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _retry_seconds() -> float:
    raw = os.environ.get(RETRY_SECONDS_ENV)
    try:
        return float(raw) if raw else DEFAULT_RETRY_SECONDS
    except ValueError:
        logger.warning("%s=%r is not a number; using %gs", RETRY_SECONDS_ENV, raw, 60.0)
        return DEFAULT_RETRY_SECONDS


async def _with_retries(attempt: Callable[[], Any], what: str, budget: float) -> Any:
    """Await ``attempt()`` until it stops raising :class:`_Transient` or ``budget`` runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    backoff = _FIRST_BACKOFF
    while True:
        try:
            return await attempt()
        except _Transient as error:
            left = deadline - loop.time()
            if left <= 0:
                raise ConnectionError(
                    f"{what} failed for {budget:g}s; last error: {error}"
                ) from None
            pause = min(backoff * (0.5 + random.random()), left)
            logger.info("%s failed (%s); retrying in %.2fs", what, error, pause)
            await asyncio.sleep(pause)
            backoff = min(backoff * 2, _MAX_BACKOFF)


def _transient(error: BaseException) -> _Transient:
    return _Transient(f"{type(error).__name__}: {error}")


async def fetch_payload(reference: PayloadRef, security: Security) -> bytes:
    """Fetch the ``run_task`` line a :class:`PayloadRef` points at, with a signed ``GET``.

    The returned line is still to be verified; this only proves we asked with the secret.
    """
    aiohttp = require_aiohttp()
    url = reference.url
    expected_tail = f"/runs/{reference.run_id}/payload"
    if not url.endswith(expected_tail):
        raise FrameRejectedError(
            f"payload reference refused: its url {url!r} is not the payload of run "
            f"{reference.run_id!r}"
        )

    async def attempt() -> bytes:
        headers = _headers()
        # Signed afresh every try: the server keeps each nonce, so a re-sent one is a replay.
        headers[SIGNATURE_HEADER] = security.sign(payload_request_body(reference.run_id)).decode()
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT)
                ) as session,
                session.get(url, headers=headers, ssl=_ssl_for(url)) as response,
            ):
                if response.status == 200:
                    body: bytes = await response.read()
                    return body
                text = (await response.text())[:300]
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise _transient(error) from None
        if response.status == 404:
            raise RunNotClaimedError(
                f"run {reference.run_id!r} was not run: the weave that sent it no longer waits "
                f"for it (its payload is gone from {url})"
            )
        if response.status >= 500:
            raise _Transient(f"HTTP {response.status}: {text}")
        raise FrameRejectedError(
            f"the callback server refused to hand over the payload of run {reference.run_id!r} "
            f"(HTTP {response.status}: {text}); check WOVE_SECRET and {TOKEN_ENV}"
        )

    result: bytes = await _with_retries(
        attempt, f"fetching the payload of run {reference.run_id!r}", _retry_seconds()
    )
    return result


_sessions: dict[int, aiohttp.ClientSession] = {}


def _shared_session(aiohttp: Any) -> aiohttp.ClientSession | None:
    """The worker loop's keep-alive session, made once per process; ``None`` on other loops,
    whose lifetime this module does not know (their runs get a session of their own)."""
    from . import _loop

    if not _loop.is_worker_loop(asyncio.get_running_loop()):
        return None
    session = _sessions.get(os.getpid())
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT), headers=_headers()
        )
        _sessions.clear()  # a forked child's copy belongs to its parent's loop
        _sessions[os.getpid()] = session
        _loop.at_loop_exit(session.close)
    return session


class CallbackReporter:
    """Posts one run's events to the callback server, in order, batched, with retries.

    Args:
        frame: the verified run, whose ``delivery.callback`` names the server.
        security: signs every posted line.
        on_cancel: called (on the loop) once when the weave asks to cancel the run.
    """

    def __init__(
        self, frame: RunTask, security: Security, *, on_cancel: Callable[[], None]
    ) -> None:
        callback = frame.delivery.callback
        if not callback:
            raise ValueError(f"run {frame.run_id!r} names no callback server")
        self._aiohttp = require_aiohttp()
        self.run_id = frame.run_id
        self.url = f"{callback.rstrip('/')}/runs/{frame.run_id}/events"
        self._codec = LineCodec(security)
        self._on_cancel = on_cancel
        self._cancel_sent = False
        self._queue: list[Frame] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._gone = False  # the server answered 404: stop posting
        self._session: aiohttp.ClientSession | None = None
        self._poster: asyncio.Task[None] | None = None
        self._budget = _retry_seconds()
        self._owns_session = False

    async def __aenter__(self) -> CallbackReporter:
        self._session = _shared_session(self._aiohttp)
        if self._session is None:
            self._session = self._aiohttp.ClientSession(
                timeout=self._aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT), headers=_headers()
            )
            self._owns_session = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def claim(self, worker: str) -> None:
        """Post ``task_started``; raise :class:`RunNotClaimedError` if the run may not start."""
        status = await self._post([TaskStarted(run_id=self.run_id, worker=worker)])
        if status == 409:
            raise RunNotClaimedError(
                f"run {self.run_id!r} was not run: another worker already started it "
                "(the payload was delivered twice, or replayed)"
            )
        if status == 404:
            raise RunNotClaimedError(
                f"run {self.run_id!r} was not run: the weave that sent it no longer waits for it"
            )

    async def emit(self, frame: Frame) -> None:
        """Queue ``frame`` for posting; the runtime's own ``task_started`` is dropped (claimed)."""
        if isinstance(frame, TaskStarted) or self._gone:
            return
        self._queue.append(frame)
        self._idle.clear()
        self._wake.set()
        if self._poster is None:
            self._poster = asyncio.get_running_loop().create_task(self._post_queued())

    async def flush(self) -> None:
        """Wait until everything queued so far was posted or given up."""
        await self._idle.wait()

    async def aclose(self) -> None:
        await self.flush()
        self._closed = True
        self._wake.set()
        if self._poster is not None:
            await self._poster
        if self._session is not None and self._owns_session:
            await self._session.close()

    async def _post_queued(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self._post(batch)
                except Exception as error:
                    logger.error(
                        "could not report %d event(s) of run %r to %s: %s",
                        len(batch),
                        self.run_id,
                        self.url,
                        error,
                    )
            if not self._queue:
                self._idle.set()
                if self._closed:
                    return

    async def _post(self, frames: list[Frame]) -> int:
        """Post ``frames`` as one request (retrying transient failures); return the status."""
        aiohttp = self._aiohttp
        session = self._session
        assert session is not None, "use CallbackReporter as an async context manager"

        async def attempt() -> int:
            body = b"".join(self._codec.encode(frame) for frame in frames)  # fresh nonces
            try:
                async with session.post(self.url, data=body, ssl=_ssl_for(self.url)) as response:
                    status = response.status
                    answer = await response.json() if status == 200 else None
                    text = "" if status == 200 else (await response.text())[:300]
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as error:
                raise _transient(error) from None
            if status == 200:
                if isinstance(answer, dict) and answer.get("cancel") and not self._cancel_sent:
                    self._cancel_sent = True
                    self._on_cancel()
                return status
            if status in (404, 409):
                if status == 404:
                    self._gone = True
                    if not self._cancel_sent:
                        self._cancel_sent = True
                        self._on_cancel()
                return status
            if status >= 500 or status == 429:
                raise _Transient(f"HTTP {status}: {text}")
            raise FrameRejectedError(
                f"the callback server refused the events of run {self.run_id!r} "
                f"(HTTP {status}: {text}); check WOVE_SECRET and {TOKEN_ENV}"
            )

        status: int = await _with_retries(
            attempt, f"posting events of run {self.run_id!r} to {self.url}", self._budget
        )
        return status
