"""Runs each task the moment its last dependency finishes.

There are no tier barriers: when a task completes, its dependents' counters drop and any that
reach zero start in the same callback. Async tasks become asyncio tasks on the weave's loop;
sync tasks go to the shared thread pool, and their completions come back through one inbox so
a burst of finished threads costs one loop wake-up, not one each.

Failure handling follows ``error_mode``: ``"raise"`` stops the weave at the first failure and
cancels what still runs; ``"return"`` records the failure, skips the failed task's dependents
(recording :class:`UpstreamTaskError` for them) and lets independent tasks finish.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import dataclasses
import functools
import inspect
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ._delivery import (
    InFlightLimit,
    PositionalCall,
    in_flight_limit,
    resolve_idempotency_key,
    run_remote,
)
from ._environments import ResolvedEnvironment
from ._errors import UpstreamTaskError
from ._execution import check_max_pending, run_async_attempts, run_mapped, run_sync_attempts
from ._graph import ALL_DATA, ExecutionPlan, TaskSpec
from ._options import TaskSettings
from ._result import WoveResult
from ._serializer import dumps
from ._threads import LoopInbox, get_thread_pool, inbox_for

__all__ = ["WeaveRun", "active_run"]

#: The weave whose task is running in this context; ``merge()`` reads it.
active_run: contextvars.ContextVar[WeaveRun | None] = contextvars.ContextVar(
    "wove_active_run", default=None
)

_perf = time.perf_counter

T = TypeVar("T")

_REMOTE_REASON = "sending a task to another process"


def _limit_for(environment: ResolvedEnvironment, settings: TaskSettings) -> InFlightLimit | None:
    if settings.delivery_max_in_flight is None:
        return None
    return in_flight_limit(environment.name, settings.delivery_max_in_flight)


def _cancelled_from_inside(name: str, cause: BaseException | None) -> RuntimeError:
    """A task cancelled without the weave asking (its own code, or a pool shut down under it)
    fails instead of leaving the weave waiting for it."""
    error = RuntimeError(f"task {name!r} was cancelled, but not by its weave")
    error.__cause__ = cause
    return error


#: A ready task handed to the asyncio task that finished its dependency: name, start, awaitable.
_Continuation = tuple[str, float, Awaitable[Any]]


class WeaveRun:
    """One execution of a planned weave."""

    def __init__(
        self,
        plan: ExecutionPlan,
        specs: Mapping[str, TaskSpec],
        settings: Mapping[str, TaskSettings],
        environments: Mapping[str, ResolvedEnvironment],
        data: Mapping[str, Any],
        result: WoveResult,
        *,
        error_mode: str,
        pool: ThreadPoolExecutor,
        run_config: dict[str, Any],
        resolve_merge_target: Callable[
            [Mapping[str, Any], bool], tuple[TaskSettings, ResolvedEnvironment]
        ],
    ) -> None:
        self.plan = plan
        self.specs = specs
        self.settings = settings
        self.environments = environments
        #: The injected data, and all of it as one dict for parameters named ``data``.
        self.data = {**data, ALL_DATA: dict(data)}
        self.result = result
        self.error_mode = error_mode
        self.pool = pool
        self.run_config = run_config
        #: Settings and environment for a ``merge()`` call, from its options and the weave's.
        self.resolve_merge_target = resolve_merge_target
        self.loop: asyncio.AbstractEventLoop | None = None
        self._results = result._results
        self._waiting = {name: len(set(deps)) for name, deps in plan.dependencies.items()}
        self._remaining = len(plan.order)
        self._running: dict[str, asyncio.Future[Any] | concurrent.futures.Future[Any]] = {}
        self._skipped: set[str] = set()
        self._inbox: LoopInbox | None = None
        self._blocking_merges: set[concurrent.futures.Future[Any]] = set()
        self._merges_lock = threading.Lock()
        self._finished = False
        self._done: asyncio.Future[None] | None = None
        self._context: contextvars.Context | None = None

    # -- entry point ------------------------------------------------------------------------
    async def run(self) -> None:
        """Run every task; in ``raise`` mode re-raise the first failure after cancelling."""
        loop = self.loop = asyncio.get_running_loop()
        await self._start_environments()
        self._inbox = inbox_for(loop)
        token = active_run.set(self)
        try:
            self._context = contextvars.copy_context()
            if self._remaining == 0:
                return
            self._done = loop.create_future()
            for name in self.plan.order:
                if self._waiting[name] == 0:
                    self._start(name)
            await self._done
        finally:
            active_run.reset(token)
            self._finished = True
            self._release_blocking_merges()
            await self._cancel_running()
            self.result.cancelled.update(
                name
                for name in self.plan.order
                if name not in self._results and name not in self.result._errors
            )

    async def _start_environments(self) -> None:
        """Start every environment the plan uses, side by side, before any task starts.

        An environment that cannot start (an invalid ``executor_config``, a secret that is not
        set, a plain-text endpoint off loopback, workers that do not come up...) fails the
        weave here, whatever its ``error_mode``: nothing has run and nothing is submitted.
        """
        environments = list({id(e): e for e in self.environments.values()}.values())
        if len(environments) == 1:
            await environments[0].ensure_started(self.run_config)
            return
        outcomes = await asyncio.gather(
            *(environment.ensure_started(self.run_config) for environment in environments),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def track_blocking_merge(self, future: concurrent.futures.Future[Any]) -> None:
        """Remember a merge a pool thread waits on, so the weave's end can release it."""
        with self._merges_lock:
            if self._finished:
                future.cancel()
                return
            self._blocking_merges.add(future)
        future.add_done_callback(self._forget_merge)

    def _forget_merge(self, future: concurrent.futures.Future[Any]) -> None:
        with self._merges_lock:
            self._blocking_merges.discard(future)

    def _release_blocking_merges(self) -> None:
        """Cancel merges still awaited by sync tasks: their loop is about to stop running."""
        with self._merges_lock:
            pending = list(self._blocking_merges)
            self._blocking_merges.clear()
        for future in pending:
            future.cancel()

    async def _cancel_running(self) -> None:
        running = list(self._running.values())
        self._running.clear()
        waiting: list[asyncio.Future[Any]] = []
        for handle in running:
            handle.cancel()
            if isinstance(handle, asyncio.Future):
                waiting.append(handle)
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)

    # -- starting tasks -----------------------------------------------------------------------
    def _start(self, name: str, adopt: bool = False) -> _Continuation | None:
        """Start ``name``; with ``adopt``, hand its awaitable back instead of making a task."""
        if self._done is not None and self._done.done():
            return None
        try:
            return self._launch(name, adopt)
        except Exception as error:
            self._fail(name, error, _perf())
            return None

    def _launch(self, name: str, adopt: bool) -> _Continuation | None:
        spec = self.specs[name]
        settings = self.settings[name]
        results = self._results
        data = self.data
        kwargs = {dep: results[dep] for dep in self.plan.task_parameters[name]}
        for key in self.plan.data_parameters[name]:
            kwargs[key] = data[key]
        func = spec.func
        started = _perf()
        loop = self.loop
        assert loop is not None
        environment = self.environments[name]
        awaitable: Awaitable[Any]
        if environment.dispatcher is not None:
            awaitable = self._remote_awaitable(name, spec, settings, environment, kwargs)
        elif spec.is_mapped:
            items = self._items_for(name, spec, settings)
            item_parameter = self.plan.item_parameters[name]
            bound = functools.partial(func, **kwargs) if kwargs else func

            def call_item(item: Any) -> Any:
                return bound(**{item_parameter: item})

            pool = get_thread_pool(settings.max_workers, settings.environment)
            awaitable = run_mapped(
                name, call_item, items, settings, is_async=spec.is_async, pool=pool
            )
        elif spec.is_async:
            if settings.retries == 0 and settings.timeout is None:
                awaitable = func(**kwargs)
            else:
                awaitable = run_async_attempts(name, functools.partial(func, **kwargs), settings)
        elif settings.retries == 0 and settings.timeout is None:
            context = contextvars.copy_context()
            pool = get_thread_pool(settings.max_workers, settings.environment)
            future: concurrent.futures.Future[Any] = pool.submit(
                context.run, functools.partial(func, **kwargs)
            )
            self._running[name] = future
            future.add_done_callback(functools.partial(self._thread_done, name, started))
            return None
        else:
            call = functools.partial(func, **kwargs)
            pool = get_thread_pool(settings.max_workers, settings.environment)
            awaitable = run_sync_attempts(name, call, settings, pool)
        if adopt:
            return (name, started, awaitable)
        self._running[name] = loop.create_task(self._drive(name, started, awaitable))
        return None

    def _remote_awaitable(
        self,
        name: str,
        spec: TaskSpec,
        settings: TaskSettings,
        environment: ResolvedEnvironment,
        kwargs: dict[str, Any],
    ) -> Awaitable[Any]:
        """The task as one remote run, or (mapped) one remote run per item."""
        if not spec.is_mapped:
            return self.remote_call(name, spec.func, kwargs, settings, environment, spec.is_async)
        items = list(enumerate(self._items_for(name, spec, settings)))
        item_parameter = self.plan.item_parameters[name]
        bound = functools.partial(spec.func, **kwargs) if kwargs else spec.func
        return self.remote_map(
            name, bound, item_parameter, items, settings, environment, spec.is_async
        )

    def remote_call(
        self,
        name: str,
        func: Callable[..., Any],
        kwargs: dict[str, Any],
        settings: TaskSettings,
        environment: ResolvedEnvironment,
        is_async: bool,
    ) -> Awaitable[Any]:
        """One remote run of ``func(**kwargs)`` with the task's retries and timeout."""
        dispatcher = environment.dispatcher
        assert dispatcher is not None
        callable_bytes = dumps(func, _REMOTE_REASON)
        key = resolve_idempotency_key(settings.delivery_idempotency_key, name)
        limit = _limit_for(environment, settings)
        attempts = itertools.count(1)

        def submit() -> Awaitable[Any]:
            return run_remote(
                dispatcher,
                task=name,
                callable_bytes=callable_bytes,
                args=kwargs,
                is_async=is_async,
                settings=settings,
                idempotency_key=key,
                limit=limit,
                attempt=next(attempts),
            )

        if settings.retries == 0:
            return self._after_start(environment, submit())
        # The remote run enforces ``timeout`` itself, after its in-flight slot is granted.
        retry_only = dataclasses.replace(settings, timeout=None)
        return self._after_start(environment, run_async_attempts(name, submit, retry_only))

    async def _after_start(self, environment: ResolvedEnvironment, work: Awaitable[T]) -> T:
        """Await the environment's start (outside any task timeout), then the work.

        The weave started its own environments before any task; this starts the environment
        of a ``merge()`` that names another one, and restarts one whose event stream broke.
        """
        try:
            await environment.ensure_started(self.run_config)
        except BaseException:
            if inspect.iscoroutine(work):
                work.close()  # never started: close it so it is not reported as un-awaited
            raise
        return await work

    def remote_map(
        self,
        name: str,
        func: Callable[..., Any],
        item_parameter: str | None,
        items: list[tuple[int, Any]],
        settings: TaskSettings,
        environment: ResolvedEnvironment,
        is_async: bool,
    ) -> Awaitable[list[Any]]:
        """One remote run per item; ``item_parameter=None`` passes the item positionally."""
        dispatcher = environment.dispatcher
        assert dispatcher is not None
        target = func if item_parameter is not None else PositionalCall(func)
        parameter = item_parameter or "item"
        callable_bytes = dumps(target, _REMOTE_REASON)
        limit = _limit_for(environment, settings)
        key_setting = settings.delivery_idempotency_key
        attempts: dict[int, int] = {}

        def call_item(pair: tuple[int, Any]) -> Awaitable[Any]:
            index, item = pair
            attempt = attempts[index] = attempts.get(index, 0) + 1
            return run_remote(
                dispatcher,
                task=name,
                callable_bytes=callable_bytes,
                args={parameter: item},
                is_async=is_async,
                settings=settings,
                idempotency_key=resolve_idempotency_key(key_setting, name, item, index),
                limit=limit,
                attempt=attempt,
            )

        # The remote runs enforce ``timeout`` themselves, after their in-flight slot is granted.
        retry_only = dataclasses.replace(settings, timeout=None)
        mapped = run_mapped(name, call_item, items, retry_only, is_async=True, pool=self.pool)
        return self._after_start(environment, mapped)

    def _items_for(self, name: str, spec: TaskSpec, settings: TaskSettings) -> list[Any]:
        source = spec.map_source
        if isinstance(source, str):
            source = self._results[source] if source in self._results else self.data[source]
        try:
            items = list(source)
        except TypeError:
            raise TypeError(
                f"mapped task {name!r} maps over {spec.map_source!r}, which gave "
                f"{type(source).__name__} {source!r}; it must be iterable"
            ) from None
        check_max_pending(f"mapped task {name!r}", len(items), settings.max_pending)
        return items

    async def _drive(self, name: str, started: float, awaitable: Awaitable[Any]) -> None:
        """Await a task and report it from the iteration it finishes in.

        When that completion makes a dependent ready, this same asyncio task carries on with
        the dependent (its siblings get tasks of their own), so a chain of tasks costs one
        coroutine hand-off per link rather than a new task and two loop iterations.
        """
        task = asyncio.current_task()
        assert task is not None
        while True:
            try:
                value = await awaitable
            except Exception as error:
                if not self._finished:
                    self._fail(name, error, started)
                return
            except asyncio.CancelledError as cancelled:
                if self._finished:
                    raise  # the weave is stopping and cancelled us
                self._fail(name, _cancelled_from_inside(name, cancelled), started)
                return
            if self._finished:
                return
            continuation = self._succeed(name, value, started, adopt=True)
            if continuation is None:
                return
            name, started, awaitable = continuation
            self._running[name] = task

    # -- completions --------------------------------------------------------------------------
    def _thread_done(
        self, name: str, started: float, future: concurrent.futures.Future[Any]
    ) -> None:
        """Called in the worker thread: hand the completion to the loop (batched)."""
        if not self._finished:
            assert self._inbox is not None
            assert self._context is not None
            # Run in the weave's context, so tasks started from here can see ``active_run``.
            self._inbox.put(self._context.run, self._thread_finished, name, started, future)

    def _thread_finished(
        self, name: str, started: float, future: concurrent.futures.Future[Any]
    ) -> None:
        if self._finished:
            return
        if future.cancelled():
            self._fail(name, _cancelled_from_inside(name, None), started)
            return
        error = future.exception()
        if error is None:
            self._succeed(name, future.result(), started)
        else:
            self._fail(name, error, started)

    def _succeed(
        self, name: str, value: Any, started: float, adopt: bool = False
    ) -> _Continuation | None:
        self._running.pop(name, None)
        self.result._set_result(name, value, _perf() - started)
        self._remaining -= 1
        adopted: _Continuation | None = None
        for child in self.plan.dependents[name]:
            waiting = self._waiting[child] - 1
            self._waiting[child] = waiting
            if waiting == 0 and child not in self._skipped:
                if adopt and adopted is None:
                    adopted = self._start(child, adopt=True)
                else:
                    self._start(child)
        if self._remaining == 0:
            self._resolve()
        return adopted

    def _fail(self, name: str, error: BaseException, started: float) -> None:
        self._running.pop(name, None)
        self.result._set_error(name, error, _perf() - started)
        if self.error_mode == "raise":
            self._resolve(error)
            return
        self._remaining -= 1
        self._skip_dependents(name, error)
        if self._remaining == 0:
            self._resolve()

    def _skip_dependents(self, failed: str, error: BaseException) -> None:
        queue = collections.deque([failed])
        while queue:
            parent = queue.popleft()
            for child in self.plan.dependents[parent]:
                if child in self._skipped:
                    continue
                self._skipped.add(child)
                self._remaining -= 1
                self.result._set_error(child, UpstreamTaskError(child, parent, error), None)
                queue.append(child)

    def _resolve(self, error: BaseException | None = None) -> None:
        done = self._done
        if done is None or done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
