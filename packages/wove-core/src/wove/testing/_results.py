"""Conformance tests for getting work done: callables of every shape, mapping, concurrency,
large payloads, many runs at once, ``merge()``, and each body running once.

The checks, and what each asserts:

``test_sync_tasks_return_results``
    Sync tasks return their values, dependencies and injected data arrive as arguments, and
    nested values come back equal.
``test_async_tasks_return_results``
    Async tasks do the same, mixed with sync ones.
``test_async_with_block_runs_tasks_in_environment``
    An ``async with`` weave runs its tasks in the environment.
``test_closures_and_lambdas_capture_enclosing_values``
    Closures and lambdas run with the values they captured.
``test_mapped_tasks_keep_input_order``
    Mapping over local items and over an upstream result gives results in input order, even
    when later items finish first.
``test_workers_bound_concurrency``
    ``workers=K`` lets at most K items of a mapped task run at once (sync and async).
``test_large_arguments_and_results_round_trip``
    A 10 MB argument and a 10 MB result cross the boundary intact, within the hang guard.
``test_many_concurrent_runs_succeed``
    :attr:`~ConformanceBase.concurrent_runs` mapped runs in flight at once all succeed.
``test_merge_from_a_task_runs_in_the_environment``
    ``merge()`` from a sync and from an async task runs single and mapped calls in the
    environment (a copy of values across a boundary, the very object in process).
``test_each_task_body_runs_exactly_once``
    Every task body -- sync, async, failing, each mapped item -- runs exactly once: an executor
    that delivers a run twice, or retries a failure nobody asked it to retry, fails here.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import wove

from ._base import ConformanceBase
from ._bodies import append_line, max_overlap

__all__ = ["LARGE_PAYLOAD_BYTES", "ResultConformance"]

#: Ten megabytes and one byte: larger than any default pipe, stream or message buffer.
LARGE_PAYLOAD_BYTES: Final = 10 * 1024 * 1024 + 1


class ResultConformance(ConformanceBase):
    def test_sync_tasks_return_results(self) -> None:
        with self.weave(base=20) as w:

            @w.do
            def first() -> int:
                return 1

            @w.do
            def second(first: int, base: int) -> int:
                return first + base

            @w.do
            def third(second: int) -> dict[str, Any]:
                return {"value": second, "nested": [second, "text", None, 1.5]}

        assert w.result.first == 1
        assert w.result.second == 21
        assert w.result.final == {"value": 21, "nested": [21, "text", None, 1.5]}

    def test_async_tasks_return_results(self) -> None:
        with self.weave(base=20) as w:

            @w.do
            async def first() -> int:
                await asyncio.sleep(0.01)
                return 1

            @w.do
            async def second(first: int, base: int) -> int:
                await asyncio.sleep(0)
                return first + base

            @w.do
            def third(second: int) -> int:
                return second * 2

        assert w.result.to_dict() == {"first": 1, "second": 21, "third": 42}

    def test_async_with_block_runs_tasks_in_environment(self) -> None:
        async def main() -> wove.WoveResult:
            async with self.weave() as w:

                @w.do
                async def fetched() -> list[int]:
                    return [1, 2, 3]

                @w.do
                def total(fetched: list[int]) -> int:
                    return sum(fetched)

            return w.result

        assert asyncio.run(main()).total == 6

    def test_closures_and_lambdas_capture_enclosing_values(self) -> None:
        factor = 3
        labels = {"a": "alpha", "b": "beta"}
        scale: Callable[[int], int] = lambda value: value * factor  # noqa: E731
        shout: Callable[[str], str] = lambda text: f"{text.upper()}!"  # noqa: E731

        with self.weave() as w:

            @w.do
            def scaled() -> list[int]:
                return [scale(value) for value in range(4)]

            @w.do(["a", "b"])
            def named(key: str) -> str:
                return shout(labels[key])

        assert w.result.scaled == [0, 3, 6, 9]
        assert w.result.named == ["ALPHA!", "BETA!"]

    def test_mapped_tasks_keep_input_order(self) -> None:
        items = list(range(8))

        with self.weave() as w:

            @w.do(items)
            def delayed(item: int) -> int:
                time.sleep((len(items) - item) * 0.01)  # later items finish first
                return item * 10

            @w.do(items)
            async def adelayed(item: int) -> str:
                await asyncio.sleep((len(items) - item) * 0.01)
                return f"item-{item}"

            @w.do
            def words() -> list[str]:
                return ["wove", "maps", "over", "upstream", "results"]

            @w.do("words")
            def lengths(word: str, words: list[str]) -> tuple[int, int]:
                position = words.index(word)
                time.sleep((len(words) - position) * 0.01)
                return (position, len(word))

        assert w.result.delayed == [item * 10 for item in items]
        assert w.result.adelayed == [f"item-{item}" for item in items]
        assert w.result.lengths == [(0, 4), (1, 4), (2, 4), (3, 8), (4, 7)]

    def test_workers_bound_concurrency(self, shared_tmp_path: Path) -> None:
        limit = 2
        sync_log = shared_tmp_path / "sync-workers.log"
        async_log = shared_tmp_path / "async-workers.log"
        sync_append = append_line(sync_log)
        async_append = append_line(async_log)

        with self.weave() as w:

            @w.do(range(6), workers=limit)
            def sync_items(index: int) -> int:
                sync_append(f"start {index}")
                time.sleep(0.1)
                sync_append(f"end {index}")
                return index

            @w.do(range(6), workers=limit)
            async def async_items(index: int) -> int:
                async_append(f"start {index}")
                await asyncio.sleep(0.1)
                async_append(f"end {index}")
                return index

        assert w.result.sync_items == list(range(6))
        assert w.result.async_items == list(range(6))
        for log in (sync_log, async_log):
            lines = log.read_text().splitlines()
            assert len(lines) == 12, lines
            assert max_overlap(lines) <= limit, f"more than workers={limit} ran at once: {lines}"

    def test_large_arguments_and_results_round_trip(self) -> None:
        payload = os.urandom(LARGE_PAYLOAD_BYTES)

        with self.weave(payload=payload) as w:

            @w.do
            def reversed_payload(payload: bytes) -> bytes:
                return payload[::-1]

        assert len(w.result.reversed_payload) == LARGE_PAYLOAD_BYTES
        assert w.result.reversed_payload == payload[::-1]

    def test_many_concurrent_runs_succeed(self) -> None:
        count = self.concurrent_runs

        with self.weave() as w:

            @w.do(range(count))
            def squared(number: int) -> int:
                return number * number

        assert w.result.squared == [number * number for number in range(count)]

    def test_merge_from_a_task_runs_in_the_environment(self, runs_in_process: bool) -> None:
        target = self.environment_name
        offset = 100
        sentinel = ["captured", "list"]

        # The calling tasks stay in the local default environment; merge() sends the work.
        # Each caller gets its own weave: a sync task blocked in merge() must not be stranded
        # by a sibling that fails.
        with self.weave(environment="default") as sync_weave:

            @sync_weave.do
            def from_sync() -> dict[str, Any]:
                return {
                    "single": wove.merge(lambda: 21 * 2, environment=target),
                    "mapped": wove.merge(lambda item: item + offset, [1, 2, 3], environment=target),
                    "same": wove.merge(lambda: sentinel, environment=target),
                }

        with self.weave(environment="default") as async_weave:

            @async_weave.do
            async def from_async() -> dict[str, Any]:
                return {
                    "single": await wove.merge(lambda: 21 * 2, environment=target),
                    "mapped": await wove.merge(
                        lambda item: item + offset, [1, 2, 3], environment=target
                    ),
                    "same": await wove.merge(lambda: sentinel, environment=target),
                }

        for merged in (sync_weave.result.from_sync, async_weave.result.from_async):
            assert merged["single"] == 42
            assert merged["mapped"] == [101, 102, 103]
            assert merged["same"] == sentinel
            # In process the callable hands back the very object; across a boundary, a copy.
            assert (merged["same"] is sentinel) is runs_in_process

    def test_each_task_body_runs_exactly_once(
        self, runs_in_process: bool, shared_tmp_path: Path
    ) -> None:
        log = shared_tmp_path / "bodies.log"
        record = append_line(log)

        with self.weave(error_mode="return") as w:

            @w.do
            def single() -> str:
                record("single")
                return "single"

            @w.do
            async def asingle() -> str:
                record("asingle")
                await asyncio.sleep(0)
                return "asingle"

            @w.do
            def raises() -> None:
                record("raises")
                raise ValueError("fails once, on purpose; nothing asked for a retry")

            @w.do(range(3))
            def mapped(item: int) -> int:
                record(f"mapped {item}")
                return item

        if not runs_in_process:
            # A second delivery of any of these runs would have run its copy by now.
            self.let_workers_run(0.6)
        assert w.result.single == "single"
        assert w.result.asingle == "asingle"
        assert isinstance(w.result.raises, ValueError)
        assert w.result.mapped == [0, 1, 2]
        ran = sorted(log.read_text().splitlines())
        twice = sorted({body for body in ran if ran.count(body) > 1})
        assert not twice, f"task bodies ran more than once: {twice} (every run: {ran})"
        expected = sorted(["single", "asingle", "raises", "mapped 0", "mapped 1", "mapped 2"])
        assert ran == expected
