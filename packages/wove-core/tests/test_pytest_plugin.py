"""wove.testing.pytest_plugin: the ``pytest11`` entry point, its fixtures and its ini option.

Each behaviour is checked in a pytest run of its own (a subprocess in a temporary directory with
its own ini file), the way a user's test run loads the plugin: through the entry point of the
installed wove-core.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run_pytest(folder: Path, tests: str, *, ini: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``tests`` (a test module's source) with pytest in ``folder``, under ``ini``."""
    (folder / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    (folder / "test_in_a_run_of_its_own.py").write_text(textwrap.dedent(tests))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--strict-config", "-q"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def assert_passed(done: subprocess.CompletedProcess[str], count: int) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{count} passed" in done.stdout


def test_the_plugin_is_wove_cores_pytest11_entry_point() -> None:
    (entry_point,) = importlib.metadata.entry_points(group="pytest11", name="wove")

    assert entry_point.value == "wove.testing.pytest_plugin"
    assert entry_point.dist is not None
    assert entry_point.dist.name == "wove-core"


def test_this_test_run_gives_every_test_fresh_state(request: pytest.FixtureRequest) -> None:
    # The workspace's pytest configuration sets wove_fresh_state = true.
    assert request.config.getini("wove_fresh_state") is True
    assert "wove_state" in request.fixturenames


def test_loading_the_plugin_imports_neither_the_engine_nor_the_kits() -> None:
    code = (
        "import sys, wove.testing.pytest_plugin; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('wove'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert done.stdout.split() == ["wove", "wove.testing", "wove.testing.pytest_plugin"]


def test_without_the_ini_option_the_plugin_changes_nothing(tmp_path: Path) -> None:
    done = run_pytest(
        tmp_path,
        """
        import wove
        from wove._config import current_config

        def test_configure():
            wove.config(environments={"kept": {"executor": "local"}})

        def test_the_configuration_is_still_there(request):
            assert "kept" in current_config().environments
            assert "wove_state" not in request.fixturenames
        """,
    )

    assert_passed(done, 2)


def test_wove_fresh_state_gives_every_test_fresh_state(tmp_path: Path) -> None:
    done = run_pytest(
        tmp_path,
        """
        import wove
        from wove import _environments
        from wove._config import current_config
        from wove._registry import get_registry
        from wove.testing import executor_of

        seen = {}

        def test_configure_and_use_an_environment():
            assert not current_config().environments
            wove.config(environments={"jobs": {"executor": "local"}})
            seen["executor"] = executor_of("jobs")
            seen["registry"] = get_registry()

        def test_the_next_test_starts_afresh(request):
            assert "wove_state" in request.fixturenames
            assert not current_config().environments
            assert not _environments._resolved
            assert get_registry() is not seen["registry"]
        """,
        ini="wove_fresh_state = true",
    )

    assert_passed(done, 2)


def test_the_wove_state_fixture_resets_before_and_after_the_test(tmp_path: Path) -> None:
    done = run_pytest(
        tmp_path,
        """
        import wove
        from wove._config import current_config

        def test_configure():
            wove.config(environments={"before": {"executor": "local"}})

        def test_with_fresh_state(wove_state):
            assert not current_config().environments
            wove.config(environments={"during": {"executor": "local"}})

        def test_after_a_test_with_fresh_state():
            assert not current_config().environments
        """,
        ini="wove_fresh_state = false",
    )

    assert_passed(done, 3)


def test_the_executor_of_fixture_is_the_public_helper(tmp_path: Path) -> None:
    done = run_pytest(
        tmp_path,
        """
        import wove
        import wove.testing

        def test_executor_of(wove_state, executor_of):
            assert executor_of is wove.testing.executor_of
            wove.config(environments={"jobs": {"executor": "local"}})
            assert isinstance(executor_of("jobs"), wove.LocalExecutor)
            assert executor_of("jobs") is executor_of("jobs")
        """,
    )

    assert_passed(done, 1)
