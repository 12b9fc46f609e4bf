"""How one task is invoked: retries and backoff (§2.6), timeouts (§2.5), the rate limit (§2.4)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from wove import EnvironmentExecutionError, weave
from wove import _execution as execution
from wove._execution import (
    MAX_BACKOFF_SECONDS,
    RateLimiter,
    backoff_delay,
    is_retryable,
    run_async_attempts,
    run_mapped,
    run_sync_attempts,
    with_timeout,
)
from wove._options import TaskSettings

WAIT = 10.0


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class NotRetryable(Exception):
    retryable = False


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=4)
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def recorded_backoff(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int]]:
    """Record every backoff the engine asks for, and wait for none of them."""
    calls: list[tuple[float, int]] = []

    def record(base: float, attempt: int, jitter: Callable[[], float] = lambda: 0.0) -> float:
        calls.append((base, attempt))
        return 0.0

    monkeypatch.setattr(execution, "backoff_delay", record)
    return calls


@pytest.fixture
def recorded_rate_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace the limiter's clock with a frozen one and record each wait instead of sleeping."""
    waits: list[float] = []
    lock = threading.Lock()

    class RecordingLimiter(RateLimiter):
        def __init__(self, per_minute: float, clock: Callable[[], float] | None = None) -> None:
            super().__init__(per_minute, clock=FakeClock())

        async def acquire(self) -> None:
            with lock:
                waits.append(self.reserve())

        def acquire_blocking(self) -> None:
            with lock:
                waits.append(self.reserve())

    monkeypatch.setattr(execution, "RateLimiter", RecordingLimiter)
    return waits


def settings(**values: Any) -> TaskSettings:
    return TaskSettings(environment="default", **values)


# -- the rate limiter -----------------------------------------------------------------------------


def test_rate_limiter_spaces_starts_sixty_over_limit_seconds_apart() -> None:
    limiter = RateLimiter(120, clock=FakeClock())

    assert limiter.interval == 0.5
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.5, 1.0, 1.5]


def test_rate_limiter_gives_no_burst_after_idle_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock)
    assert limiter.reserve() == 0.0

    clock.now += 30.0

    assert limiter.reserve() == 0.0
    assert limiter.reserve() == 1.0


def test_rate_limiter_waits_only_for_what_is_left_of_the_slot() -> None:
    clock = FakeClock()
    limiter = RateLimiter(30, clock=clock)
    limiter.reserve()

    clock.now += 0.5

    assert limiter.reserve() == pytest.approx(1.5)


def test_rate_limiter_never_allows_more_than_the_limit_in_any_minute() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(10, clock=clock)

    starts = [limiter.reserve() for _ in range(35)]

    for first in starts:
        in_window = [start for start in starts if first <= start < first + 60.0]
        assert len(in_window) <= 10


def test_rate_limiter_hands_out_distinct_slots_across_threads() -> None:
    limiter = RateLimiter(600, clock=FakeClock(0.0))
    waits: list[float] = []
    barrier = threading.Barrier(8, timeout=WAIT)

    def claim() -> None:
        barrier.wait()
        for _ in range(25):
            waits.append(limiter.reserve())

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    assert sorted(round(wait * 10) for wait in waits) == list(range(200))


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
def test_limit_per_minute_reserves_a_slot_for_every_item(
    recorded_rate_waits: list[float], is_async: bool
) -> None:
    with weave() as w:
        if is_async:

            @w.do(range(5), limit_per_minute=600)
            async def mapped(item: int) -> int:
                return item

        else:

            @w.do(range(5), limit_per_minute=600, workers=1)
            def mapped(item: int) -> int:
                return item

    assert w.result.mapped == [0, 1, 2, 3, 4]
    assert sorted(recorded_rate_waits) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_rate_limiter_rejects_a_limit_that_is_not_positive() -> None:
    from wove import InvalidOptionError

    with weave() as w, pytest.raises(InvalidOptionError, match="starts per minute > 0"):

        @w.do([1], limit_per_minute=0)
        def mapped(item: int) -> int:
            return item


# -- backoff --------------------------------------------------------------------------------------


def test_backoff_doubles_with_each_attempt_and_jitters_the_upper_half() -> None:
    assert [backoff_delay(1.0, attempt, jitter=lambda: 0.5) for attempt in (1, 2, 3, 4)] == [
        0.75,
        1.5,
        3.0,
        6.0,
    ]
    assert backoff_delay(2.0, 1, jitter=lambda: 0.0) == 1.0
    assert backoff_delay(2.0, 1, jitter=lambda: 1.0) == 2.0


def test_backoff_is_capped() -> None:
    assert backoff_delay(10.0, 30, jitter=lambda: 1.0) == MAX_BACKOFF_SECONDS
    assert backoff_delay(10.0, 30, jitter=lambda: 0.0) == MAX_BACKOFF_SECONDS / 2


def test_no_backoff_base_means_no_wait() -> None:
    assert backoff_delay(0.0, 5, jitter=lambda: 1.0) == 0.0


def test_default_jitter_stays_between_half_and_all_of_the_ceiling() -> None:
    for _ in range(200):
        assert 2.0 <= backoff_delay(1.0, 3) <= 4.0


# -- retries --------------------------------------------------------------------------------------


def test_errors_marked_not_retryable_are_recognised() -> None:
    assert is_retryable(ValueError("x"))
    assert not is_retryable(NotRetryable())
    assert not is_retryable(EnvironmentExecutionError("remote", retryable=False))
    assert is_retryable(EnvironmentExecutionError("remote", retryable=True))


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
def test_retries_count_extra_attempts(is_async: bool) -> None:
    attempts: list[int] = []

    def attempt() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise ConnectionError(f"attempt {len(attempts)}")
        return "third time lucky"

    with weave() as w:
        if is_async:

            @w.do(retries=2)
            async def flaky() -> str:
                return attempt()

        else:

            @w.do(retries=2)
            def flaky() -> str:
                return attempt()

    assert w.result.flaky == "third time lucky"
    assert attempts == [1, 2, 3]


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
def test_retries_exhausted_raise_the_last_failure(is_async: bool) -> None:
    attempts: list[int] = []

    def attempt() -> None:
        attempts.append(len(attempts) + 1)
        raise ConnectionError(f"attempt {len(attempts)}")

    with pytest.raises(ConnectionError, match="attempt 3"), weave() as w:  # noqa: PT012
        if is_async:

            @w.do(retries=2)
            async def flaky() -> None:
                attempt()

        else:

            @w.do(retries=2)
            def flaky() -> None:
                attempt()

    assert len(attempts) == 3


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
def test_without_retries_a_task_runs_once(is_async: bool) -> None:
    attempts: list[int] = []
    with weave(error_mode="return") as w:
        if is_async:

            @w.do
            async def once() -> None:
                attempts.append(1)
                raise ValueError("no")

        else:

            @w.do
            def once() -> None:
                attempts.append(1)
                raise ValueError("no")

    assert attempts == [1]


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
def test_error_marked_not_retryable_is_not_retried(is_async: bool) -> None:
    attempts: list[int] = []
    with pytest.raises(NotRetryable, match="not worth retrying"), weave() as w:  # noqa: PT012
        if is_async:

            @w.do(retries=5)
            async def refuses() -> None:
                attempts.append(1)
                raise NotRetryable("not worth retrying")

        else:

            @w.do(retries=5)
            def refuses() -> None:
                attempts.append(1)
                raise NotRetryable("not worth retrying")

    assert attempts == [1]


@pytest.mark.parametrize(
    ("is_async", "options"),
    [
        pytest.param(True, {}, id="async"),
        pytest.param(True, {"workers": 2}, id="async workers"),
        pytest.param(False, {}, id="sync"),
        pytest.param(False, {"timeout": 60.0}, id="sync timeout"),
    ],
)
def test_mapped_items_are_retried_one_by_one(is_async: bool, options: dict[str, Any]) -> None:
    failed_once: set[int] = set()
    calls: list[int] = []
    lock = threading.Lock()

    def attempt(item: int) -> int:
        with lock:
            calls.append(item)
            if item % 2 and item not in failed_once:
                failed_once.add(item)
                raise ConnectionError(f"item {item}")
        return item * 10

    with weave() as w:
        if is_async:

            @w.do(range(6), retries=1, **options)
            async def mapped(item: int) -> int:
                return attempt(item)

        else:

            @w.do(range(6), retries=1, **options)
            def mapped(item: int) -> int:
                return attempt(item)

    assert w.result.mapped == [0, 10, 20, 30, 40, 50]
    assert sorted(calls) == [0, 1, 1, 2, 3, 3, 4, 5, 5]


def test_mapped_item_marked_not_retryable_is_not_retried() -> None:
    calls: list[int] = []
    with pytest.raises(NotRetryable, match="not worth retrying"), weave() as w:

        @w.do([1], retries=3)
        def mapped(item: int) -> None:
            calls.append(item)
            raise NotRetryable("not worth retrying")

    assert calls == [1]


@pytest.mark.parametrize(
    ("is_async", "mapped"),
    [
        pytest.param(True, False, id="async"),
        pytest.param(False, False, id="sync"),
        pytest.param(False, True, id="sync mapped"),
        pytest.param(True, True, id="async mapped"),
    ],
)
def test_retry_backoff_is_asked_for_each_retry(
    recorded_backoff: list[tuple[float, int]], is_async: bool, mapped: bool
) -> None:
    attempts: list[int] = []

    def attempt() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("again")
        return "ok"

    options: dict[str, Any] = {"retries": 2, "retry_backoff": 0.5}
    with weave() as w:
        if mapped and is_async:

            @w.do([1], **options)
            async def task(item: int) -> str:
                return attempt()

        elif mapped:

            @w.do([1], **options)
            def task(item: int) -> str:
                return attempt()

        elif is_async:

            @w.do(**options)
            async def task() -> str:
                return attempt()

        else:

            @w.do(**options)
            def task() -> str:
                return attempt()

    assert w.result.task == (["ok"] if mapped else "ok")
    assert recorded_backoff == [(0.5, 1), (0.5, 2)]


# -- timeouts -------------------------------------------------------------------------------------


def test_async_timeout_raises_builtin_timeout_error_naming_the_task() -> None:
    with (
        pytest.raises(TimeoutError, match=r"task 'hangs' timed out after 0.05s") as caught,
        weave() as w,
    ):

        @w.do(timeout=0.05)
        async def hangs() -> None:
            await asyncio.Event().wait()

    assert type(caught.value) is TimeoutError
    assert w.result.exception is caught.value


def test_sync_timeout_raises_timeout_error_naming_the_task(release: threading.Event) -> None:
    with pytest.raises(TimeoutError, match="task 'blocks' timed out"), weave() as w:

        @w.do(timeout=0.05)
        def blocks() -> None:
            release.wait(WAIT)

    release.set()


def test_timeouts_are_retried_like_any_failure() -> None:
    attempts: list[int] = []
    with weave() as w:

        @w.do(timeout=0.05, retries=2)
        async def slow_then_fast() -> int:
            attempts.append(1)
            if len(attempts) < 3:
                await asyncio.Event().wait()
            return len(attempts)

    assert w.result.slow_then_fast == 3


def test_sync_timeouts_are_retried_like_any_failure(release: threading.Event) -> None:
    attempts: list[int] = []
    lock = threading.Lock()
    with weave() as w:

        @w.do(timeout=0.05, retries=1)
        def slow_then_fast() -> str:
            with lock:
                attempts.append(1)
                first = len(attempts) == 1
            if first:
                release.wait(WAIT)
                return "late"
            return "fast"

    release.set()
    assert w.result.slow_then_fast == "fast"


def test_a_task_raising_its_own_timeout_error_keeps_its_message() -> None:
    with pytest.raises(TimeoutError, match=r"^upstream service timed out$"), weave() as w:

        @w.do(timeout=30.0)
        async def calls_service() -> None:
            raise TimeoutError("upstream service timed out")


def test_mapped_item_timeout_fails_the_mapped_task() -> None:
    with pytest.raises(TimeoutError, match="task 'mapped' timed out"), weave() as w:

        @w.do([1, 2], timeout=0.05)
        async def mapped(item: int) -> int:
            if item == 2:
                await asyncio.Event().wait()
            return item


# -- the building blocks, called directly ---------------------------------------------------------


def test_with_timeout_returns_the_value_in_time() -> None:
    async def quick() -> int:
        return 5

    assert asyncio.run(with_timeout(quick(), 30.0, "quick")) == 5


def test_run_async_attempts_retries_then_returns() -> None:
    calls: list[int] = []

    async def call() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("once")
        return len(calls)

    assert asyncio.run(run_async_attempts("t", call, settings(retries=1))) == 2


def test_run_sync_attempts_runs_in_the_given_pool(pool: ThreadPoolExecutor) -> None:
    def call() -> str:
        return threading.current_thread().name

    async def main() -> str:
        return await run_sync_attempts("t", call, settings(), pool)  # type: ignore[no-any-return]

    assert asyncio.run(main()).startswith("ThreadPoolExecutor")


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
def test_run_mapped_of_nothing_is_an_empty_list(pool: ThreadPoolExecutor, is_async: bool) -> None:
    result = asyncio.run(run_mapped("m", str, [], settings(), is_async=is_async, pool=pool))

    assert result == []


def test_run_mapped_sync_keeps_order_with_one_worker(pool: ThreadPoolExecutor) -> None:
    result = asyncio.run(
        run_mapped("m", lambda x: x * 2, range(5), settings(workers=1), is_async=False, pool=pool)
    )

    assert result == [0, 2, 4, 6, 8]
