"""The bridge between threads and event loops.

* One process-wide thread pool per (environment, size, nesting depth) runs sync tasks. Weaves
  share it instead of each creating its own; a weave opened inside a sync task gets the pool one
  level deeper, so outer tasks waiting on inner ones can never starve the inner ones of threads.
* Sync ``with weave()`` blocks run their event loop with :func:`run_sync`, which reuses one loop
  per main thread so a small weave does not pay for creating a loop each time.
* :func:`sync_to_async` lets async code call a blocking function through the same pools.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextvars
import functools
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from ._errors import WeaveUsageError

__all__ = [
    "LoopInbox",
    "current_depth",
    "get_thread_pool",
    "inbox_for",
    "run_sync",
    "shutdown_pools",
    "sync_to_async",
]

P = ParamSpec("P")
R = TypeVar("R")

_local = threading.local()
_pools: dict[tuple[str, int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
#: The pool the running weave uses for sync work; ``sync_to_async`` follows it.
active_pool: contextvars.ContextVar[ThreadPoolExecutor | None] = contextvars.ContextVar(
    "wove_active_pool", default=None
)


def current_depth() -> int:
    """How many pool threads deep the calling thread is (0 outside any pool)."""
    depth: int = getattr(_local, "depth", 0)
    return depth


def _mark_depth(depth: int) -> None:
    _local.depth = depth


def get_thread_pool(
    max_workers: int, environment: str = "default", depth: int | None = None
) -> ThreadPoolExecutor:
    """Return the shared pool of ``environment`` for sync work started at nesting ``depth``.

    Each environment gets its own thread budget (``max_workers``); ``depth`` defaults to one
    below the calling thread, so work started from inside a pool thread never waits for
    threads of the pool it is occupying.
    """
    if depth is None:
        depth = current_depth() + 1
    key = (environment, max_workers, depth)
    pool = _pools.get(key)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(key)
            if pool is None:
                pool = ThreadPoolExecutor(
                    max_workers=max_workers,
                    thread_name_prefix=f"wove-{environment}-{depth}",
                    initializer=_mark_depth,
                    initargs=(depth,),
                )
                _pools[key] = pool
    return pool


def shutdown_pools() -> None:
    """Stop every shared pool; idle threads exit, busy ones finish their task first."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=False, cancel_futures=True)


_main_loop: asyncio.AbstractEventLoop | None = None


def _close_main_loop() -> None:
    global _main_loop
    loop, _main_loop = _main_loop, None
    if loop is not None and not loop.is_closed() and not loop.is_running():
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


atexit.register(_close_main_loop)


def ensure_no_running_loop(what: str) -> None:
    """Refuse to block a thread whose event loop is running; point to the async form."""
    if asyncio._get_running_loop() is not None:
        raise WeaveUsageError(
            f"{what} cannot run inside a running event loop: it would block the loop. "
            "Use 'async with weave() as w:' in async code instead."
        )


def run_sync(coroutine: Coroutine[Any, Any, R]) -> R:
    """Run ``coroutine`` to completion from synchronous code.

    The main thread keeps one loop for the life of the process (closed at exit); other threads
    get a fresh loop that is closed afterwards, so no loop outlives the thread that made it.
    """
    global _main_loop
    if threading.current_thread() is threading.main_thread():
        loop = _main_loop
        if loop is None or loop.is_closed():
            loop = _main_loop = asyncio.new_event_loop()
        return loop.run_until_complete(coroutine)
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def sync_to_async(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Wrap a blocking function so async code can await it without blocking the loop.

    Inside a weave it runs on the weave's shared pool; elsewhere on the loop's default executor.
    Context variables travel with the call.

    Example:
        >>> import asyncio, time
        >>> nap = sync_to_async(time.sleep)
        >>> asyncio.run(nap(0))
    """

    @functools.wraps(func)
    async def run_in_thread(*args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(context.run, func, *args, **kwargs)
        return await loop.run_in_executor(active_pool.get(), call)

    return run_in_thread


logger = logging.getLogger("wove")


class LoopInbox:
    """Calls handed to one event loop from other threads, run there in batches.

    Each ``call_soon_threadsafe`` writes to the loop's wake-up pipe; under load a burst of
    completions from worker threads would pay that once per call. The inbox pays it once per
    burst: the first call in a burst schedules a drain, later ones just queue.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._calls: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]]
        self._calls = collections.deque()
        self._scheduled = False

    def put(self, callback: Callable[..., Any], *args: Any) -> bool:
        """Queue ``callback(*args)``; return ``False`` if the loop is closed."""
        self._calls.append((callback, args))
        if self._scheduled:
            return True
        self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            return False
        return True

    def _drain(self) -> None:
        # Clear the flag before popping: a call queued after this point schedules a new drain.
        self._scheduled = False
        calls = self._calls
        while calls:
            callback, args = calls.popleft()
            try:
                callback(*args)
            except Exception:
                logger.exception("a call handed to the event loop failed")


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopInbox] = (
    weakref.WeakKeyDictionary()
)
_inboxes_lock = threading.Lock()


def inbox_for(loop: asyncio.AbstractEventLoop) -> LoopInbox:
    """The one :class:`LoopInbox` of ``loop``."""
    inbox = _inboxes.get(loop)
    if inbox is None:
        with _inboxes_lock:
            inbox = _inboxes.get(loop)
            if inbox is None:
                inbox = _inboxes[loop] = LoopInbox(loop)
    return inbox
