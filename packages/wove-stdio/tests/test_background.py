"""Background weaves that route tasks to stdio workers: in a thread, and in a forked process."""

from __future__ import annotations

import os
from pathlib import Path

import wove
from wove import WoveResult, weave
from wove._fork import _children


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
        report.write_text(f"{os.getpid()} {result.square}")

    with weave(fork=True, on_done=write_report) as w:

        @w.do([2, 3], environment="proc")
        def square(n: int) -> int:
            return n * n

    child = _children[-1]
    assert child.wait(timeout=60) == 0
    pid, squares = report.read_text().split(" ", 1)
    assert int(pid) == child.pid
    assert squares == "[4, 9]"
