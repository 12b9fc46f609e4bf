"""Running a plan: as soon as possible (§2.2), mapping (§2.4) and failures (§2.5).

No test here measures time. Ordering claims are proven with events that a wrong schedule would
never set: each wait has a timeout that fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import wove
from wove import InvalidOptionError, TaskCancelledError, UpstreamTaskError, weave
from wove._scheduler import active_run

#: Seconds any event wait may take before the test calls the schedule wrong.
WAIT = 10.0


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that sync tasks block on; always set on teardown so no pool thread stays stuck."""
    event = threading.Event()
    yield event
    event.set()


async def _yield_until(condition: Any, turns: int = 10_000) -> None:
    """Give the loop up to ``turns`` turns for ``condition()`` to become true."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


# -- §2.2 as soon as possible ---------------------------------------------------------------------


def test_sync_task_starts_when_its_last_dependency_finishes_not_its_tier() -> None:
    after_fast_ran = threading.Event()
    with weave() as w:

        @w.do
        def fast() -> int:
            return 1

        @w.do
        def slow() -> int:
            # With a barrier after tier 0, after_fast would wait for slow: a deadlock.
            assert after_fast_ran.wait(WAIT), "after_fast did not start before its tier ended"
            return 2

        @w.do
        def after_fast(fast: int) -> int:
            after_fast_ran.set()
            return fast + 10

    assert w.result.to_dict() == {"fast": 1, "slow": 2, "after_fast": 11}


def test_async_task_starts_when_its_last_dependency_finishes_not_its_tier() -> None:
    async def main() -> dict[str, Any]:
        chain_done = asyncio.Event()
        async with weave() as w:

            @w.do
            async def fast() -> int:
                return 1

            @w.do
            async def slow() -> int:
                await asyncio.wait_for(chain_done.wait(), WAIT)
                return 2

            @w.do
            async def middle(fast: int) -> int:
                return fast + 1

            @w.do
            async def end(middle: int) -> int:
                chain_done.set()
                return middle + 1

        return w.result.to_dict()

    assert asyncio.run(main()) == {"fast": 1, "slow": 2, "middle": 2, "end": 3}


def test_mixed_sync_and_async_tasks_start_as_soon_as_possible() -> None:
    after_fast_ran = threading.Event()
    with weave() as w:

        @w.do
        def fast() -> int:
            return 1

        @w.do
        def slow() -> str:
            assert after_fast_ran.wait(WAIT), "after_fast did not start before its tier ended"
            return "slow"

        @w.do
        async def after_fast(fast: int) -> int:
            after_fast_ran.set()
            return fast + 1

        @w.do
        def joined(slow: str, after_fast: int) -> str:
            return f"{slow}+{after_fast}"

    assert w.result.joined == "slow+2"
    assert w.execution_plan is not None
    assert w.execution_plan.tiers == (("fast", "slow"), ("after_fast",), ("joined",))


def test_task_gets_dependency_results_and_data_by_name() -> None:
    marker = object()
    with weave(user_id=7, marker=marker) as w:

        @w.do
        def user(user_id: int) -> dict[str, int]:
            return {"id": user_id}

        @w.do
        async def greeting(user: dict[str, int], marker: object) -> tuple[int, object]:
            return user["id"], marker

    assert w.result.greeting[0] == 7
    assert w.result.greeting[1] is marker


def test_tasks_run_when_the_block_ends() -> None:
    ran: list[str] = []
    with weave() as w:

        @w.do
        def a() -> int:
            ran.append("a")
            return 1

        assert ran == []

    assert ran == ["a"]
    assert w.result.a == 1


def test_empty_weave_runs() -> None:
    with weave() as w:
        pass

    assert len(w.result) == 0
    assert w.execution_plan is not None


# -- §2.4 mapping ---------------------------------------------------------------------------------


def test_async_mapping_keeps_input_order_when_items_finish_in_reverse() -> None:
    async def main() -> list[int]:
        done = [asyncio.Event() for _ in range(5)]
        async with weave() as w:

            @w.do(range(5))
            async def mapped(item: int) -> int:
                if item + 1 < len(done):
                    await asyncio.wait_for(done[item + 1].wait(), WAIT)
                done[item].set()
                return item * 10

        return w.result.mapped  # type: ignore[no-any-return]

    assert asyncio.run(main()) == [0, 10, 20, 30, 40]


def test_sync_mapping_keeps_input_order_when_items_finish_in_reverse() -> None:
    done = [threading.Event() for _ in range(5)]
    with weave() as w:

        @w.do(range(5))
        def mapped(item: int) -> int:
            if item + 1 < len(done):
                assert done[item + 1].wait(WAIT)
            done[item].set()
            return item * 10

    assert w.result.mapped == [0, 10, 20, 30, 40]


def test_mapping_over_an_upstream_task_result() -> None:
    with weave() as w:

        @w.do
        def numbers() -> list[int]:
            return [3, 1, 2]

        @w.do("numbers")
        def doubled(number: int) -> int:
            return number * 2

        @w.do
        def total(doubled: list[int]) -> int:
            return sum(doubled)

    assert w.result.doubled == [6, 2, 4]
    assert w.result.final == 12


def test_mapping_over_injected_data_with_other_parameters_wired() -> None:
    with weave(ids=[1, 2, 3], prefix="id-") as w:

        @w.do
        def suffix() -> str:
            return "!"

        @w.do("ids")
        async def labels(item: int, prefix: str, suffix: str) -> str:
            return f"{prefix}{item}{suffix}"

    assert w.result.labels == ["id-1!", "id-2!", "id-3!"]


def test_mapping_over_nothing_gives_an_empty_list() -> None:
    with weave() as w:

        @w.do([])
        def mapped(item: int) -> int:
            return item

    assert w.result.mapped == []


def test_mapping_over_a_non_iterable_result_fails_the_task() -> None:
    with (  # noqa: PT012
        pytest.raises(TypeError, match=r"maps over 'count'.*must be iterable"),
        weave() as w,
    ):

        @w.do
        def count() -> int:
            return 3

        @w.do("count")
        def mapped(item: int) -> int:
            return item

    assert isinstance(w.result.exception, TypeError)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="plain"),
        pytest.param({"retries": 1}, id="retries"),
        pytest.param({"timeout": 60.0}, id="timeout"),
        pytest.param({"limit_per_minute": 6e7}, id="rate limit"),
    ],
)
def test_async_mapping_never_has_more_than_workers_items_in_flight(
    options: dict[str, Any],
) -> None:
    in_flight = peak = 0
    with weave() as w:

        @w.do(range(40), workers=3, **options)
        async def mapped(item: int) -> int:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            for _ in range(3):
                await asyncio.sleep(0)
            in_flight -= 1
            return item

    assert w.result.mapped == list(range(40))
    assert peak <= 3
    if "limit_per_minute" not in options:
        # Without a rate limit to pace them, all three workers are busy at once.
        assert peak == 3


@pytest.mark.parametrize(
    "options",
    [pytest.param({}, id="plain"), pytest.param({"timeout": 60.0}, id="timeout")],
)
def test_sync_mapping_never_has_more_than_workers_items_in_flight(
    options: dict[str, Any],
) -> None:
    workers = 3
    # Every item waits until `workers` items are in flight at once; fewer would break the barrier.
    barrier = threading.Barrier(workers, timeout=WAIT)
    lock = threading.Lock()
    in_flight = peak = 0
    with weave() as w:

        @w.do(range(12), workers=workers, **options)
        def mapped(item: int) -> int:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            try:
                barrier.wait()
            finally:
                with lock:
                    in_flight -= 1
            return item

    assert w.result.mapped == list(range(12))
    assert peak == workers


def test_async_mapping_without_workers_runs_every_item_at_once() -> None:
    in_flight = peak = 0
    with weave() as w:

        @w.do(range(20))
        async def mapped(item: int) -> int:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0)
            in_flight -= 1
            return item

    assert peak == 20


def test_async_mapping_with_workers_does_not_create_a_task_per_item_up_front() -> None:
    task_counts: list[int] = []
    with weave() as w:

        @w.do(range(1000), workers=2)
        async def mapped(item: int) -> int:
            task_counts.append(len(asyncio.all_tasks()))
            return item

    assert w.result.mapped == list(range(1000))
    assert max(task_counts) <= 8


def test_rate_limited_async_mapping_does_not_create_a_task_per_item_up_front() -> None:
    # DESIGN §7: no per-item asyncio task before the item can run, rate limit or not.
    task_counts: list[int] = []
    with weave() as w:

        @w.do(range(500), limit_per_minute=6e9)
        async def mapped(item: int) -> int:
            task_counts.append(len(asyncio.all_tasks()))
            return item

    assert w.result.mapped == list(range(500))
    assert max(task_counts) <= 8


def test_first_failing_item_stops_the_mapped_task() -> None:
    started: list[int] = []
    with pytest.raises(ValueError, match="item 2"), weave() as w:

        @w.do(range(10), workers=1)
        def mapped(item: int) -> int:
            started.append(item)
            if item == 2:
                raise ValueError("item 2")
            return item

    assert started == [0, 1, 2]
    assert isinstance(w.result.exception, ValueError)


def test_mapped_task_failure_is_its_value_in_return_mode() -> None:
    with weave(error_mode="return") as w:

        @w.do([1, 0, 2])
        async def inverse(item: int) -> float:
            return 1 / item

    assert isinstance(w.result.inverse, ZeroDivisionError)


def test_max_pending_exceeded_fails_the_mapped_task() -> None:
    with (
        pytest.raises(RuntimeError, match=r"3 items, more than max_pending=2"),
        weave(max_pending=2) as w,
    ):

        @w.do([1, 2, 3])
        def mapped(item: int) -> int:
            return item

    assert isinstance(w.result.exception, RuntimeError)


def test_max_pending_from_config_applies_to_mapped_tasks_only() -> None:
    wove.config(max_pending=2)
    with weave(error_mode="return") as w:

        @w.do
        def many() -> list[int]:
            return [1, 2, 3, 4]

        @w.do([1, 2])
        def small(item: int) -> int:
            return item

        @w.do("many")
        def big(item: int) -> int:
            return item

    assert w.result.many == [1, 2, 3, 4]
    assert w.result.small == [1, 2]
    assert isinstance(w.result.big, RuntimeError)
    assert "max_pending=2" in str(w.result.big)


@pytest.mark.parametrize("option", [{"workers": 2}, {"limit_per_minute": 60}])
def test_mapped_only_option_on_a_plain_task_is_rejected(option: dict[str, Any]) -> None:
    name = next(iter(option))
    with (
        weave() as w,
        pytest.raises(InvalidOptionError, match=f"{name} only apply to mapped tasks"),
    ):

        @w.do(**option)
        def plain() -> int:
            return 1


def test_mapped_only_defaults_from_config_skip_plain_tasks() -> None:
    wove.config(workers=2, limit_per_minute=6e7, max_pending=100)
    in_flight = peak = 0
    with weave() as w:

        @w.do
        async def plain() -> tuple[Any, ...]:
            run = active_run.get()
            assert run is not None
            own = run.settings["plain"]
            return own.workers, own.limit_per_minute, own.max_pending

        @w.do(range(10))
        async def mapped(item: int) -> int:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0)
            in_flight -= 1
            return item

    assert w.result.plain == (None, None, None)
    assert w.result.mapped == list(range(10))
    assert 1 <= peak <= 2


# -- §2.5 failures, error_mode="raise" ------------------------------------------------------------


def test_first_failure_cancels_running_tasks() -> None:
    events: list[str] = []
    block = weave()

    async def main() -> list[str]:
        slow_started = asyncio.Event()
        with pytest.raises(ValueError, match="boom"):  # noqa: PT012
            async with block as w:

                @w.do
                async def slow() -> None:
                    slow_started.set()
                    try:
                        await asyncio.Event().wait()
                    except asyncio.CancelledError:
                        events.append("slow cancelled")
                        raise

                @w.do
                async def boom() -> None:
                    await asyncio.wait_for(slow_started.wait(), WAIT)
                    raise ValueError("boom")

                @w.do
                async def after_slow(slow: None) -> None:
                    events.append("after_slow ran")

        # Seen before asyncio.run's own clean-up could cancel anything: the weave did it.
        return list(events)

    assert asyncio.run(main()) == ["slow cancelled"]
    assert block.result.cancelled == {"slow", "after_slow"}
    assert isinstance(block.result.exception, ValueError)


def test_first_failure_is_reraised_from_a_sync_block_and_finished_results_stay_readable(
    release: threading.Event,
) -> None:
    with pytest.raises(ValueError, match="bad value") as caught, weave() as w:  # noqa: PT012

        @w.do
        def loaded() -> int:
            return 1

        @w.do
        def slow() -> int:
            release.wait(WAIT)
            return 2

        @w.do
        def boom(loaded: int) -> int:
            raise ValueError("bad value")

        @w.do
        def after_boom(boom: int) -> int:
            return boom

    release.set()
    assert w.result.loaded == 1
    assert w.result["loaded"] == 1
    assert w.result.exception is caught.value
    assert w.result.cancelled == {"slow", "after_boom"}
    with pytest.raises(ValueError, match="bad value"):
        w.result.boom  # noqa: B018
    with pytest.raises(ValueError, match="bad value"):
        w.result["boom"]


def test_reading_a_cancelled_task_raises_task_cancelled_error(
    release: threading.Event,
) -> None:
    with pytest.raises(RuntimeError, match="boom"), weave() as w:  # noqa: PT012

        @w.do
        def slow() -> int:
            release.wait(WAIT)
            return 1

        @w.do
        def boom() -> None:
            raise RuntimeError("boom")

    release.set()
    with pytest.raises(TaskCancelledError, match="'slow' has no result: it was cancelled"):
        w.result.slow  # noqa: B018
    with pytest.raises(KeyError, match="'slow' has no result"):
        w.result["slow"]
    assert "slow" not in w.result
    assert w.result.get("slow") is None


def test_failure_stops_tasks_that_had_not_started() -> None:
    ran: list[str] = []
    with pytest.raises(ValueError, match="first"), weave() as w:  # noqa: PT012

        @w.do
        def first() -> None:
            raise ValueError("first")

        @w.do
        def second(first: None) -> None:
            ran.append("second")

        @w.do
        def third(second: None) -> None:
            ran.append("third")

    assert ran == []
    assert w.result.cancelled == {"second", "third"}


def test_raise_mode_failure_in_async_block_reraises() -> None:
    async def main() -> None:
        async with weave() as w:

            @w.do
            def broken() -> None:
                raise LookupError("nothing here")

    with pytest.raises(LookupError, match="nothing here"):
        asyncio.run(main())


def test_task_cancelled_by_its_own_code_fails_instead_of_hanging() -> None:
    with (  # noqa: PT012
        pytest.raises(RuntimeError, match="'gives_up' was cancelled, but not by its weave"),
        weave() as w,
    ):

        @w.do
        async def gives_up() -> None:
            raise asyncio.CancelledError

        @w.do
        async def after(gives_up: None) -> None:
            pass

    assert w.result.cancelled == {"after"}


# -- §2.5 failures, error_mode="return" -----------------------------------------------------------


def test_return_mode_records_failures_and_skips_dependents() -> None:
    ran: list[str] = []
    with weave(error_mode="return") as w:

        @w.do
        def bad() -> int:
            raise ValueError("bad input")

        @w.do
        def child(bad: int) -> int:
            ran.append("child")
            return bad

        @w.do
        def grandchild(child: int) -> int:
            ran.append("grandchild")
            return child

        @w.do
        def independent() -> str:
            return "ok"

    error = w.result.bad
    assert isinstance(error, ValueError)
    assert ran == []
    assert isinstance(w.result.child, UpstreamTaskError)
    assert w.result.child.upstream is error
    assert w.result.child.failed_dependency == "bad"
    assert isinstance(w.result.grandchild, UpstreamTaskError)
    assert w.result.grandchild.upstream is error
    assert "did not run because its dependency 'child'" in str(w.result.grandchild)
    assert w.result.independent == "ok"
    assert w.result.exception is error
    assert w.result.cancelled == set()
    assert list(w.result.keys()) == ["bad", "child", "grandchild", "independent"]


def test_return_mode_lets_independent_tasks_keep_running_after_a_failure() -> None:
    with weave(error_mode="return") as w:

        @w.do
        async def bad() -> None:
            raise ValueError("bad")

        @w.do
        async def independent() -> str:
            # Still running after the failure was recorded: nothing cancelled it.
            await _yield_until(lambda: w.result.exception is not None)
            await asyncio.sleep(0)
            return "finished"

    assert w.result.independent == "finished"
    assert isinstance(w.result.bad, ValueError)


def test_exception_is_the_first_failure_in_time_not_in_declaration_order() -> None:
    with weave(error_mode="return") as w:

        @w.do
        async def declared_first() -> None:
            await _yield_until(lambda: w.result.exception is not None)
            raise ValueError("second in time")

        @w.do
        async def declared_second() -> None:
            raise ValueError("first in time")

    assert str(w.result.exception) == "first in time"
    assert str(w.result.declared_first) == "second in time"


def test_dependent_of_two_tasks_records_the_one_that_failed() -> None:
    with weave(error_mode="return") as w:

        @w.do
        def fine() -> int:
            return 1

        @w.do
        def broken() -> int:
            raise OSError("disk")

        @w.do
        def both(fine: int, broken: int) -> int:
            return fine + broken

    assert w.result.fine == 1
    assert w.result.both.failed_dependency == "broken"
    assert isinstance(w.result.both.upstream, OSError)
    assert w.result.both.__cause__ is w.result.broken


def test_timeout_in_return_mode_does_not_abort_the_weave() -> None:
    ran: list[str] = []
    with weave(error_mode="return") as w:
        timed_out = asyncio.Event()

        @w.do(timeout=0.05)
        async def hangs() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                timed_out.set()

        @w.do
        def after_hangs(hangs: None) -> None:
            ran.append("after_hangs")

        @w.do
        async def independent() -> str:
            await asyncio.wait_for(timed_out.wait(), WAIT)
            await _yield_until(lambda: w.result.exception is not None)
            return "done"

    assert isinstance(w.result.hangs, TimeoutError)
    assert "task 'hangs' timed out" in str(w.result.hangs)
    assert isinstance(w.result.after_hangs, UpstreamTaskError)
    assert w.result.independent == "done"
    assert ran == []


def test_error_mode_must_be_raise_or_return() -> None:
    with pytest.raises(InvalidOptionError, match=r"error_mode must be one of 'raise', 'return'"):
        weave(error_mode="ignore")
