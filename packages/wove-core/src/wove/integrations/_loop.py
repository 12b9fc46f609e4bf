"""What a worker process keeps for all its runs: one event loop in a daemon thread (for
:func:`wove.integrations.worker.run`) and one thread pool for sync tasks.

A backend worker calls ``run(payload)`` once per task from plain sync code (a Celery task, an
RQ job). Running each call under its own ``asyncio.run`` would build a new loop, and a new HTTP
connection to the callback server, for every task; on this loop they are made once per process
and reused, so a task costs its own work plus two small posts on a warm connection.

A forked child (RQ's work horse, a prefork pool) does not inherit threads, so both are keyed by
process id and made again, lazily, in each process that needs them.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["at_loop_exit", "is_worker_loop", "run_on_worker_loop", "worker_loop", "worker_threads"]

T = TypeVar("T")

_lock = threading.Lock()
_pid = 0
_loop: asyncio.AbstractEventLoop | None = None
_threads: concurrent.futures.ThreadPoolExecutor | None = None
_closers: list[Callable[[], Coroutine[Any, Any, None]]] = []


def _for_this_process() -> None:
    """Forget what a forked child inherited: its loop thread and pool threads did not come
    along. The caller holds ``_lock``."""
    global _pid, _loop, _threads
    if _pid != os.getpid():
        _pid, _loop, _threads = os.getpid(), None, None
        _closers.clear()


def worker_loop() -> asyncio.AbstractEventLoop:
    """This process's worker loop, started on first use."""
    global _loop
    with _lock:
        _for_this_process()
        if _loop is None:
            ready = threading.Event()
            loop = asyncio.new_event_loop()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=serve, name="wove-worker-loop", daemon=True).start()
            ready.wait()
            _loop = loop
        return _loop


def is_worker_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` is this process's worker loop (whose lifetime this module owns)."""
    return loop is _loop and _pid == os.getpid()


def worker_threads() -> concurrent.futures.ThreadPoolExecutor:
    """One pool per process for the sync tasks of ``arun``; a pool per payload would start and
    join a thread for every task."""
    global _threads
    with _lock:
        _for_this_process()
        if _threads is None:
            _threads = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="wove-worker")
        return _threads


def run_on_worker_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the worker loop and block this thread until it is done."""
    future = asyncio.run_coroutine_threadsafe(coroutine, worker_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


def at_loop_exit(close: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Await ``close()`` on the worker loop when the interpreter exits (HTTP sessions)."""
    _closers.append(close)


def _close_all() -> None:
    loop = _loop
    if loop is None or _pid != os.getpid() or not _closers:
        return
    for close in list(_closers):
        try:
            asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        except (concurrent.futures.TimeoutError, RuntimeError, OSError):
            pass
    _closers.clear()


atexit.register(_close_all)
