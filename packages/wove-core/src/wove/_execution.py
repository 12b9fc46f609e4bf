"""How one task's callable is invoked: attempts, retries with backoff, timeouts, rate limits,
and the strategies for mapped tasks.

The scheduler decides *when* a task runs; this module decides *how*. Both graph tasks and
``merge()`` go through it, so the same options mean the same thing everywhere.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from ._options import TaskSettings

__all__ = [
    "RateLimiter",
    "backoff_delay",
    "check_max_pending",
    "is_retryable",
    "run_async_attempts",
    "run_mapped",
    "run_sync_attempts",
    "with_timeout",
]

#: Longest pause between two attempts, whatever ``retry_backoff`` and the attempt number say.
MAX_BACKOFF_SECONDS: Final = 60.0


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` may be retried; errors marked ``retryable = False`` may not."""
    return getattr(error, "retryable", True) is not False


def backoff_delay(base: float, attempt: int, jitter: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential, half jittered."""
    if base <= 0:
        return 0.0
    ceiling: float = min(MAX_BACKOFF_SECONDS, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + ceiling / 2 * jitter()


class RateLimiter:
    """Spaces starts evenly, ``60 / per_minute`` seconds apart, so no minute sees more than
    ``per_minute`` starts. Safe to share between the event loop and worker threads."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 60.0 / per_minute
        self._clock = clock
        self._next_slot: float | None = None
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Claim the next start slot; return how many seconds to wait for it."""
        with self._lock:
            now = self._clock()
            slot = now if self._next_slot is None else max(now, self._next_slot)
            self._next_slot = slot + self.interval
            return slot - now

    async def acquire(self) -> None:
        """Wait for the next slot; always yields once, so paced work interleaves fairly."""
        await asyncio.sleep(max(self.reserve(), 0.0))

    def acquire_blocking(self) -> None:
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)


def check_max_pending(what: str, count: int, max_pending: int | None) -> None:
    """Fail a mapped task (or mapped ``merge``) with more items than ``max_pending``.

    Raises:
        RuntimeError: too many items; the task fails before any item runs (as in wove 2.x).
    """
    if max_pending is not None and count > max_pending:
        raise RuntimeError(
            f"{what} has {count} items, more than max_pending={max_pending}. "
            "Raise max_pending or map fewer items."
        )


def _timed_out(name: str, seconds: float) -> TimeoutError:
    return TimeoutError(f"task {name!r} timed out after {seconds:g}s")


if sys.version_info >= (3, 11):

    async def with_timeout(awaitable: Awaitable[Any], seconds: float, name: str) -> Any:
        """Await ``awaitable``, failing with ``TimeoutError`` naming the task after ``seconds``."""
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise _timed_out(name, seconds) from None
            raise

else:  # pragma: no cover - exercised on Python 3.10 only

    async def with_timeout(awaitable: Awaitable[Any], seconds: float, name: str) -> Any:
        """Await ``awaitable``, failing with ``TimeoutError`` naming the task after ``seconds``."""
        try:
            return await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError:
            raise _timed_out(name, seconds) from None


async def run_async_attempts(
    name: str, call: Callable[[], Awaitable[Any]], settings: TaskSettings
) -> Any:
    """Await ``call()``; on failure retry up to ``settings.retries`` more times."""
    attempt = 0
    while True:
        try:
            if settings.timeout is None:
                return await call()
            return await with_timeout(call(), settings.timeout, name)
        except Exception as error:
            if attempt >= settings.retries or not is_retryable(error):
                raise
            attempt += 1
            delay = backoff_delay(settings.retry_backoff, attempt)
            if delay:
                await asyncio.sleep(delay)


async def run_sync_attempts(
    name: str, call: Callable[[], Any], settings: TaskSettings, pool: ThreadPoolExecutor
) -> Any:
    """Run ``call()`` in ``pool`` with retries and timeout.

    A thread cannot be interrupted: when a sync attempt times out, its thread finishes on its
    own and its result is discarded.
    """
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        context = contextvars.copy_context()
        future = loop.run_in_executor(pool, context.run, call)
        try:
            if settings.timeout is None:
                return await future
            return await with_timeout(future, settings.timeout, name)
        except Exception as error:
            if attempt >= settings.retries or not is_retryable(error):
                raise
            attempt += 1
            delay = backoff_delay(settings.retry_backoff, attempt)
            if delay:
                await asyncio.sleep(delay)


def _call_with_retries_blocking(
    call: Callable[[Any], Any], item: Any, settings: TaskSettings
) -> Any:
    attempt = 0
    while True:
        try:
            return call(item)
        except Exception as error:
            if attempt >= settings.retries or not is_retryable(error):
                raise
            attempt += 1
            delay = backoff_delay(settings.retry_backoff, attempt)
            if delay:
                time.sleep(delay)


async def _gather_or_cancel(tasks: Sequence[asyncio.Future[Any]]) -> list[Any]:
    """Like ``gather``, but the first failure cancels the rest."""
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def run_mapped(
    name: str,
    call_item: Callable[[Any], Any],
    items: Sequence[Any],
    settings: TaskSettings,
    *,
    is_async: bool,
    pool: ThreadPoolExecutor,
) -> list[Any]:
    """Run ``call_item`` for every item and return the results in input order.

    The first item that still fails after its retries fails the whole mapped task and stops the
    others. ``workers`` bounds the items in flight; no item gets an asyncio task before it may
    start.
    """
    count = len(items)
    if count == 0:
        return []
    limiter = RateLimiter(settings.limit_per_minute) if settings.limit_per_minute else None
    if is_async:
        if settings.workers is not None:
            return await _map_async_workers(name, call_item, items, settings, limiter)
        if limiter is not None:
            return await _map_async_paced(name, call_item, items, settings, limiter)
        return await _map_async_unbounded(name, call_item, items, settings)
    if settings.timeout is None:
        return await _map_sync_drainers(call_item, items, settings, pool, limiter)
    return await _map_sync_workers(name, call_item, items, settings, pool, limiter)


async def _map_async_unbounded(
    name: str, call_item: Callable[[Any], Any], items: Sequence[Any], settings: TaskSettings
) -> list[Any]:
    loop = asyncio.get_running_loop()
    if settings.retries == 0 and settings.timeout is None:
        tasks = [loop.create_task(call_item(item)) for item in items]
    else:
        tasks = [
            loop.create_task(run_async_attempts(name, functools.partial(call_item, item), settings))
            for item in items
        ]
    return await _gather_or_cancel(tasks)


async def _map_async_workers(
    name: str,
    call_item: Callable[[Any], Any],
    items: Sequence[Any],
    settings: TaskSettings,
    limiter: RateLimiter | None,
) -> list[Any]:
    results: list[Any] = [None] * len(items)
    pending = iter(enumerate(items))

    async def work() -> None:
        for index, item in pending:
            if limiter is not None:
                await limiter.acquire()
            results[index] = await run_async_attempts(
                name, functools.partial(call_item, item), settings
            )

    width = min(settings.workers or len(items), len(items))
    loop = asyncio.get_running_loop()
    await _gather_or_cancel([loop.create_task(work()) for _ in range(width)])
    return results


async def _map_async_paced(
    name: str,
    call_item: Callable[[Any], Any],
    items: Sequence[Any],
    settings: TaskSettings,
    limiter: RateLimiter,
) -> list[Any]:
    """Rate limit without ``workers``: an item gets its task only when its start slot comes."""
    loop = asyncio.get_running_loop()
    started: list[asyncio.Future[Any]] = []
    failed = loop.create_future()

    def watch(task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None and not failed.done():
            failed.set_result(None)

    try:
        for item in items:
            await limiter.acquire()
            if failed.done():
                break
            task: asyncio.Future[Any] = loop.create_task(
                run_async_attempts(name, functools.partial(call_item, item), settings)
            )
            task.add_done_callback(watch)
            started.append(task)
        return await _gather_or_cancel(started)
    except BaseException:
        for task in started:
            task.cancel()
        raise


async def _map_sync_drainers(
    call_item: Callable[[Any], Any],
    items: Sequence[Any],
    settings: TaskSettings,
    pool: ThreadPoolExecutor,
    limiter: RateLimiter | None,
) -> list[Any]:
    """Each of ``width`` pool threads pulls items until none are left.

    One hand-off per thread instead of one per item keeps a mapped sync task close to the
    cost of ``ThreadPoolExecutor.map``.
    """
    results: list[Any] = [None] * len(items)
    pending = iter(enumerate(items))
    stop = threading.Event()

    def drain() -> None:
        # ``next`` on an enumerate over a sequence is atomic under the GIL.
        for index, item in pending:
            if stop.is_set():
                return
            if limiter is not None:
                limiter.acquire_blocking()
            try:
                results[index] = _call_with_retries_blocking(call_item, item, settings)
            except BaseException:
                stop.set()
                raise

    width = min(settings.workers or pool._max_workers, len(items))
    loop = asyncio.get_running_loop()
    futures = [
        loop.run_in_executor(pool, contextvars.copy_context().run, drain) for _ in range(width)
    ]
    try:
        await _gather_or_cancel(futures)
    except BaseException:
        stop.set()
        raise
    return results


async def _map_sync_workers(
    name: str,
    call_item: Callable[[Any], Any],
    items: Sequence[Any],
    settings: TaskSettings,
    pool: ThreadPoolExecutor,
    limiter: RateLimiter | None,
) -> list[Any]:
    results: list[Any] = [None] * len(items)
    pending = iter(enumerate(items))

    async def work() -> None:
        for index, item in pending:
            if limiter is not None:
                await limiter.acquire()
            results[index] = await run_sync_attempts(
                name, functools.partial(call_item, item), settings, pool
            )

    width = min(settings.workers or pool._max_workers, len(items))
    loop = asyncio.get_running_loop()
    await _gather_or_cancel([loop.create_task(work()) for _ in range(width)])
    return results
