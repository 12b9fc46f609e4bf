"""``merge()``: run a callable (or map it) from inside a running task, with ``@w.do``'s options.

From an async task, ``merge`` returns an awaitable; from a sync task (a pool thread) it blocks
until the result is ready. The recursion guard follows the call chain through a context
variable, so two hundred concurrent merges are fine while a merge that keeps merging itself
is stopped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from ._errors import InvalidOptionError, WeaveUsageError
from ._execution import check_max_pending, run_async_attempts, run_mapped, run_sync_attempts
from ._options import TASK_OPTIONS, validate_options
from ._scheduler import WeaveRun, active_run
from ._threads import current_depth, get_thread_pool

__all__ = ["MAX_MERGE_DEPTH", "merge"]

#: How many merges may nest inside one another before Wove calls it runaway recursion.
MAX_MERGE_DEPTH: Final = 64

_chain: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "wove_merge_chain", default=()
)


def merge(func: Callable[..., Any], iterable: Iterable[Any] | None = None, **options: Any) -> Any:
    """Run ``func`` from inside a running task, or map it over ``iterable``.

    ``func`` is called with no arguments, or with each item of ``iterable`` as its only
    argument (results keep input order). Options are those of ``@w.do``: ``retries``,
    ``retry_backoff``, ``timeout``, ``workers``, ``limit_per_minute``, ``environment`` and the
    ``delivery_*`` options.

    Returns:
        In an async task, an awaitable of the result; in a sync task, the result itself.

    A sync ``func`` runs in a thread; if it returns an awaitable (``lambda: fetch(21)`` for an
    async ``fetch``), that is awaited on the weave's loop and its value is the result, as in
    wove 2.x.

    Raises:
        WeaveUsageError: called outside a task of a running weave.
        InvalidOptionError: ``workers`` or ``limit_per_minute`` without an iterable.
        RuntimeError: more items than the weave's ``max_pending``.
        RecursionError: merges nested more than ``MAX_MERGE_DEPTH`` deep.

    Example:
        >>> from wove import weave, merge
        >>> def double(x):
        ...     return 2 * x
        >>> with weave() as w:
        ...     @w.do
        ...     def doubled():
        ...         return merge(double, [1, 2, 3])
        >>> w.result.doubled
        [2, 4, 6]
    """
    run = active_run.get()
    if run is None or run.loop is None:
        raise WeaveUsageError(
            "merge() can only be called from inside a task while its weave runs. "
            "Call the function directly here, or declare it as a task with @w.do."
        )
    checked = validate_options(options, TASK_OPTIONS, "merge()")
    if iterable is None and ("workers" in checked or "limit_per_minute" in checked):
        raise InvalidOptionError(
            "merge(): workers and limit_per_minute apply only when an iterable is given, "
            "as in merge(func, items, workers=4)"
        )
    chain = _chain.get()
    label = getattr(func, "__qualname__", None) or repr(func)
    if len(chain) >= MAX_MERGE_DEPTH:
        shown = " -> ".join((*chain[-4:], label))
        raise RecursionError(
            f"merge() nested {len(chain) + 1} deep (... -> {shown}); this looks like runaway "
            f"recursion. Merges may nest at most {MAX_MERGE_DEPTH} deep."
        )
    # From a pool thread, nested sync work goes to the next pool down, so merges that block
    # their threads can never starve the callables they wait for.
    depth = current_depth() + 1
    coroutine = _amerge(run, func, iterable, checked, (*chain, label), depth)
    if asyncio._get_running_loop() is run.loop:
        return coroutine
    future = asyncio.run_coroutine_threadsafe(coroutine, run.loop)
    run.track_blocking_merge(future)
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        raise WeaveUsageError(
            "merge() was still waiting when its weave stopped (another task failed or the "
            "weave was cancelled); its result is discarded"
        ) from None


async def _amerge(
    run: WeaveRun,
    func: Callable[..., Any],
    iterable: Iterable[Any] | None,
    options: dict[str, Any],
    chain: tuple[str, ...],
    depth: int,
) -> Any:
    token = _chain.set(chain)
    try:
        settings, environment = run.resolve_merge_target(options, iterable is not None)
        pool = get_thread_pool(settings.max_workers, settings.environment, depth)
        name = chain[-1]
        is_async = inspect.iscoroutinefunction(func)
        items = None if iterable is None else list(iterable)
        if items is not None:
            check_max_pending(f"merge() of {name!r}", len(items), settings.max_pending)
        if environment.dispatcher is not None:
            if items is None:
                return await run.remote_call(name, func, {}, settings, environment, is_async)
            numbered = list(enumerate(items))
            return await run.remote_map(name, func, None, numbered, settings, environment, is_async)
        if not is_async:
            func = _settling(func, run)
        if items is not None:
            return await run_mapped(name, func, items, settings, is_async=is_async, pool=pool)
        if is_async:
            return await run_async_attempts(name, func, settings)
        return await run_sync_attempts(name, func, settings, pool)
    finally:
        _chain.reset(token)


def _settling(func: Callable[..., Any], run: WeaveRun) -> Callable[..., Any]:
    """``func`` for a pool thread: an awaitable it returns is awaited on the weave's loop.

    The thread waits for it, so ``retries`` and ``timeout`` cover it like the call itself; the
    weave's end releases a thread still waiting.
    """

    def call(*args: Any) -> Any:
        value = func(*args)
        if not inspect.isawaitable(value):
            return value
        assert run.loop is not None
        future = asyncio.run_coroutine_threadsafe(_await(value), run.loop)
        run.track_blocking_merge(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise WeaveUsageError(
                "merge() was still awaiting what its callable returned when its weave stopped; "
                "its result is discarded"
            ) from None

    return call


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
