"""The delivery helpers that do not need a worker: idempotency keys, the process-wide in-flight
cap (shared by event loops in different threads), and rebuilding remote exceptions."""

from __future__ import annotations

import asyncio
import threading

import pytest

from wove import EnvironmentExecutionError, InvalidOptionError
from wove._delivery import InFlightLimit, rebuild_exception, resolve_idempotency_key
from wove._frames import NormalizedError, TaskError
from wove._serializer import dumps


def test_no_idempotency_key_setting_gives_no_key() -> None:
    assert resolve_idempotency_key(None, "task") is None


def test_plain_value_is_the_key_and_mapped_items_get_their_index() -> None:
    assert resolve_idempotency_key("order-7", "task") == "order-7"
    assert resolve_idempotency_key("order-7", "task", item="a", index=3) == "order-7-3"


def test_format_string_sees_task_item_and_index() -> None:
    key = resolve_idempotency_key("{task}:{item}:{index}", "charge", item="x", index=2)
    assert key == "charge:x:2"


def test_callable_gets_the_item_for_mapped_tasks_and_nothing_otherwise() -> None:
    assert resolve_idempotency_key(lambda: "whole", "task") == "whole"
    assert resolve_idempotency_key(lambda item: f"item-{item}", "task", 5, 0) == "item-5"


def test_format_string_with_an_unknown_field_names_the_fields_it_may_use() -> None:
    with pytest.raises(InvalidOptionError, match=r"\{task\}, \{item\} and \{index\}"):
        resolve_idempotency_key("{customer}", "task")


def test_in_flight_limit_is_shared_by_loops_in_different_threads() -> None:
    limit = InFlightLimit(2)
    lock = threading.Lock()
    running = 0
    peak = 0

    async def one_run(gate: asyncio.Event) -> None:
        nonlocal running, peak
        await limit.acquire()
        try:
            with lock:
                running += 1
                peak = max(peak, running)
            await asyncio.sleep(0.005)  # simulated work, not synchronisation
            with lock:
                running -= 1
        finally:
            limit.release()
        gate.set()

    async def many() -> None:
        gates = [asyncio.Event() for _ in range(10)]
        await asyncio.gather(*(one_run(gate) for gate in gates))

    threads = [threading.Thread(target=asyncio.run, args=(many(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert peak <= 2
    assert limit.in_flight == 0


def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    async def scenario() -> int:
        limit = InFlightLimit(1)
        await limit.acquire()
        waiter = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        limit.release()
        await asyncio.wait_for(limit.acquire(), 5)  # the slot is free again
        limit.release()
        return limit.in_flight

    assert asyncio.run(scenario()) == 0


def _error(exception: bytes | None) -> TaskError:
    return TaskError(
        run_id="run-1",
        error=NormalizedError(
            kind="shop.PaymentError",
            message="card declined",
            traceback="Traceback (most recent call last):\n  ...\nPaymentError: card declined",
            retryable=False,
        ),
        exception=exception,
    )


def test_rebuilt_exception_keeps_its_type_and_carries_the_remote_traceback() -> None:
    rebuilt = rebuild_exception(_error(dumps(ValueError("card declined"), "test")))
    assert isinstance(rebuilt, ValueError)
    assert str(rebuilt) == "card declined"
    notes = getattr(rebuilt, "__notes__", [""])
    assert "Remote traceback" in notes[0] or not hasattr(rebuilt, "add_note")


def test_exception_that_cannot_be_rebuilt_becomes_environment_execution_error() -> None:
    rebuilt = rebuild_exception(_error(b"not a pickle"))
    assert isinstance(rebuilt, EnvironmentExecutionError)
    assert rebuilt.kind == "shop.PaymentError"
    assert rebuilt.retryable is False
    assert "card declined" in str(rebuilt)
    assert "Remote traceback" in str(rebuilt)


def test_missing_pickled_exception_becomes_environment_execution_error() -> None:
    rebuilt = rebuild_exception(_error(None))
    assert isinstance(rebuilt, EnvironmentExecutionError)
    assert rebuilt.remote_traceback.endswith("PaymentError: card declined")
