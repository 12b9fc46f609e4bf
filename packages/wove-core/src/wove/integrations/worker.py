"""The worker runtime: run ``run_task`` frames, heartbeat while they run, report how they ended.

Every worker -- the ``stdio`` process, the HTTP/gRPC/WebSocket services, a job inside a task
system -- executes tasks through :class:`WorkerRuntime`, so they all behave the same way:

* each run emits ``task_started``, then a ``heartbeat`` every ``delivery.heartbeat_seconds``
  while it runs, then exactly **one** terminal event: ``task_result``, ``task_error`` or
  ``task_cancelled``;
* sync callables run in a bounded thread pool (contextvars copied), so a blocking task never
  stops the event loop, the heartbeats, or the other runs;
* failures travel as a :class:`~wove._frames.NormalizedError` beside the pickled exception, so
  the weave can report them even when the exception class cannot be rebuilt there; a result
  that cannot be pickled is an error, never a hang.

**The runtime never sees raw bytes from the wire.** It is handed frames the caller has already
verified (:class:`~wove._security.LineCodec` checks the signature before it decodes anything),
and only then unpickles ``callable`` and ``args``. Code that feeds it frames must keep that
invariant.

Backends do not deal in frames: they call :func:`run` (or :func:`arun`) with the signed payload
the adapter submitted; :func:`verify_payload` checks it before anything is unpickled. The job a
task system runs calls :func:`run_job` (or :func:`arun_job`), which wraps them the one way every
backend needs and returns a :data:`JobOutcome` word for the task system's own result store.

Import these names from :mod:`wove.worker`, their public home in the plugin SDK; this module
path, wove 2.x's, gives the same objects and keeps working.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import logging
import os
import socket
import threading
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Literal, TypeAlias, TypeVar

from .._errors import FrameRejectedError, InvalidOptionError, RunNotClaimedError, WeaveUsageError
from .._frames import (
    TERMINAL_EVENTS,
    CancelTask,
    Frame,
    Heartbeat,
    LogRecord,
    NormalizedError,
    PayloadRef,
    RunTask,
    Shutdown,
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskStarted,
    check_run_id,
)
from .._security import LineCodec, Security
from .._serializer import dumps, loads, require_dispatch

__all__ = [
    "INSECURE_ENV",
    "NOT_CLAIMED",
    "SECRET_ENV",
    "SECRET_KEY_ID_ENV",
    "TASK_CANCELLED",
    "TASK_ERROR",
    "TASK_RESULT",
    "JobOutcome",
    "WorkerRuntime",
    "arun",
    "arun_job",
    "preload",
    "run",
    "run_job",
    "verify_payload",
]

logger = logging.getLogger(__name__)
#: Where :func:`run_job` logs a payload it did not run, beside the reporter's
#: ``wove.worker.callback``: one name for worker-side operators to filter on, whatever the backend.
_job_logger = logging.getLogger("wove.worker")

#: Shared secret for backend payloads (the string itself is the secret, as with ``env:NAME``).
SECRET_ENV: Final = "WOVE_SECRET"
#: Key id that goes with :data:`SECRET_ENV`; ``"default"`` when unset.
SECRET_KEY_ID_ENV: Final = "WOVE_SECRET_KEY_ID"
#: ``1`` lets a worker with no secret accept unsigned payloads (trusted networks only).
INSECURE_ENV: Final = "WOVE_INSECURE"

_REASON: Final = "the Wove worker runtime"
#: Larger serialized callables/arguments of async tasks are unpickled off the event loop.
_INLINE_LOAD_BYTES: Final = 1 << 20

Emit: TypeAlias = Callable[[Frame], Awaitable[None]]
Terminal: TypeAlias = TaskResult | TaskError | TaskCancelled
LogLevel: TypeAlias = Literal["debug", "info", "warning", "error"]
#: What :func:`run_job` returns: the terminal event's wire tag, or ``"not_claimed"``.
JobOutcome: TypeAlias = Literal["task_result", "task_error", "task_cancelled", "not_claimed"]
#: The run returned; its value went to the weave.
TASK_RESULT: Final = "task_result"
#: The task raised (or its result could not be pickled); the error went to the weave.
TASK_ERROR: Final = "task_error"
#: The weave cancelled the run, before or while it ran.
TASK_CANCELLED: Final = "task_cancelled"
#: The payload was not run: another copy claimed it, or no weave waits for it any more.
NOT_CLAIMED: Final = "not_claimed"
_T = TypeVar("_T")


class _Run:
    """One run's bookkeeping; only ever touched from the event loop."""

    __slots__ = ("cancel_requested", "finishing", "frame", "started", "task")

    def __init__(self, frame: RunTask) -> None:
        self.frame = frame
        self.task: asyncio.Task[None] | None = None
        self.started = False  # the run's coroutine has begun executing
        self.cancel_requested = False
        self.finishing = False  # its terminal event is decided; cancelling is too late


class _Pending:
    """A sync-sent callable returned an awaitable; it is awaited on the loop, not the thread."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable


class WorkerRuntime:
    """Execute ``run_task`` frames and report each run's events through ``emit``.

    ``emit`` is awaited once per event, from the event loop; it should write the frame to
    wherever the weave listens (a pipe, a socket, a callback). An exception it raises is
    logged and the run goes on: the weave's delivery deadline notices lost events.

    A sync run (``is_async=False``) loads, calls and pickles entirely in a pool thread. An async
    run is loaded and its result pickled on the loop, except that payloads over 1 MiB are
    unpickled in the pool. ``frame.timeout`` bounds all of it and ends the run with a builtin
    ``TimeoutError`` (retryable, like any task failure).

    A sync callable that is cancelled, or runs past its ``timeout``, cannot be interrupted:
    the run reports ``task_cancelled`` (or the ``TimeoutError``) at once, the thread keeps
    running until the callable returns, and its result is discarded. Until then it holds one of
    the ``max_threads`` threads (see :attr:`busy_threads`).

    Args:
        emit: awaited with every event frame, in order for each run.
        max_threads: how many sync callables may run at the same time.
        worker_name: reported in ``task_started`` so the weave can say where a task ran.
        threads: run sync callables on this pool, shared with other runtimes, instead of one
            of the runtime's own (``max_threads`` then does not apply, and closing the runtime
            leaves the pool running).

    Example:
        >>> async def serve(frames, emit):
        ...     async with WorkerRuntime(emit) as runtime:
        ...         async for frame in frames:  # each one already verified
        ...             await runtime.handle(frame)
        ...         await runtime.drain()
    """

    def __init__(
        self,
        emit: Emit,
        *,
        max_threads: int = 32,
        worker_name: str = "",
        threads: ThreadPoolExecutor | None = None,
    ) -> None:
        if max_threads < 1:
            raise InvalidOptionError(f"max_threads must be at least 1, got {max_threads!r}")
        require_dispatch(_REASON)  # fail when the worker starts, not on its first task
        self._emit = emit
        self._max_threads = max_threads
        self._worker_name = worker_name
        self._runs: dict[str, _Run] = {}
        self._pool: ThreadPoolExecutor | None = threads
        self._owns_pool = threads is None
        self._busy = 0  # calls inside pool threads, abandoned ones included
        self._busy_lock = threading.Lock()
        self._closed = False

    async def __aenter__(self) -> WorkerRuntime:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def running(self) -> int:
        """How many runs have not yet reported their terminal event."""
        return len(self._runs)

    @property
    def busy_threads(self) -> int:
        """How many threads are inside a sync call, including ones whose run already ended."""
        return self._busy

    async def handle(self, frame: Frame) -> None:
        """Act on one verified command frame and return without waiting for the run.

        ``run_task`` starts a run (a second one for a run id that is still running is ignored,
        with a warning ``log`` frame); ``cancel_task`` cancels one (an unknown or finished run
        id is ignored); ``shutdown`` cancels every run, and later ``run_task`` frames are
        answered with a ``task_error`` from source ``"worker"``.

        Args:
            frame: a command frame whose signature the caller has already checked.
        """
        if isinstance(frame, RunTask):
            await self._start(frame)
        elif isinstance(frame, CancelTask):
            self._cancel(frame.run_id)
        elif isinstance(frame, Shutdown):
            self._closed = True
            self._cancel_all()
        else:
            await self._log(
                frame.run_id,
                "warning",
                f"worker ignored a {type(frame).__name__} frame: it accepts only run_task, "
                "cancel_task and shutdown",
            )

    async def drain(self) -> None:
        """Wait until every run, including ones started meanwhile, has reported its end."""
        while self._runs:
            tasks = {run.task for run in self._runs.values() if run.task is not None}
            await asyncio.wait(tasks)

    async def aclose(self) -> None:
        """Cancel every run, wait for their ``task_cancelled`` events, release the threads.

        Threads still inside a sync callable are left to finish on their own; see the class
        docstring. Calling it again does nothing more.
        """
        self._closed = True
        self._cancel_all()
        await self.drain()
        pool, self._pool = self._pool, None
        if pool is not None and self._owns_pool:
            pool.shutdown(wait=False, cancel_futures=True)
            if not self.busy_threads:  # idle threads exit at once; join them off the loop
                await asyncio.to_thread(pool.shutdown)

    # -- commands -----------------------------------------------------------------------------

    async def _start(self, frame: RunTask) -> None:
        try:
            check_run_id(frame.run_id)
        except InvalidOptionError as error:
            await self._log("", "error", f"run_task refused: {error}")
            return
        if self._closed:
            refusal = RuntimeError(
                f"worker {self._worker_name or '(unnamed)'} is shutting down; run "
                f"{frame.run_id!r} of task {frame.task_id!r} was not started"
            )
            await self._send(_error(frame.run_id, refusal, source="worker", retryable=True))
            return
        if frame.run_id in self._runs:
            await self._log(
                frame.run_id,
                "warning",
                f"run {frame.run_id!r} is already running here; ignored the duplicate run_task",
            )
            return
        run = _Run(frame)
        self._runs[frame.run_id] = run
        run.task = asyncio.create_task(self._run(run), name=f"wove-run-{frame.run_id}")

    def cancel(self, run_id: str) -> None:
        """Cancel ``run_id`` as a ``cancel_task`` frame would; call it on the runtime's loop."""
        self._cancel(run_id)

    def _cancel(self, run_id: str) -> None:
        run = self._runs.get(run_id)
        if run is None or run.finishing:
            logger.debug("cancel for run %r ignored: not running here (finished?)", run_id)
            return
        run.cancel_requested = True
        # A run whose coroutine has not started yet would be cancelled before its first line,
        # skipping the task_cancelled event; it sees cancel_requested when it starts instead.
        if run.started and run.task is not None:
            run.task.cancel()

    def _cancel_all(self) -> None:
        for run_id in list(self._runs):
            self._cancel(run_id)

    # -- one run ------------------------------------------------------------------------------

    async def _run(self, run: _Run) -> None:
        run.started = True
        frame = run.frame
        try:
            try:
                if run.cancel_requested:
                    terminal: Terminal = TaskCancelled(run_id=frame.run_id)
                else:
                    terminal = await self._attempt(frame)
            except asyncio.CancelledError:
                run.finishing = True
                await self._send(TaskCancelled(run_id=frame.run_id))
                raise
            except Exception as error:  # a fault in the runtime itself still ends the run once
                logger.exception("run %r failed inside the worker runtime", frame.run_id)
                terminal = _error(frame.run_id, error, source="worker", retryable=True)
            run.finishing = True
            await self._send(terminal)
        finally:
            del self._runs[frame.run_id]

    async def _attempt(self, frame: RunTask) -> Terminal:
        await self._send(TaskStarted(run_id=frame.run_id, worker=self._worker_name))
        interval = frame.delivery.heartbeat_seconds
        beating = None
        if interval is not None and interval > 0:
            beating = asyncio.create_task(self._heartbeat(frame.run_id, interval))
        try:
            return await self._execute(frame)
        finally:
            if beating is not None:
                beating.cancel()
                await asyncio.wait({beating})

    async def _heartbeat(self, run_id: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._send(Heartbeat(run_id=run_id))

    async def _execute(self, frame: RunTask) -> Terminal:
        """Load, call and report; ``frame.timeout`` bounds all of it."""
        work = self._call_async(frame) if frame.is_async else self._call_sync(frame)
        if frame.timeout is None:
            return await work
        attempt = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({attempt}, timeout=frame.timeout)
        except asyncio.CancelledError:
            attempt.cancel()
            await asyncio.wait({attempt})
            raise
        if done:
            return attempt.result()
        attempt.cancel()
        await asyncio.wait({attempt})
        expired = TimeoutError(f"task {frame.task_id!r} timed out after {frame.timeout:g}s")
        return _error(frame.run_id, expired, source="task", retryable=True)

    async def _call_sync(self, frame: RunTask) -> Terminal:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        outcome = await loop.run_in_executor(
            self._threads(), functools.partial(context.run, self._in_thread, _call_in_thread, frame)
        )
        if isinstance(outcome, _Pending):
            return await _settle(frame, outcome.awaitable)
        return outcome

    async def _call_async(self, frame: RunTask) -> Terminal:
        if len(frame.callable) + len(frame.args) > _INLINE_LOAD_BYTES:
            loop = asyncio.get_running_loop()
            loaded = await loop.run_in_executor(self._threads(), self._in_thread, _load, frame)
        else:
            loaded = _load(frame)
        if isinstance(loaded, TaskError):
            return loaded
        function, kwargs = loaded
        try:
            value = function(**kwargs)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # as in a thread: SystemExit from a task is its failure
            return _task_error(frame, error)
        if inspect.isawaitable(value):
            return await _settle(frame, value)
        return _result(frame, value)

    def _in_thread(self, function: Callable[[RunTask], _T], frame: RunTask) -> _T:
        with self._busy_lock:
            self._busy += 1
        try:
            return function(frame)
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._max_threads, thread_name_prefix="wove-worker")
        return self._pool

    # -- reporting ----------------------------------------------------------------------------

    async def _send(self, frame: Frame) -> None:
        try:
            await self._emit(frame)
        except Exception:
            logger.exception("could not report %s for run %r", type(frame).__name__, frame.run_id)

    async def _log(self, run_id: str, level: LogLevel, message: str) -> None:
        getattr(logger, level)(message)
        await self._send(LogRecord(run_id=run_id, level=level, message=message))


# -- the work itself: plain functions, so the sync path runs them in a thread -------------------


@functools.lru_cache(maxsize=256)
def _load_callable(data: bytes) -> Any:
    """Unpickle a callable once per distinct payload.

    A mapped task sends the same callable bytes with every item; rebuilding it each time would
    dominate small items. The bytes come from verified frames only, and the cached object is
    shared by the runs that sent identical bytes, as the one function object is in-process.
    """
    return loads(data, _REASON)


def _load(frame: RunTask) -> tuple[Callable[..., Any], dict[str, Any]] | TaskError:
    """Unpickle the callable and its keyword arguments (the frame is already verified)."""
    try:
        function = _load_callable(frame.callable)
    except Exception as error:
        return _load_error(frame, "callable", error)
    try:
        kwargs = loads(frame.args, _REASON)
    except Exception as error:
        return _load_error(frame, "arguments", error)
    if not callable(function):
        wrong = TypeError(f"the callable of task {frame.task_id!r} is a {_type_name(function)}")
        return _error(frame.run_id, wrong, source="serialization", retryable=False)
    if not isinstance(kwargs, dict) or not all(isinstance(name, str) for name in kwargs):
        wrong = TypeError(
            f"the arguments of task {frame.task_id!r} must be a dict of keyword arguments, "
            f"got a {_type_name(kwargs)}"
        )
        return _error(frame.run_id, wrong, source="serialization", retryable=False)
    return function, kwargs


def _call_in_thread(frame: RunTask) -> Terminal | _Pending:
    loaded = _load(frame)
    if isinstance(loaded, TaskError):
        return loaded
    function, kwargs = loaded
    try:
        value = function(**kwargs)
    except BaseException as error:  # SystemExit or KeyboardInterrupt from a task is its failure
        return _task_error(frame, error)
    if inspect.isawaitable(value):
        return _Pending(value)
    return _result(frame, value)


async def _settle(frame: RunTask, awaitable: Awaitable[Any]) -> Terminal:
    try:
        value = await awaitable
    except asyncio.CancelledError:
        raise
    except BaseException as error:
        return _task_error(frame, error)
    return _result(frame, value)


def _result(frame: RunTask, value: Any) -> TaskResult | TaskError:
    try:
        return TaskResult(run_id=frame.run_id, result=dumps(value, _REASON))
    except Exception as error:
        message = (
            f"task {frame.task_id!r} returned a {_type_name(value)}, which the dispatch "
            f"serializer cannot pickle: {_describe(error)}. Return plain data instead."
        )
        return _error(frame.run_id, error, source="serialization", retryable=False, message=message)


def _task_error(frame: RunTask, error: BaseException) -> TaskError:
    retryable = getattr(error, "retryable", True) is not False
    return _error(frame.run_id, error, source="task", retryable=retryable)


def _load_error(frame: RunTask, what: str, error: Exception) -> TaskError:
    message = (
        f"could not load the {what} of task {frame.task_id!r} on this worker: "
        f"{_type_name(error)}: {_describe(error)}. The worker needs the same code and packages "
        "as the weave that sent it."
    )
    return _error(frame.run_id, error, source="serialization", retryable=False, message=message)


def _error(
    run_id: str,
    error: BaseException,
    *,
    source: str,
    retryable: bool,
    message: str | None = None,
) -> TaskError:
    """Describe ``error`` without pickle, and pickle it too when it can be."""
    try:
        formatted = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    except Exception:
        formatted = ""
    try:
        pickled: bytes | None = dumps(error, _REASON)
    except Exception:
        logger.debug("run %r: the %s cannot be pickled", run_id, _type_name(error))
        pickled = None
    normalized = NormalizedError(
        kind=_type_name(error),
        message=_describe(error) if message is None else message,
        traceback=formatted,
        retryable=retryable,
        source=source,
    )
    return TaskError(run_id=run_id, error=normalized, exception=pickled)


def _type_name(value: object) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _describe(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return f"<{_type_name(error)} whose str() failed>"


# -- backend entry points -----------------------------------------------------------------------


def verify_payload(payload: bytes | str, *, security: Security | None = None) -> RunTask:
    """Check a backend payload's signature, then decode the ``run_task`` frame it holds.

    Args:
        payload: one line in :class:`~wove._security.LineCodec` format
            (``<signature header>\\t<json body>``, trailing newline optional).
        security: the shared secret; by default it comes from ``WOVE_SECRET`` (and
            ``WOVE_SECRET_KEY_ID``). Without either, an unsigned payload is accepted only when
            ``WOVE_INSECURE=1``.

    Returns:
        The verified frame; nothing in it has been unpickled yet.

    Raises:
        FrameRejectedError: a missing, forged, tampered, expired or replayed signature, or a
            payload that is not exactly one ``run_task`` frame.
    """
    frame = _verified(payload, security if security is not None else _security_from_env())
    if not isinstance(frame, RunTask):
        raise FrameRejectedError(
            f"payload refused: expected a run_task frame, got {type(frame).__name__}"
        )
    return frame


def _verified(payload: bytes | str, security: Security | None) -> RunTask | PayloadRef:
    line = payload.encode() if isinstance(payload, str) else bytes(payload)
    line = line.rstrip(b"\r\n")
    if b"\n" in line:
        raise FrameRejectedError("payload refused: it must be exactly one line")
    if security is None:
        if b"\t" in line:
            raise FrameRejectedError(
                f"payload refused: it is signed, but {SECRET_ENV} is not set on this worker "
                "to check it. Give the worker the environment's shared secret."
            )
        if os.environ.get(INSECURE_ENV) != "1":
            raise FrameRejectedError(
                f"unsigned payload refused: set {SECRET_ENV} to the environment's shared "
                f"secret, or {INSECURE_ENV}=1 to accept unsigned payloads on a trusted network"
            )
    try:
        frame = LineCodec(security).decode(line)
    except FrameRejectedError:
        raise
    except Exception as error:  # a checker bug must still refuse, never let the payload through
        raise FrameRejectedError(f"payload refused: it could not be checked ({error!r})") from None
    if not isinstance(frame, (RunTask, PayloadRef)):
        raise FrameRejectedError(
            f"payload refused: expected a run_task frame, got {type(frame).__name__}"
        )
    return frame


async def _resolve(payload: bytes | str, security: Security | None) -> RunTask:
    """Verify ``payload``; when it is a reference, fetch the run it points at and verify that."""
    frame = _verified(payload, security)
    if isinstance(frame, RunTask):
        return frame
    if security is None:
        raise FrameRejectedError(
            f"payload reference refused: fetching a payload needs {SECRET_ENV} to sign the request"
        )
    from ._reporter import fetch_payload

    fetched = _verified(await fetch_payload(frame, security), security)
    if not isinstance(fetched, RunTask) or fetched.run_id != frame.run_id:
        raise FrameRejectedError(
            f"payload refused: the server answered the payload of run {frame.run_id!r} with "
            "something else"
        )
    return fetched


@functools.lru_cache(maxsize=4)
def _cached_security(secret: str, key_id: str) -> Security:
    # One instance per secret, so its replay cache spans every payload this process runs.
    return Security(secret, key_id=key_id)


def _security_from_env() -> Security | None:
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        return None
    return _cached_security(secret, os.environ.get(SECRET_KEY_ID_ENV) or "default")


async def arun(
    payload: bytes | str,
    *,
    security: Security | None = None,
    on_event: Callable[[Frame], None] | None = None,
) -> Terminal:
    """Verify a backend payload, run its task, and return the terminal event.

    When the payload names a callback server (``delivery.callback``; backend adapters always
    set it), the run is first claimed there, every event is posted to it as it happens, and a
    cancel the weave asks for stops the run -- see :mod:`wove.integrations._reporter`. A
    payload too large for its backend arrives as a reference and is fetched from there first.

    Args:
        payload: the signed ``run_task`` line the adapter submitted (see :func:`verify_payload`).
        security: the shared secret; by default built from ``WOVE_SECRET``.
        on_event: called on the event loop with every event, the terminal one included.

    Returns:
        The run's :class:`TaskResult`, :class:`TaskError` or :class:`TaskCancelled`.

    Raises:
        FrameRejectedError: the payload failed verification; nothing was unpickled or run.
        RunNotClaimedError: another worker already started this run, or the weave no longer
            waits for it; nothing was unpickled or run.
        Exception: the first exception ``on_event`` raised, once the run has ended.
    """
    from ._loop import worker_threads

    if security is None:
        security = _security_from_env()
    frame = await _resolve(payload, security)
    terminal: Terminal | None = None
    callback_errors: list[Exception] = []
    worker_name = f"{socket.gethostname()}:{os.getpid()}"

    async def observe(event: Frame) -> None:
        nonlocal terminal
        if isinstance(event, TERMINAL_EVENTS):
            terminal = event
        if on_event is not None:
            try:
                on_event(event)
            except Exception as error:
                callback_errors.append(error)
                raise

    if frame.delivery.callback is None:
        async with WorkerRuntime(
            observe, worker_name=worker_name, threads=worker_threads()
        ) as runtime:
            await runtime.handle(frame)
            await runtime.drain()
    else:
        if security is None:
            raise FrameRejectedError(
                f"run {frame.run_id!r} reports to a callback server, which needs {SECRET_ENV} "
                "on this worker to sign its events"
            )
        from ._reporter import CallbackReporter

        runtimes: list[WorkerRuntime] = []
        cancelled_early = False

        def cancel() -> None:
            nonlocal cancelled_early
            cancelled_early = not runtimes  # the answer to the claim itself says "cancel"
            for runtime in runtimes:
                runtime.cancel(frame.run_id)

        async with CallbackReporter(frame, security, on_cancel=cancel) as reporter:
            await reporter.claim(worker_name)

            async def emit(event: Frame) -> None:
                try:
                    await observe(event)
                finally:
                    await reporter.emit(event)

            if cancelled_early:
                await emit(TaskCancelled(run_id=frame.run_id))
            else:
                async with WorkerRuntime(
                    emit, worker_name=worker_name, threads=worker_threads()
                ) as runtime:
                    runtimes.append(runtime)
                    await runtime.handle(frame)
                    await runtime.drain()
    if callback_errors:
        raise callback_errors[0]
    if terminal is None:  # every run reports one; this would be a runtime bug
        raise RuntimeError(f"run {frame.run_id!r} ended without a terminal event")
    return terminal


def run(
    payload: bytes | str,
    *,
    security: Security | None = None,
    on_event: Callable[[Frame], None] | None = None,
) -> Terminal:
    """Blocking twin of :func:`arun`, for backends whose workers call plain functions.

    The run happens on one event loop per worker process, in a daemon thread, so connections to
    the callback server are reused from task to task; ``on_event`` is called on that loop's
    thread. Any number of threads may call it at once.

    Example:
        >>> # inside a Celery task, an RQ job, a Kubernetes Job's command...
        >>> event = run(payload)  # doctest: +SKIP
        >>> isinstance(event, TaskResult)  # doctest: +SKIP
        True
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        from ._loop import run_on_worker_loop

        return run_on_worker_loop(arun(payload, security=security, on_event=on_event))
    raise WeaveUsageError(
        "wove.integrations.worker.run() was called with an event loop running in this thread; "
        "use `await wove.integrations.worker.arun(payload)` there instead"
    )


_OUTCOMES: Final[dict[type[Terminal], JobOutcome]] = {
    TaskResult: TASK_RESULT,
    TaskError: TASK_ERROR,
    TaskCancelled: TASK_CANCELLED,
}


def _not_claimed(error: RunNotClaimedError) -> JobOutcome:
    # A redelivered or retried message, a replayed payload, or a job cancelled while it was
    # queued: another copy ran the task or nobody waits for it, which is not a failure.
    _job_logger.info("Wove run not started here: %s", error)
    return NOT_CLAIMED


async def arun_job(payload: bytes | str, *, security: Security | None = None) -> JobOutcome:
    """Run one backend payload as a task system's job; the async twin of :func:`run_job`.

    Call it from an async job function (ARQ, Taskiq, a Temporal activity). The task's value,
    error or cancellation travels to the weave through the callback server, so the job returns
    only a word for the task system's own result store and logs.

    Args:
        payload: the signed ``run_task`` line the adapter submitted (see :func:`verify_payload`).
        security: the shared secret; by default built from ``WOVE_SECRET``.

    Returns:
        The terminal event's type tag -- ``"task_result"``, ``"task_error"`` or
        ``"task_cancelled"`` -- or ``"not_claimed"`` when the run was not started here
        (another copy claimed it, or no weave waits for it any more); that case is logged at
        INFO on the ``wove.worker`` logger, and nothing in the payload was unpickled.

    Raises:
        FrameRejectedError: a forged, tampered, expired or replayed payload; nothing was
            unpickled or run. It propagates so the task system records a failed job.
        Exception: the run could not be reported (for example the callback server is down).
    """
    try:
        terminal = await arun(payload, security=security)
    except RunNotClaimedError as error:
        return _not_claimed(error)
    return _OUTCOMES[type(terminal)]


def run_job(payload: bytes | str, *, security: Security | None = None) -> JobOutcome:
    """Run one backend payload as a task system's job, and say in one word how it ended.

    This is the body of the function a task system runs for every Wove job (a Celery task, an
    RQ job, a Dask or Ray task, a Batch container's command). It wraps :func:`run` the way
    every backend needs: the task's value, error or cancellation travels to the weave through
    the callback server, never through the task system, so the task system's result store gets
    only a tiny word, the same in every backend. A duplicate delivery is not a failure: it is
    logged and reported as ``"not_claimed"``.

    Args:
        payload: the signed ``run_task`` line the adapter submitted (see :func:`verify_payload`).
        security: the shared secret; by default built from ``WOVE_SECRET``.

    Returns:
        ``"task_result"``, ``"task_error"`` or ``"task_cancelled"`` (the type tag of the
        terminal event the weave received), or ``"not_claimed"`` when the run was not started
        here -- another copy already claimed it, or no weave waits for it any more. That case
        is logged at INFO on the ``wove.worker`` logger; nothing in the payload was unpickled.

    Raises:
        FrameRejectedError: a forged, tampered, expired or replayed payload; nothing was
            unpickled or run. It propagates so the task system records a failed job.
        WeaveUsageError: called with an event loop running in this thread; use
            :func:`arun_job` there.
        Exception: the run could not be reported (for example the callback server is down).

    Example:
        >>> @app.task(name="wove.run")  # doctest: +SKIP
        ... def run_wove_payload(payload: str) -> str:
        ...     return run_job(payload)
    """
    try:
        terminal = run(payload, security=security)
    except RunNotClaimedError as error:
        return _not_claimed(error)
    return _OUTCOMES[type(terminal)]


def preload() -> None:
    """Import now what the first job in this process would import when it runs.

    That is the worker's event loop and thread pool, the callback reporter with its HTTP client
    (aiohttp) and the dispatch serializer (cloudpickle). A forking worker (RQ's ``Worker``, a
    prefork pool) calls it before it forks, so every child starts with them loaded instead of
    importing them for each job. A missing optional library is skipped here; the job that
    needs it reports it with the install line.
    """
    for library in ("aiohttp", "cloudpickle"):
        try:
            importlib.import_module(library)
        except ImportError:  # reported by the job that needs it
            logger.debug("preload: %s is not installed", library)
    from . import _loop, _reporter  # noqa: F401  (imported to be loaded, not used here)
