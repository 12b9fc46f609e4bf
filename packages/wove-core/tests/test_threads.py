"""The thread/loop bridge (``wove._threads``): the shared pools, nested weaves, ``run_sync`` and
``sync_to_async``."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from wove import WeaveUsageError, sync_to_async, weave
from wove._threads import (
    active_pool,
    current_depth,
    ensure_no_running_loop,
    get_thread_pool,
    run_sync,
    shutdown_pools,
)

WAIT = 10.0
DEADLOCK_SECONDS = 10.0

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def pool_of_a_weave(**options: Any) -> ThreadPoolExecutor:
    """The pool a sync task of a fresh weave ran on."""
    with weave(**options) as w:

        @w.do
        def pool() -> ThreadPoolExecutor | None:
            return active_pool.get()

    assert w.result.pool is not None
    return w.result.pool  # type: ignore[no-any-return]


# -- the shared pool ------------------------------------------------------------------------------


def test_weaves_in_a_row_share_one_thread_pool() -> None:
    first = pool_of_a_weave()
    second = pool_of_a_weave()

    assert first is second
    assert first is get_thread_pool(64)


def test_pool_size_follows_max_workers() -> None:
    assert pool_of_a_weave(max_workers=5) is get_thread_pool(5)
    assert get_thread_pool(5) is not get_thread_pool(6)
    assert get_thread_pool(5)._max_workers == 5


def test_sync_tasks_run_on_pool_threads_one_level_deep() -> None:
    with weave() as w:

        @w.do
        def where() -> tuple[str, int]:
            return threading.current_thread().name, current_depth()

    name, depth = w.result.where
    assert name.startswith("wove-default-1")
    assert depth == 1
    assert current_depth() == 0


def test_sync_weave_inside_a_sync_task_uses_a_deeper_pool() -> None:
    with weave() as outer:

        @outer.do
        def nested() -> tuple[Any, ...]:
            with weave(offset=1) as inner:

                @inner.do
                def value(offset: int) -> int:
                    return 41 + offset

                @inner.do
                def depth() -> int:
                    return current_depth()

                @inner.do
                def pool() -> ThreadPoolExecutor | None:
                    return active_pool.get()

            return inner.result.value, inner.result.depth, inner.result.pool, active_pool.get()

    value, depth, inner_pool, outer_pool = outer.result.nested
    assert value == 42
    assert depth == 2
    assert inner_pool is not outer_pool


def test_nested_weave_never_starves_for_the_threads_its_parent_holds() -> None:
    # The outer pool has one thread, and the outer task holds it while the inner weave runs.
    code = """
        from wove import weave

        with weave(max_workers=1) as outer:

            @outer.do
            def holds_the_only_thread():
                with weave(max_workers=1) as inner:

                    @inner.do
                    def a():
                        return 1

                    @inner.do
                    def b(a):
                        return a + 1

                return inner.result.final

        print(outer.result.final)
    """
    try:
        completed = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=DEADLOCK_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"nested weave deadlocked: no result within {DEADLOCK_SECONDS:g}s")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "2"


def test_shutdown_pools_makes_the_next_weave_start_a_new_pool() -> None:
    before = get_thread_pool(7)

    shutdown_pools()

    after = get_thread_pool(7)
    assert after is not before
    assert pool_of_a_weave(max_workers=7) is after


# -- running loops --------------------------------------------------------------------------------


def test_run_sync_reuses_one_loop_on_the_main_thread() -> None:
    async def loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert threading.current_thread() is threading.main_thread()
    assert run_sync(loop()) is run_sync(loop())


def test_run_sync_in_another_thread_closes_its_own_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def loop() -> None:
        loops.append(asyncio.get_running_loop())

    def in_thread() -> None:
        run_sync(loop())
        run_sync(loop())

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(WAIT)

    assert len(loops) == 2
    assert loops[0] is not loops[1]
    assert all(loop.is_closed() for loop in loops)


def test_ensure_no_running_loop_points_to_the_async_form() -> None:
    ensure_no_running_loop("'with weave()'")

    async def inside() -> None:
        ensure_no_running_loop("'with weave()'")

    with pytest.raises(WeaveUsageError, match=r"'with weave\(\)' cannot run inside a running"):
        asyncio.run(inside())


# -- sync_to_async --------------------------------------------------------------------------------


def test_sync_to_async_runs_a_blocking_function_off_the_loop() -> None:
    def blocking(x: int, *, y: int) -> tuple[int, bool]:
        return x + y, threading.current_thread() is threading.main_thread()

    wrapped = sync_to_async(blocking)

    assert wrapped.__name__ == "blocking"
    assert asyncio.run(wrapped(1, y=2)) == (3, False)


def test_sync_to_async_carries_context_variables() -> None:
    wrapped = sync_to_async(request_id.get)

    async def main() -> str:
        request_id.set("req-7")
        return await wrapped()

    assert asyncio.run(main()) == "req-7"


def test_sync_to_async_inside_a_weave_uses_the_weaves_pool() -> None:
    def where() -> str:
        return threading.current_thread().name

    with weave() as w:

        @w.do
        async def task() -> str:
            return await sync_to_async(where)()

    assert w.result.task.startswith("wove-default-1")
