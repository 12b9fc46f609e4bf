"""Background and forked weaves (§2.10): ``weave(background=True)`` and ``weave(fork=True)``."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import wove
from wove import WoveResult, weave

WAIT = 10.0
CHILD_SECONDS = 60.0


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


class Recorder:
    """An ``on_done`` callback that remembers what it saw and where it ran."""

    def __init__(self) -> None:
        self.results: list[WoveResult] = []
        self.threads: list[str] = []
        self.called = threading.Event()

    def __call__(self, result: WoveResult) -> None:
        self.results.append(result)
        self.threads.append(threading.current_thread().name)
        self.called.set()


# -- background=True ------------------------------------------------------------------------------


def test_background_weave_returns_at_once_and_calls_on_done(release: threading.Event) -> None:
    on_done = Recorder()
    with weave(background=True, on_done=on_done) as w:

        @w.do
        def slow() -> str:
            # Only reachable if the block returned before the task finished.
            assert release.wait(WAIT), "the block waited for its background tasks"
            return "done"

        @w.do
        def after(slow: str) -> str:
            return slow.upper()

    assert "after" not in w.result
    release.set()
    assert w.join(WAIT)
    assert on_done.called.is_set()
    assert on_done.results == [w.result]
    assert on_done.threads == ["wove-background"]
    assert w.result.final == "DONE"


def test_background_weave_from_async_with_returns_at_once(release: threading.Event) -> None:
    on_done = Recorder()

    async def main() -> wove.WeaveBlock:
        async with weave(background=True, on_done=on_done) as w:

            @w.do
            async def slow() -> int:
                ready = await asyncio.to_thread(release.wait, WAIT)
                assert ready, "the block waited for its background tasks"
                return 1

        return w

    block = asyncio.run(main())
    assert block.result.get("slow") is None
    release.set()

    assert block.join(WAIT)
    assert block.result.slow == 1
    assert on_done.results == [block.result]


def test_join_reports_whether_the_background_weave_finished(release: threading.Event) -> None:
    with weave(background=True) as w:

        @w.do
        def slow() -> None:
            release.wait(WAIT)

    assert not w.join(timeout=0.01)
    release.set()
    assert w.join(WAIT)


def test_join_of_a_foreground_weave_returns_at_once() -> None:
    with weave() as w:
        pass

    assert w.join(0)


def test_block_that_raised_does_not_start_a_background_weave() -> None:
    on_done = Recorder()
    ran: list[str] = []
    with (  # noqa: PT012
        pytest.raises(RuntimeError, match="block failed"),
        weave(background=True, on_done=on_done) as w,
    ):

        @w.do
        def task() -> None:
            ran.append("task")

        raise RuntimeError("block failed")

    assert w.join(0)
    assert ran == []
    assert on_done.results == []


def test_failed_background_weave_still_calls_on_done_with_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    on_done = Recorder()
    with weave(background=True, on_done=on_done) as w:

        @w.do
        def broken() -> None:
            raise ValueError("in the background")

    assert w.join(WAIT)
    assert isinstance(on_done.results[0].exception, ValueError)
    assert "background weave failed" in caplog.text


def test_background_from_config_applies_to_weaves(release: threading.Event) -> None:
    wove.config(background=True)
    with weave() as w:

        @w.do
        def slow() -> int:
            assert release.wait(WAIT), "the block waited for its background tasks"
            return 1

    release.set()
    assert w.join(WAIT)
    assert w.result.slow == 1


# -- fork=True ------------------------------------------------------------------------------------


def wait_for_child(out: Path) -> str:
    """Wait for the forked weave's process to exit, then read what its on_done wrote."""
    from wove import _fork

    child = _fork._children[-1]
    assert child.wait(timeout=CHILD_SECONDS) == 0
    assert out.exists(), "on_done never ran in the child"
    return out.read_text()


def test_fork_runs_the_weave_in_a_new_process_and_calls_on_done_there(tmp_path: Path) -> None:
    # fork=True needs the dispatch serializer, a dev dependency of the workspace.
    out = tmp_path / "on_done.txt"

    def on_done(result: WoveResult) -> None:
        out.write_text(f"{os.getpid()} {result.total}")

    with weave(fork=True, on_done=on_done, base=20) as w:

        @w.do
        def value(base: int) -> int:
            return base + 1

        @w.do
        def total(value: int) -> int:
            return value * 2

    pid, total = wait_for_child(out).split()
    assert int(pid) != os.getpid()
    assert total == "42"
    assert len(w.result) == 0


def test_fork_runs_mapped_tasks_with_data_in_the_child(tmp_path: Path) -> None:
    # fork=True needs the dispatch serializer, a dev dependency of the workspace.
    out = tmp_path / "on_done.txt"

    def on_done(result: WoveResult) -> None:
        out.write_text(f"{os.getpid()} {result.scaled}")

    with weave(fork=True, on_done=on_done, factor=3) as w:

        @w.do([1, 2, 3])
        def scaled(item: int, factor: int) -> int:
            return item * factor

    pid, scaled = wait_for_child(out).split(maxsplit=1)
    assert int(pid) != os.getpid()
    assert scaled == "[3, 6, 9]"


def test_block_that_raised_does_not_fork() -> None:
    from wove import _fork

    children_before = list(_fork._children)
    with pytest.raises(RuntimeError, match="no fork"), weave(fork=True) as w:  # noqa: PT012

        @w.do
        def task() -> None:
            pass

        raise RuntimeError("no fork")

    assert _fork._children == children_before
    assert w.join(0)
