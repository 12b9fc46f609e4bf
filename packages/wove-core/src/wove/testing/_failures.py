"""Conformance tests for things going wrong: exceptions and their tracebacks, values that cannot
cross the boundary, retries, cancellation and timeouts.

The checks, and what each asserts:

``test_task_exceptions_keep_type_message_and_traceback``
    Sync and async task exceptions -- including a class defined in the test -- arrive with
    their type, message and a traceback that names the task function; a dependent records an
    :class:`wove.UpstreamTaskError`; an independent task still succeeds.
``test_exception_that_cannot_be_rebuilt_arrives_as_environment_execution_error``
    An exception the submitter cannot unpickle arrives as
    :class:`wove.EnvironmentExecutionError` with its kind, message and remote traceback.
``test_unpicklable_result_is_an_error_not_a_hang``
    A result that cannot be pickled fails the task with an error that says so, before the
    hang guard fires.
``test_retries_rerun_a_flaky_task``
    ``retries=2`` runs a failing body three times in all and returns the third result.
``test_sibling_failure_cancels_running_tasks[best_effort|require_ack]``
    A failing task cancels its running siblings: they are reported cancelled, the executor
    acknowledges each cancel (``require_ack``), and the cancelled runs really stop -- an
    async run always, a sync run unless :attr:`~ConformanceBase.interrupts_sync_tasks` is
    ``False``. An executor that ignores ``cancel_task`` fails here.
``test_timeout_fails_task_with_timeout_error``
    ``timeout=`` fails a blocked sync or async task with :class:`TimeoutError` (not a
    delivery timeout), and the environment still works.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest

import wove

from ._base import ConformanceBase
from ._bodies import async_blocker, attempt_counter, blocker, waiter

__all__ = ["FailureConformance"]


class FailureConformance(ConformanceBase):
    def test_task_exceptions_keep_type_message_and_traceback(self, runs_in_process: bool) -> None:
        class LedgerError(LookupError):
            """A class the worker only knows from the pickled task."""

        with self.weave(error_mode="return") as w:

            @w.do
            def explode() -> int:
                raise ValueError("bad value 42")

            @w.do
            async def aexplode() -> int:
                await asyncio.sleep(0)
                raise ValueError("bad async value 43")

            @w.do
            def audit() -> None:
                raise LedgerError("account 'x' is missing")

            @w.do
            def dependent(explode: int) -> int:
                return explode + 1

            @w.do
            async def independent() -> str:
                await asyncio.sleep(0.05)
                return "fine"

        cases = [
            ("explode", ValueError, "bad value 42"),
            ("aexplode", ValueError, "bad async value 43"),
            ("audit", LedgerError, "account 'x' is missing"),
        ]
        for task, kind, message in cases:
            error = w.result[task]
            assert type(error) is kind, f"task {task!r} failed with {error!r}, not a {kind}"
            assert str(error) == message
            _assert_traceback_names(error, task, runs_in_process)
        assert isinstance(w.result.dependent, wove.UpstreamTaskError)
        assert w.result.dependent.upstream is w.result.explode
        assert w.result.independent == "fine"

    def test_exception_that_cannot_be_rebuilt_arrives_as_environment_execution_error(
        self, runs_in_process: bool
    ) -> None:
        class UnrebuildableError(Exception):
            """Pickles fine; unpickling it raises, so the submitter cannot rebuild it."""

            def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
                def refuse(message: str) -> None:
                    raise RuntimeError(f"refusing to unpickle {message!r} (on purpose)")

                return (refuse, (str(self),))

        expected: type[BaseException] = (
            UnrebuildableError if runs_in_process else wove.EnvironmentExecutionError
        )
        with (
            pytest.raises(expected) as caught,
            self.weave() as w,
        ):

            @w.do
            def corrupt() -> None:
                raise UnrebuildableError("ledger 9 is corrupt")

        error = caught.value
        assert w.result.exception is error
        if runs_in_process:
            # Nothing crossed a boundary: the original exception arrives untouched.
            assert str(error) == "ledger 9 is corrupt"
            return
        assert isinstance(error, wove.EnvironmentExecutionError)
        assert error.kind.endswith("UnrebuildableError"), error.kind
        assert "ledger 9 is corrupt" in str(error)
        assert "Traceback" in error.remote_traceback
        assert "in corrupt" in error.remote_traceback
        assert "ledger 9 is corrupt" in error.remote_traceback

    def test_unpicklable_result_is_an_error_not_a_hang(self, runs_in_process: bool) -> None:
        if runs_in_process:
            with self.weave() as w:

                @w.do
                def lock() -> Any:
                    return threading.Lock()

            assert isinstance(w.result.lock, type(threading.Lock()))
            return

        with self.weave(error_mode="return") as w:

            @w.do
            def lock() -> Any:
                return threading.Lock()

        error = w.result.lock
        assert isinstance(error, Exception), f"a lock crossed a process boundary: {error!r}"
        assert not isinstance(error, wove.DeliveryTimeoutError), (
            "an unpicklable result made the run hang until the hang guard fired; the worker "
            f"must report it as an error: {error}"
        )
        assert re.search(r"(?i)pickl|serializ", str(error)), (
            f"the error does not say the result could not be serialized: {error!r}"
        )

    def test_retries_rerun_a_flaky_task(self, shared_tmp_path: Path) -> None:
        attempts = shared_tmp_path / "attempts"
        count = attempt_counter(attempts)

        with self.weave() as w:

            @w.do(retries=2)
            def flaky() -> int:
                attempt = count()
                if attempt < 3:
                    raise ConnectionError(f"attempt {attempt} failed (on purpose)")
                return attempt

        assert w.result.flaky == 3
        assert attempts.stat().st_size == 3

    @pytest.mark.parametrize("cancel_mode", ["best_effort", "require_ack"])
    def test_sibling_failure_cancels_running_tasks(
        self,
        cancel_mode: str,
        runs_in_process: bool,
        shared_tmp_path: Path,
        release_file: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        markers = {
            (body, event): shared_tmp_path / f"long-{body}.{event}"
            for body in ("sync", "async")
            for event in ("started", "finished")
        }
        block = blocker(
            release_file, started=markers["sync", "started"], finished=markers["sync", "finished"]
        )
        ablock = async_blocker(
            release_file, started=markers["async", "started"], finished=markers["async", "finished"]
        )
        wait_sync = waiter(markers["sync", "started"])
        wait_async = waiter(markers["async", "started"])

        caplog.set_level(logging.WARNING, logger="wove.delivery")
        with (  # noqa: PT012 - the weave raises when its block ends
            pytest.raises(RuntimeError, match="sibling failed on purpose"),
            self.weave(delivery_cancel_mode=cancel_mode) as w,
        ):

            @w.do
            def long_sync() -> bool:
                return block()

            @w.do
            async def long_async() -> bool:
                return await ablock()

            @w.do
            def fails() -> None:
                wait_sync()
                wait_async()
                raise RuntimeError("sibling failed on purpose")

        assert {"long_sync", "long_async"} <= w.result.cancelled
        assert "fails" not in w.result.cancelled
        unacknowledged = [r for r in caplog.records if "did not acknowledge" in r.getMessage()]
        assert not unacknowledged, "the executor never acknowledged a cancellation"

        if runs_in_process:
            release_file.touch()
        else:
            # Give the cancels time to land, then create the file the runs wait for, and give a
            # run that is still alive time to notice it; this also shows that the environment
            # still works after the cancellation.
            self.let_workers_run(1.0, release=release_file)
        assert not markers["async", "finished"].exists(), (
            "the cancelled async run kept running: it saw the file it waited for after the "
            "weave had given up on it"
        )
        # A sync task in the test process runs in a thread, which nothing can stop.
        if not runs_in_process and self.interrupts_sync_tasks:
            assert not markers["sync", "finished"].exists(), (
                "the cancelled sync run kept running on the worker: it saw the file it waited "
                "for after the weave had given up on it. Stop the process or job that runs it, "
                "or set interrupts_sync_tasks = False on the test class to document that the "
                "executor cannot"
            )

    def test_timeout_fails_task_with_timeout_error(self, release_file: Path) -> None:
        block = blocker(release_file)
        ablock = async_blocker(release_file)

        with self.weave(error_mode="return") as w:

            @w.do(timeout=0.5)
            def stuck() -> bool:
                return block()

            @w.do(timeout=0.5)
            async def astuck() -> bool:
                return await ablock()

        for task in ("stuck", "astuck"):
            error = w.result[task]
            assert isinstance(error, TimeoutError), f"task {task!r} ended with {error!r}"
            assert not isinstance(error, wove.DeliveryTimeoutError), error
        self.assert_environment_works()


def _assert_traceback_names(error: BaseException, function: str, runs_in_process: bool) -> None:
    """The traceback that came with ``error`` shows the task function that raised it."""
    if isinstance(error, wove.EnvironmentExecutionError):
        text = error.remote_traceback
    elif runs_in_process:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    elif sys.version_info < (3, 11):  # pragma: no cover - notes arrived in Python 3.11
        return
    else:
        notes = [note for note in getattr(error, "__notes__", ()) if "Remote traceback" in note]
        assert notes, f"no 'Remote traceback' note on the rebuilt {type(error).__name__}"
        text = "\n".join(notes)
    assert f"in {function}" in text, f"the traceback does not show {function!r}:\n{text}"
