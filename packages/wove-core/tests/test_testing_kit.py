"""The conformance kit itself: what it imports, what it ships to workers, and how it tells a
plugin author what is missing. (The suite's tests run in each executor's package.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import wove.testing
from wove._delivery import dispatch_loop
from wove._serializer import dumps
from wove.testing import ExecutorConformance
from wove.testing._bodies import (
    append_line,
    async_blocker,
    attempt_counter,
    blocker,
    count_lines,
    max_overlap,
    waiter,
)

#: A worker that cannot import pytest or wove.testing, as on a machine with only the worker side.
_NO_PYTEST = textwrap.dedent(
    """
    import pickle, sys
    sys.modules["pytest"] = None
    sys.modules["wove.testing"] = None
    body = pickle.loads(sys.stdin.buffer.read())
    result = body()
    if hasattr(result, "__await__"):
        import asyncio

        async def settle():
            return await result

        result = asyncio.run(settle())
    print(repr(result))
    """
)


def _run_without_pytest(body: Any) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", _NO_PYTEST],
        input=dumps(body, "testing the conformance kit"),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    output: str = completed.stdout.decode().strip()
    return output


def test_import_wove_does_not_import_the_kit_or_pytest() -> None:
    code = "import sys, wove; print('wove.testing' in sys.modules, 'pytest' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, timeout=60
    )
    assert completed.stdout.decode().split() == ["False", "False"]


def test_kit_exports_the_suites_and_the_helpers_for_plugin_tests() -> None:
    assert wove.testing.__all__ == [
        "BackendExecutorConformance",
        "ExecutorConformance",
        "PluginConformance",
        "RemoteExecutorConformance",
        "SCENARIO_HOOKS",
        "answer_in",
        "configure_executor",
        "executor_of",
        "reset_state",
        "stop_environments",
        "FlakyProxy",
        "free_port",
        "append_line",
        "async_blocker",
        "attempt_counter",
        "blocker",
        "max_overlap",
        "waiter",
    ]
    assert wove.testing.blocker is blocker
    assert sorted(dir(wove.testing)) == sorted(wove.testing.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = wove.testing.Nope


def test_task_bodies_run_where_pytest_cannot_be_imported(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.touch()
    log = tmp_path / "log"
    assert _run_without_pytest(blocker(release, finished=tmp_path / "done")) == "True"
    assert _run_without_pytest(async_blocker(release)) == "True"
    assert _run_without_pytest(attempt_counter(tmp_path / "count")) == "1"
    assert _run_without_pytest(waiter(release)) == "None"
    assert (tmp_path / "done").exists()
    # A closure over a body, as the suite's tasks are, travels by value too.
    bodies = append_line(log)

    def task() -> None:
        bodies("start 2")

    assert _run_without_pytest(task) == "None"
    assert log.read_text().splitlines() == ["start 2"]
    assert count_lines(log) == 1


def test_suite_helpers_ship_bodies_that_run_without_pytest(tmp_path: Path) -> None:
    shipped: list[Any] = []

    class Capturing(ExecutorConformance):
        def run_on_worker(self, body: Any) -> Any:
            shipped.append(body)

    Capturing().let_workers_run(0.0, release=tmp_path / "released")
    assert _run_without_pytest(shipped[0]).isdigit()
    assert (tmp_path / "released").exists()


def test_max_overlap_counts_runs_in_flight() -> None:
    assert max_overlap([]) == 0
    assert max_overlap(["start 1", "end 1", "start 2", "end 2"]) == 1
    assert max_overlap(["start 1", "start 2", "end 1", "start 3", "end 2", "end 3"]) == 2


def test_default_send_raw_tells_the_plugin_author_what_to_implement() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"must implement send_raw\(environment_name"):
        ExecutorConformance().send_raw("conformance", b"{}\n")


def test_send_raw_awaits_asend_raw_on_the_dispatch_loop() -> None:
    seen: list[tuple[str, bytes, bool]] = []

    class AsyncPlugin(ExecutorConformance):
        async def asend_raw(self, environment_name: str, line: bytes) -> None:
            await asyncio.sleep(0)
            seen.append((environment_name, line, dispatch_loop.is_current()))

    AsyncPlugin().send_raw("conformance", b"line\n")
    assert seen == [("conformance", b"line\n", True)]


def test_security_defaults_to_not_exposed() -> None:
    suite = ExecutorConformance()
    with pytest.raises(NotImplementedError):
        suite.security_of("conformance")
    assert suite.security("conformance") == (None, False)


def test_a_subclass_without_environment_fixture_fails_with_instructions(tmp_path: Path) -> None:
    (tmp_path / "test_missing.py").write_text(
        textwrap.dedent(
            """
            from wove.testing import ExecutorConformance

            class TestForgotten(ExecutorConformance):
                pass
            """
        )
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-k",
            "test_sync_tasks_return_results",
            str(tmp_path / "test_missing.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        timeout=120,
    )
    output = completed.stdout.decode()
    assert completed.returncode == 1, output
    assert "defines no `environment` fixture" in output
    assert "1 error" in output


def test_backend_scenarios_are_collected_only_with_their_hooks() -> None:
    from wove.testing import SCENARIO_HOOKS, BackendExecutorConformance

    class Bare(BackendExecutorConformance):
        pass

    class Killing(BackendExecutorConformance):
        def kill_worker(self, job_id: str, pid: int) -> None:
            raise NotImplementedError

    killed = "test_worker_killed_mid_task_fails_the_weave_as_orphaned"
    assert all(getattr(Bare, test) is None for test in SCENARIO_HOOKS)
    assert callable(getattr(Killing, killed))
    assert all(getattr(Killing, test) is None for test in SCENARIO_HOOKS if test != killed)
