"""``merge()`` (§2.9): running a callable, or mapping it, from inside a running task."""

from __future__ import annotations

import asyncio
import functools
import inspect
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from wove import (
    InvalidOptionError,
    UnknownEnvironmentError,
    UnknownOptionError,
    WeaveUsageError,
    merge,
    weave,
)
from wove._merge import MAX_MERGE_DEPTH

#: How long a child process may take before the test calls it deadlocked.
DEADLOCK_SECONDS = 10.0


def double(x: int) -> int:
    return x * 2


async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


def seven() -> int:
    return 7


def run_isolated(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, so a deadlock can be killed instead of hanging us."""
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=DEADLOCK_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the weave deadlocked: no result within {DEADLOCK_SECONDS:g}s")


# -- where merge can be called --------------------------------------------------------------------


def test_merge_in_an_async_task_returns_an_awaitable() -> None:
    with weave() as w:

        @w.do
        async def merged() -> tuple[int, list[int], list[int]]:
            pending = merge(seven)
            assert inspect.isawaitable(pending)
            return await pending, await merge(double, [1, 2, 3]), await merge(adouble, [4, 5])

    assert w.result.merged == (7, [2, 4, 6], [8, 10])


def test_merge_in_a_sync_task_returns_the_value() -> None:
    with weave() as w:

        @w.do
        def merged() -> tuple[Any, Any, Any]:
            return merge(seven), merge(double, [1, 2]), merge(adouble, [3])

    assert w.result.merged == (7, [2, 4], [6])


def test_merge_of_an_async_callable_from_a_sync_task() -> None:
    async def answer() -> int:
        return 42

    with weave() as w:

        @w.do
        def merged() -> int:
            return merge(answer)  # type: ignore[no-any-return]

    assert w.result.merged == 42


def test_merge_inside_a_mapped_item() -> None:
    with weave() as w:

        @w.do([1, 2, 3])
        async def mapped(item: int) -> int:
            return await merge(lambda: item * 10)  # type: ignore[no-any-return]

    assert w.result.mapped == [10, 20, 30]


def test_merge_outside_a_task_says_it_must_be_inside_a_task() -> None:
    with pytest.raises(WeaveUsageError, match="inside a task"):
        merge(seven)


def test_merge_in_a_block_body_before_tasks_run_is_refused() -> None:
    async def main() -> None:
        async with weave():
            merge(seven)

    with pytest.raises(WeaveUsageError, match="inside a task"):
        asyncio.run(main())


def test_merge_from_a_thread_the_task_started_itself_is_refused() -> None:
    errors: list[BaseException] = []

    with weave() as w:

        @w.do
        def spawns() -> None:
            def outside() -> None:
                try:
                    merge(seven)
                except WeaveUsageError as error:
                    errors.append(error)

            thread = threading.Thread(target=outside)
            thread.start()
            thread.join(10)

    assert w.result.spawns is None
    assert len(errors) == 1


# -- options --------------------------------------------------------------------------------------


def test_merge_takes_the_options_of_do() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("again")
        return "ok"

    with weave() as w:

        @w.do
        async def merged() -> str:
            return await merge(flaky, retries=2)  # type: ignore[no-any-return]

    assert w.result.merged == "ok"
    assert len(attempts) == 3


def test_merge_with_workers_bounds_items_in_flight() -> None:
    in_flight = peak = 0

    async def item(x: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        in_flight -= 1
        return x

    with weave() as w:

        @w.do
        async def merged() -> list[int]:
            return await merge(item, range(10), workers=2)  # type: ignore[no-any-return]

    assert w.result.merged == list(range(10))
    assert peak == 2


def test_merge_timeout_names_the_merged_callable() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError, match="hangs' timed out"), weave() as w:

        @w.do
        async def merged() -> None:
            await merge(hangs, timeout=0.05)


def test_merge_workers_without_an_iterable_is_refused() -> None:
    with pytest.raises(InvalidOptionError, match="only when an iterable is given"), weave() as w:

        @w.do
        def merged() -> int:
            return merge(seven, workers=2)  # type: ignore[no-any-return]


def test_merge_unknown_option_suggests_the_right_one() -> None:
    with pytest.raises(UnknownOptionError, match="Did you mean 'timeout'"), weave() as w:

        @w.do
        def merged() -> int:
            return merge(seven, timout=1)  # type: ignore[no-any-return]


def test_merge_into_an_unknown_environment_lists_the_configured_ones() -> None:
    with pytest.raises(UnknownEnvironmentError, match="configured: 'default'"), weave() as w:

        @w.do
        async def merged() -> int:
            return await merge(seven, environment="gpu")  # type: ignore[no-any-return]


# -- the recursion guard follows the call chain ---------------------------------------------------


def test_two_hundred_concurrent_merges_do_not_trip_the_recursion_guard() -> None:
    async def leaf(x: int) -> int:
        await asyncio.sleep(0)
        return x

    async def branch(x: int) -> int:
        return await merge(functools.partial(leaf, x))  # type: ignore[no-any-return]

    with weave() as w:

        @w.do
        async def fan_out() -> list[int]:
            return await asyncio.gather(*(merge(functools.partial(branch, i)) for i in range(200)))

    assert w.result.fan_out == list(range(200))


def test_merges_may_nest_below_the_limit() -> None:
    async def descend(depth: int) -> int:
        if depth == 0:
            return 0
        return 1 + await merge(functools.partial(descend, depth - 1))  # type: ignore[no-any-return]

    with weave() as w:

        @w.do
        async def nested() -> int:
            return await descend(MAX_MERGE_DEPTH - 1)

    assert w.result.nested == MAX_MERGE_DEPTH - 1


def test_runaway_async_merge_recursion_raises_recursion_error() -> None:
    async def again() -> Any:
        return await merge(again)

    with (
        pytest.raises(RecursionError, match=f"nested 65 deep.*at most {MAX_MERGE_DEPTH}"),
        weave() as w,
    ):

        @w.do
        async def runaway() -> Any:
            return await again()


def test_runaway_sync_merge_recursion_raises_recursion_error() -> None:
    completed = run_isolated(
        """
        from wove import merge, weave

        def again():
            return merge(again)

        try:
            with weave() as w:

                @w.do
                def runaway():
                    return again()
        except RecursionError as error:
            print("RecursionError:", error)
        """
    )

    assert completed.returncode == 0, completed.stderr
    assert "RecursionError: merge() nested 65 deep" in completed.stdout


def test_sync_merge_from_sync_tasks_does_not_starve_for_threads() -> None:
    # Every pool thread runs a task that waits on its merge: the merges need threads too.
    completed = run_isolated(
        """
        from wove import merge, weave

        def inner():
            return 1

        with weave(max_workers=2) as w:

            @w.do
            def first():
                return merge(inner)

            @w.do
            def second():
                return merge(inner)

        print(w.result.first + w.result.second)
        """
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "2"
