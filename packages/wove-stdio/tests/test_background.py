"""Background weaves that route tasks to stdio workers: in a thread, and in a forked process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import wove
from wove import WoveResult, weave


def _configure() -> None:
    wove.config(environments={"proc": {"executor": "stdio", "executor_config": {"processes": 1}}})


def test_background_thread_weave_runs_stdio_tasks() -> None:
    _configure()
    seen: list[WoveResult] = []
    with weave(background=True, on_done=seen.append) as w:

        @w.do([1, 2, 3], environment="proc")
        def pid_and_square(n: int) -> tuple[int, int]:
            return os.getpid(), n * n

    assert w.join(timeout=60)
    assert seen == [w.result]
    squares = [square for _, square in w.result.pid_and_square]
    assert squares == [1, 4, 9]
    assert {pid for pid, _ in w.result.pid_and_square} != {os.getpid()}


def test_forked_weave_runs_stdio_tasks_in_its_own_process(tmp_path: Path) -> None:
    _configure()
    report = tmp_path / "report.txt"

    def write_report(result: WoveResult) -> None:
        written = report.with_suffix(".partial")
        written.write_text(f"{os.getpid()} {result.square}")
        written.replace(report)  # the test never reads half a report

    with weave(fork=True, on_done=write_report) as w:

        @w.do([2, 3], environment="proc")
        def square(n: int) -> int:
            return n * n

    deadline = time.monotonic() + 60
    while not report.exists():
        assert time.monotonic() < deadline, "the forked weave never called on_done"
        time.sleep(0.05)
    pid, squares = report.read_text().split(" ", 1)
    assert int(pid) != os.getpid()
    assert squares == "[4, 9]"
