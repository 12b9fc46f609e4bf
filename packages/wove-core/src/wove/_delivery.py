"""Getting a task to another process and its outcome back: deadlines, heartbeats, orphans,
cancellation, idempotency keys and the cap on runs in flight.

Remote executors live on one process-wide *dispatch loop*, a daemon thread with its own event
loop, so a worker pool or connection is shared by every weave in the process whatever loop or
thread the weave runs on, and so a busy weave never delays event intake. A weave hands a run to
the dispatch loop and awaits a future on its own loop; the dispatcher resolves that future with
exactly one outcome: a result, an error, a cancellation, or a delivery failure.

A run is *orphaned* when Wove loses track of it: no event for three heartbeat intervals after
it started, its worker died (the executor reports ``source="orphaned"``), or the executor's
event stream broke. ``delivery_orphan_policy`` then decides: ``fail`` fails the task with
:class:`DeliveryOrphanedError`; ``cancel`` also sends ``cancel_task`` first; ``requeue``
resubmits the task once before failing; ``detach`` fails the task like ``fail`` and, when the
weave stops early, leaves the run alone instead of cancelling it.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final, TypeVar

from ._errors import (
    DeliveryOrphanedError,
    DeliveryTimeoutError,
    EnvironmentExecutionError,
    InvalidOptionError,
)
from ._executor import Executor
from ._frames import (
    CancelTask,
    Delivery,
    Heartbeat,
    LogRecord,
    NormalizedError,
    RunTask,
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskStarted,
    new_run_id,
)
from ._options import TaskSettings
from ._serializer import dumps, loads
from ._threads import inbox_for

__all__ = [
    "HEARTBEAT_WINDOW",
    "Dispatcher",
    "InFlightLimit",
    "Outcome",
    "PositionalCall",
    "dispatch_loop",
    "in_flight_limit",
    "rebuild_exception",
    "register_dispatcher",
    "resolve_idempotency_key",
    "run_remote",
    "stop_dispatchers",
    "submit_to_dispatch_loop",
]

logger = logging.getLogger("wove.delivery")

T = TypeVar("T")

#: A started run that sends nothing for this many heartbeat intervals is orphaned.
HEARTBEAT_WINDOW: Final = 3.0
#: How long a weave waits for a ``task_cancelled`` acknowledgement with ``require_ack``.
CANCEL_ACK_SECONDS: Final = 30.0


class _DispatchLoop:
    """One daemon thread running the event loop that every remote executor lives on."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                new_loop = asyncio.new_event_loop()

                def serve() -> None:
                    asyncio.set_event_loop(new_loop)
                    new_loop.call_soon(ready.set)
                    new_loop.run_forever()

                threading.Thread(target=serve, name="wove-dispatch", daemon=True).start()
                ready.wait()
                self._loop = new_loop
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coroutine`` on the dispatch loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def is_current(self) -> bool:
        return self._loop is not None and asyncio._get_running_loop() is self._loop


dispatch_loop: Final = _DispatchLoop()


def submit_to_dispatch_loop(coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coroutine`` on the dispatch loop, where out-of-process executors live.

    Use it for objects bound to the event loop that created them, such as a backend client
    handed to an environment in its ``executor_config``: create them here so the executor can
    use them. Call it from any thread; code already running on the dispatch loop awaits the
    coroutine instead, since waiting there for the future would block the loop.

    Returns:
        A :class:`concurrent.futures.Future` with the coroutine's result.

    Example:
        >>> async def answer() -> int:
        ...     return 42
        >>> submit_to_dispatch_loop(answer()).result(timeout=10)
        42
    """
    return dispatch_loop.run(coroutine)


class InFlightLimit:
    """A process-wide cap on runs in flight, usable from any event loop in any thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]
        self._waiters = collections.deque()

    @property
    def in_flight(self) -> int:
        return self._count

    def resize(self, limit: int) -> None:
        """Change the cap; a larger one admits waiters now, a smaller one as runs finish."""
        with self._lock:
            grow = max(0, limit - self.limit)
            self.limit = limit
        for _ in range(grow):
            with self._lock:
                if not self._waiters:
                    return
                self._count += 1
            self.release()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._count < self.limit:
                self._count += 1
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                try:
                    self._waiters.remove((loop, waiter))
                    handed_over = False
                except ValueError:
                    handed_over = True
            if handed_over:
                self.release()  # the slot reached us as we were cancelled: pass it on
            raise

    def release(self) -> None:
        with self._lock:
            if self._count > self.limit:  # the cap shrank: retire this slot
                self._count -= 1
                return
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._hand_over, waiter)
                    return
                except RuntimeError:
                    continue  # that waiter's loop is closed
            self._count -= 1

    def _hand_over(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():
            self.release()
        else:
            waiter.set_result(None)


_limits: dict[str, InFlightLimit] = {}
_limits_lock = threading.Lock()


def in_flight_limit(environment: str, limit: int) -> InFlightLimit:
    """The one process-wide cap of ``environment``; when runs ask for different sizes, the
    most recent request sets it."""
    with _limits_lock:
        found = _limits.get(environment)
        if found is None:
            found = _limits[environment] = InFlightLimit(limit)
        elif found.limit != limit:
            found.resize(limit)
        return found


def resolve_idempotency_key(
    setting: Any, task: str, item: Any = None, index: int | None = None
) -> str | None:
    """Turn ``delivery_idempotency_key`` into the key for one run.

    A callable is called with the item (mapped tasks) or with no arguments; a string containing
    ``{`` is formatted with ``task``, ``item`` and ``index``; any other value is used as text,
    with ``-<index>`` appended for mapped items so items never share a key.
    """
    if setting is None:
        return None
    if callable(setting):
        value = setting(item) if index is not None else setting()
    elif isinstance(setting, str) and "{" in setting:
        try:
            value = setting.format(task=task, item=item, index=index)
        except (KeyError, IndexError, AttributeError) as error:
            raise InvalidOptionError(
                f"delivery_idempotency_key {setting!r} for task {task!r} could not be formatted "
                f"({error!r}); it may use {{task}}, {{item}} and {{index}}"
            ) from None
    else:
        value = setting if index is None else f"{setting}-{index}"
    return None if value is None else str(value)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a run ended: exactly one of ``result`` (bytes), ``error`` or ``cancelled``."""

    result: bytes | None = None
    error: BaseException | TaskError | None = None
    cancelled: bool = False


class _Run:
    """One submission, tracked on the dispatch loop until its single outcome is delivered."""

    __slots__ = (
        "cancel_ack",
        "deliver",
        "done",
        "frame",
        "last_seen",
        "requeued",
        "settings",
        "started",
    )

    def __init__(
        self, frame: RunTask, settings: TaskSettings, deliver: Callable[[Outcome], None]
    ) -> None:
        self.frame = frame
        self.settings = settings
        self.deliver = deliver
        self.started = False
        self.last_seen = time.monotonic()
        self.requeued = False
        self.done = False
        self.cancel_ack: asyncio.Future[None] | None = None


class Dispatcher:
    """Owns one remote executor on the dispatch loop: submits runs and routes their events."""

    def __init__(self, executor: Executor, environment_name: str) -> None:
        self.executor = executor
        self.environment_name = environment_name
        self._runs: dict[str, _Run] = {}
        self._pump: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._needs_restart = False
        self._outgoing: collections.deque[_Run] = collections.deque()
        self._sender: asyncio.Task[None] | None = None

    @property
    def is_started(self) -> bool:
        return self._started

    # -- lifecycle (dispatch loop) ------------------------------------------------------------
    async def start(
        self, executor_config: Mapping[str, Any], run_config: Mapping[str, Any]
    ) -> None:
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self.is_started:
                return
            if self._needs_restart:
                self._needs_restart = False
                if self._watchdog is not None:
                    self._watchdog.cancel()
                try:
                    await self.executor.stop()
                except Exception:
                    logger.warning(
                        "stopping the broken executor of %r failed",
                        self.environment_name,
                        exc_info=True,
                    )
            await self.executor.start(self.environment_name, executor_config, run_config)
            self._pump = asyncio.get_running_loop().create_task(self._read_events())
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_heartbeats())
            self._started = True

    async def stop(self) -> None:
        if self._start_lock is not None:
            async with self._start_lock:  # let a start in progress finish before stopping
                await self._stop()
        else:
            await self._stop()

    async def _stop(self) -> None:
        for task in (self._pump, self._watchdog):
            if task is not None:
                task.cancel()
        for task in (self._pump, self._watchdog):
            if task is not None:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._fail_all("the environment was stopped while the run was in flight")
        if self._started:
            await self.executor.stop()
        self._started = False

    # -- runs (called from the weave's loop) ----------------------------------------------
    async def execute(
        self, frame: RunTask, settings: TaskSettings, limit: InFlightLimit | None
    ) -> Outcome:
        """Submit ``frame`` and wait for its one outcome, honouring the delivery options."""
        if limit is not None:
            await limit.acquire()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Outcome] = loop.create_future()
        inbox = inbox_for(loop)

        def deliver(outcome: Outcome) -> None:
            inbox.put(_resolve_waiter, waiter, outcome)  # a closed loop: nobody waits any more

        run = _Run(frame, settings, deliver)
        dispatch = dispatch_loop.loop
        # The task's own ``timeout`` counts from here, after any wait for an in-flight slot.
        deadlines = [
            (seconds, kind)
            for seconds, kind in ((settings.timeout, "timeout"), (settings.delivery_timeout, ""))
            if seconds is not None
        ]
        try:
            inbox_for(dispatch).put(self._submit, run)
            if not deadlines:
                return await waiter
            seconds, kind = min(deadlines)
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), seconds)
            except (asyncio.TimeoutError, TimeoutError):
                dispatch.call_soon_threadsafe(self._abandon, frame.run_id, True)
                if kind == "timeout":
                    raise TimeoutError(
                        f"task {frame.task_id!r} timed out after {seconds:g}s "
                        f"(run {frame.run_id!r}; a cancel was sent)"
                    ) from None
                raise DeliveryTimeoutError(
                    f"no result for run {frame.run_id!r} of environment "
                    f"{self.environment_name!r} within delivery_timeout={seconds:g}s; "
                    "a cancel was sent"
                ) from None
        except asyncio.CancelledError:
            await self._cancel_from_weave(run)
            raise
        finally:
            if limit is not None:
                limit.release()

    async def _cancel_from_weave(self, run: _Run) -> None:
        """The weave stopped waiting: cancel the run unless it is detached; maybe await ack."""
        dispatch = dispatch_loop.loop
        if run.settings.delivery_orphan_policy == "detach":
            dispatch.call_soon_threadsafe(self._abandon, run.frame.run_id, False)
            return
        if run.settings.delivery_cancel_mode != "require_ack":
            dispatch.call_soon_threadsafe(self._abandon, run.frame.run_id, True)
            return
        acknowledged = asyncio.run_coroutine_threadsafe(self._cancel_and_wait(run), dispatch)
        try:
            await asyncio.wait_for(asyncio.wrap_future(acknowledged), CANCEL_ACK_SECONDS)
        except (asyncio.TimeoutError, TimeoutError):
            logger.warning(
                "run %s of environment %r did not acknowledge its cancellation within %gs",
                run.frame.run_id,
                self.environment_name,
                CANCEL_ACK_SECONDS,
            )

    # -- dispatch-loop side ---------------------------------------------------------------
    def _submit(self, run: _Run) -> None:
        self._runs[run.frame.run_id] = run
        self._outgoing.append(run)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_queued())

    async def _send_queued(self) -> None:
        """Send queued runs in order; one task serves a whole burst of submissions."""
        outgoing = self._outgoing
        while outgoing:
            run = outgoing.popleft()
            if not run.done:
                await self._send_run(run)

    async def _send_run(self, run: _Run) -> None:
        try:
            await self.executor.send(run.frame)
        except Exception as error:
            self._finish(
                run,
                Outcome(
                    error=EnvironmentExecutionError(
                        f"could not deliver run {run.frame.run_id!r} to environment "
                        f"{self.environment_name!r}: {type(error).__name__}: {error}",
                        kind=f"{type(error).__module__}.{type(error).__qualname__}",
                        source="transport",
                    )
                ),
            )

    async def _cancel_and_wait(self, run: _Run) -> None:
        if run.done:
            return
        run.cancel_ack = asyncio.get_running_loop().create_future()
        await self._send_cancel(run.frame.run_id)
        await run.cancel_ack

    def _abandon(self, run_id: str, send_cancel: bool) -> None:
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        run.done = True
        if send_cancel:
            asyncio.get_running_loop().create_task(self._send_cancel(run_id))

    async def _send_cancel(self, run_id: str) -> None:
        try:
            await self.executor.send(CancelTask(run_id=run_id))
        except Exception:
            logger.warning("could not send cancel_task for run %s", run_id, exc_info=True)

    def _finish(self, run: _Run, outcome: Outcome) -> None:
        if run.done:
            return
        run.done = True
        self._runs.pop(run.frame.run_id, None)
        if run.cancel_ack is not None and not run.cancel_ack.done():
            run.cancel_ack.set_result(None)  # finished some other way: nothing left to cancel
        run.deliver(outcome)

    async def _read_events(self) -> None:
        try:
            while True:
                frame = await self.executor.recv()
                self._route(frame)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.error("event stream of environment %r broke: %r", self.environment_name, error)
            for run in list(self._runs.values()):
                self._orphaned(run, f"the executor's event stream broke ({error!r})")
            # Mark the executor as needing a fresh start: the next run stops and restarts it.
            self._started = False
            self._needs_restart = True

    def _route(self, frame: Any) -> None:
        run = self._runs.get(frame.run_id)
        if (
            isinstance(frame, TaskCancelled)
            and run is not None
            and run.cancel_ack is not None
            and not run.cancel_ack.done()
        ):
            run.cancel_ack.set_result(None)
        if run is None:
            if isinstance(frame, LogRecord) and frame.level in ("warning", "error"):
                logger.warning("worker of environment %r: %s", self.environment_name, frame.message)
            return
        run.last_seen = time.monotonic()
        if isinstance(frame, TaskResult):
            self._finish(run, Outcome(result=frame.result))
        elif isinstance(frame, TaskError):
            if frame.error.source == "orphaned":
                self._orphaned(run, frame.error.message)
            else:
                self._finish(run, Outcome(error=frame))
        elif isinstance(frame, TaskCancelled):
            self._finish(run, Outcome(cancelled=True))
        elif isinstance(frame, TaskStarted):
            run.started = True
        elif isinstance(frame, LogRecord):
            logger.log(
                logging.getLevelName(frame.level.upper()),
                "run %s: %s",
                frame.run_id,
                frame.message,
            )
        elif not isinstance(frame, Heartbeat):
            logger.warning("ignoring unexpected %s frame for run %s", type(frame).__name__, frame)

    def _orphaned(self, run: _Run, reason: str) -> None:
        policy = run.settings.delivery_orphan_policy
        if policy == "requeue" and not run.requeued:
            run.requeued = True
            run.started = False
            run.last_seen = time.monotonic()
            old_id = run.frame.run_id
            self._runs.pop(old_id, None)
            attempt = run.frame.delivery.attempt + 1
            delivery = Delivery(
                heartbeat_seconds=run.frame.delivery.heartbeat_seconds,
                timeout=run.frame.delivery.timeout,
                idempotency_key=run.frame.delivery.idempotency_key,
                attempt=attempt,
            )
            run.frame = RunTask(
                run_id=new_run_id(run.frame.task_id),
                task_id=run.frame.task_id,
                callable=run.frame.callable,
                args=run.frame.args,
                delivery=delivery,
                is_async=run.frame.is_async,
                timeout=run.frame.timeout,
            )
            logger.warning("run %s orphaned (%s); requeued as %s", old_id, reason, run.frame.run_id)
            self._submit(run)
            return
        if policy == "cancel":
            asyncio.get_running_loop().create_task(self._send_cancel(run.frame.run_id))
        self._finish(
            run,
            Outcome(
                error=DeliveryOrphanedError(
                    f"run {run.frame.run_id!r} of task {run.frame.task_id!r} in environment "
                    f"{self.environment_name!r} was orphaned: {reason} "
                    f"(delivery_orphan_policy={policy!r})"
                )
            ),
        )

    def _fail_all(self, reason: str) -> None:
        for run in list(self._runs.values()):
            self._finish(
                run, Outcome(error=DeliveryOrphanedError(f"run {run.frame.run_id!r}: {reason}"))
            )

    async def _watch_heartbeats(self) -> None:
        while True:
            intervals = [
                run.settings.delivery_heartbeat_seconds
                for run in self._runs.values()
                if run.settings.delivery_heartbeat_seconds
            ]
            await asyncio.sleep(min(intervals, default=1.0) / 2)
            now = time.monotonic()
            for run in list(self._runs.values()):
                interval = run.settings.delivery_heartbeat_seconds
                if not interval or not run.started:
                    continue
                silent = now - run.last_seen
                if silent > HEARTBEAT_WINDOW * interval:
                    self._orphaned(
                        run,
                        f"no heartbeat for {silent:.1f}s (delivery_heartbeat_seconds={interval:g})",
                    )


def _resolve_waiter(waiter: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not waiter.done():
        waiter.set_result(outcome)


_dispatchers: list[Dispatcher] = []


def register_dispatcher(dispatcher: Dispatcher) -> Dispatcher:
    """Remember ``dispatcher`` so it is stopped when the interpreter exits."""
    _dispatchers.append(dispatcher)
    return dispatcher


def stop_dispatchers(timeout: float = 10.0) -> None:
    """Stop every started dispatcher (and its executor), waiting at most ``timeout`` each."""
    stopping = list(_dispatchers)
    _dispatchers.clear()
    if not stopping or dispatch_loop._loop is None:
        return
    for dispatcher in stopping:
        try:
            dispatch_loop.run(dispatcher.stop()).result(timeout)
        except Exception:
            logger.warning(
                "stopping environment %r failed", dispatcher.environment_name, exc_info=True
            )


atexit.register(stop_dispatchers)


async def run_remote(
    dispatcher: Dispatcher,
    *,
    task: str,
    callable_bytes: bytes,
    args: Mapping[str, Any],
    is_async: bool,
    settings: TaskSettings,
    idempotency_key: str | None,
    limit: InFlightLimit | None,
    attempt: int = 1,
) -> Any:
    """Run one call remotely and return its value or raise its exception, as a local call would.

    A retry (``attempt`` > 1) is a new run whose idempotency key gets ``-retry<n>``, so a
    backend that deduplicates by key runs it instead of treating it as a duplicate; a requeue
    after an orphaned run keeps the key, because the first run may still be alive.

    The callable and arguments cross as dispatch-serializer bytes; the executor verified every
    event before handing it over, so unpickling here only ever sees authenticated data.
    """
    frame = RunTask(
        run_id=new_run_id(task),
        task_id=task,
        callable=callable_bytes,
        args=dumps(args, _REASON),
        is_async=is_async,
        timeout=settings.timeout,
        delivery=Delivery(
            heartbeat_seconds=settings.delivery_heartbeat_seconds,
            timeout=settings.delivery_timeout,
            idempotency_key=(
                f"{idempotency_key}-retry{attempt - 1}"
                if idempotency_key is not None and attempt > 1
                else idempotency_key
            ),
            attempt=attempt,
        ),
    )
    outcome = await dispatcher.execute(frame, settings, limit)
    if outcome.result is not None:
        return loads(outcome.result, _REASON)
    if outcome.cancelled:
        raise EnvironmentExecutionError(
            f"run {frame.run_id!r} of task {task!r} was cancelled by its worker "
            "(the worker shut down or was told to stop by someone else)",
            kind="wove.RemoteCancelled",
            source="worker",
        )
    error = outcome.error
    if isinstance(error, TaskError):
        raise rebuild_exception(error)
    assert error is not None
    raise error


_REASON: Final = "running a task in another process"


class PositionalCall:
    """Calls a function with one item positionally; ``merge()`` sends its callable wrapped so,
    since a remote run passes arguments by keyword."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def __call__(self, item: Any) -> Any:
        return self.func(item)


def rebuild_exception(frame: TaskError) -> BaseException:
    """The worker's exception, or :class:`EnvironmentExecutionError` when it cannot be rebuilt.

    A rebuilt exception carries the remote traceback as a note (Python 3.11+).
    """
    described = frame.error
    # Only the task's own exceptions are rebuilt; a failure of the worker around the task
    # (serialization, loading, the transport) keeps the worker's description of it.
    if frame.exception is not None and described.source == "task":
        try:
            rebuilt = loads(frame.exception, _REASON)
        except Exception:
            rebuilt = None
        if isinstance(rebuilt, BaseException):
            if described.traceback and hasattr(rebuilt, "add_note"):
                rebuilt.add_note(f"Remote traceback:\n{described.traceback.rstrip()}")
            if not described.retryable:
                try:
                    rebuilt.retryable = False  # type: ignore[attr-defined]
                except AttributeError:
                    return _described_error(described)
            return rebuilt
    return _described_error(described)


def _described_error(described: NormalizedError) -> EnvironmentExecutionError:
    return EnvironmentExecutionError(
        f"{described.kind}: {described.message}",
        kind=described.kind,
        remote_traceback=described.traceback,
        retryable=described.retryable,
        source=described.source,
    )
