"""The engine's side of remote execution, against a small but real executor: frames go to a
``WorkerRuntime`` in the same process (no pipe), so the tests can break the event stream, hold
back a cancellation acknowledgement, and read every frame sent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

import wove
from wove import DeliveryOrphanedError, EnvironmentExecutionError, weave
from wove.integrations.worker import WorkerRuntime
from wove.plugins import CancelTask, Executor, ExecutorKind, Frame, RunTask

_BREAK = object()


class RuntimeExecutor(Executor):
    """Runs frames through a ``WorkerRuntime`` on the dispatch loop."""

    kind: ClassVar[ExecutorKind] = "process"

    def __init__(
        self, *, ignore_cancel: bool = False, on_cancel: Callable[[], None] | None = None
    ) -> None:
        self.ignore_cancel = ignore_cancel
        self.on_cancel = on_cancel
        self.sent: list[Frame] = []
        self.starts = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        self.starts += 1
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._runtime = WorkerRuntime(self._events.put, max_threads=8)

    async def send(self, frame: Any) -> None:
        self.sent.append(frame)
        if isinstance(frame, CancelTask) and self.on_cancel is not None:
            self.on_cancel()
        if isinstance(frame, CancelTask) and self.ignore_cancel:
            return
        await self._runtime.handle(frame)

    async def recv(self) -> Any:
        event = await self._events.get()
        if event is _BREAK:
            raise ConnectionError("the event stream broke")
        return event

    async def stop(self) -> None:
        await self._runtime.aclose()

    def break_stream(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._events.put_nowait, _BREAK)


@pytest.fixture
def executor() -> RuntimeExecutor:
    executor = RuntimeExecutor()
    wove.config(environments={"far": {"executor": executor}})
    return executor


def test_remote_task_runs_through_the_executor(executor: RuntimeExecutor) -> None:
    with weave() as w:

        @w.do(environment="far")
        def answer() -> int:
            return 42

    assert w.result.answer == 42
    assert [type(frame).__name__ for frame in executor.sent] == ["RunTask"]


def _break_stream_of(environment: str) -> None:
    """Called inside a task body: the executor is found by name, in this same process."""
    from wove._config import current_config
    from wove._environments import resolve_environment

    executor = resolve_environment(current_config(), environment).executor
    assert isinstance(executor, RuntimeExecutor)
    executor.break_stream()


def test_broken_event_stream_orphans_runs_and_the_next_weave_restarts_it(
    executor: RuntimeExecutor,
) -> None:
    breaker = _break_stream_of

    with pytest.raises(DeliveryOrphanedError, match="event stream broke"), weave() as w:

        @w.do(environment="far")
        def breaks_its_own_stream() -> int:
            breaker("far")  # queued before this run's result, so the result never arrives
            return 1

    with weave() as w:

        @w.do(environment="far")
        def after() -> int:
            return 2

    assert w.result.after == 2
    assert executor.starts == 2


def _wait_for(path: str) -> None:
    import os
    import time

    for _ in range(3000):  # bounded: 30 s
        if os.path.exists(path):
            return
        time.sleep(0.01)  # inside the task body: simulated waiting work


@pytest.mark.timeout(20)  # a hang guard: without the fix this waits the full ack window
def test_require_ack_stops_waiting_when_the_run_finishes_anyway(tmp_path: Path) -> None:
    running = str(tmp_path / "running")
    go = str(tmp_path / "go")
    # The cancel is never acknowledged, but it lets the run finish normally.
    executor = RuntimeExecutor(ignore_cancel=True, on_cancel=Path(go).touch)
    wove.config(environments={"far": {"executor": executor, "delivery_cancel_mode": "require_ack"}})
    wait_for = _wait_for

    with pytest.raises(ValueError, match="sibling"), weave() as w:  # noqa: PT012

        @w.do(environment="far")
        def slow() -> int:
            Path(running).touch()
            wait_for(go)  # still running when its sibling fails; its cancel is ignored
            return 1

        @w.do
        def failing() -> None:
            wait_for(running)
            raise ValueError("sibling")

    assert isinstance(w.result.exception, ValueError)
    assert any(isinstance(frame, CancelTask) for frame in executor.sent)


def test_retries_are_new_runs_with_their_attempt_and_a_distinct_key(
    executor: RuntimeExecutor, tmp_path: Path
) -> None:
    counter = tmp_path / "count"

    with weave() as w:

        @w.do(environment="far", retries=2, delivery_idempotency_key="charge-7")
        def flaky() -> str:
            attempt = len(counter.read_text()) if counter.exists() else 0
            counter.write_text("x" * (attempt + 1))
            if attempt < 2:
                raise ConnectionError("try again")
            return "charged"

    assert w.result.flaky == "charged"
    runs = [frame for frame in executor.sent if isinstance(frame, RunTask)]
    assert [run.delivery.attempt for run in runs] == [1, 2, 3]
    assert [run.delivery.idempotency_key for run in runs] == [
        "charge-7",
        "charge-7-retry1",
        "charge-7-retry2",
    ]
    assert len({run.run_id for run in runs}) == 3


def test_worker_side_serialization_failure_is_not_retried(
    executor: RuntimeExecutor, tmp_path: Path
) -> None:
    counter = tmp_path / "count"

    with pytest.raises(EnvironmentExecutionError, match="lock") as raised, weave() as w:

        @w.do(environment="far", retries=3)
        def unpicklable() -> object:
            counter.write_text(counter.read_text() + "x" if counter.exists() else "x")
            return threading.Lock()

    assert raised.value.source == "serialization"
    assert raised.value.retryable is False
    assert counter.read_text() == "x"
    assert w.result.exception is raised.value


def test_timeout_counts_from_the_in_flight_slot_not_from_the_queue(
    executor: RuntimeExecutor,
) -> None:
    with weave() as w:
        # Each item takes 0.3 s and only one runs at a time: the third waits 0.6 s for its
        # slot, longer than its 0.5 s timeout, and must still succeed.
        @w.do(range(3), environment="far", timeout=0.5, delivery_max_in_flight=1)
        def one_at_a_time(item: int) -> int:
            import time

            time.sleep(0.3)  # simulated work
            return item

    assert w.result.one_at_a_time == [0, 1, 2]


def test_in_flight_cap_belongs_to_the_environment_whatever_value_a_task_asks_for() -> None:
    from wove._delivery import in_flight_limit

    first = in_flight_limit("shared-env", 2)
    second = in_flight_limit("shared-env", 3)
    assert first is second
    assert second.limit == 3
