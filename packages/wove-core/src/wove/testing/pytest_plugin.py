"""Wove's pytest plugin: fresh Wove process state for a test, and the executor behind an
environment.

wove-core registers it as a ``pytest11`` entry point, so pytest loads it in every test run where
wove-core is installed. It therefore changes nothing unasked, and importing it stays cheap: the
engine is imported only when one of its fixtures runs.

Fixtures:
    ``wove_state``: the test starts and ends with fresh Wove state -- the built-in
    configuration, no resolved environments (started executors are stopped), and a fresh
    plugin registry. See :func:`wove.testing.reset_state`.

    ``executor_of``: :func:`wove.testing.executor_of`, the executor instance behind an
    environment name.

Configuration:
    ``wove_fresh_state`` (ini, bool, default false): when true, every test in the run uses
    ``wove_state`` as if it were an autouse fixture. Plugins that register throwaway plugins
    do so per test then, since the registry is fresh for each one.

Example:
    ``pyproject.toml``::

        [tool.pytest.ini_options]
        wove_fresh_state = true

    A test (``wove_state`` given explicitly, as it must be without the ini option)::

        def test_one_executor_serves_every_weave(wove_state, executor_of):
            wove.config(environments={"jobs": {"executor": "stdio"}})
            executors = []
            for _ in range(2):
                with wove.weave(environment="jobs") as w:

                    @w.do
                    def answer() -> int:
                        return 42

                executors.append(executor_of("jobs"))
            assert executors[0] is executors[1]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["FRESH_STATE_INI", "executor_of", "wove_state"]

#: The ini option that makes ``wove_state`` apply to every test of the run.
FRESH_STATE_INI: Final = "wove_fresh_state"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        FRESH_STATE_INI,
        type="bool",
        default=False,
        help="give every test fresh Wove process state (the wove_state fixture); default false",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getini(FRESH_STATE_INI):
        config.pluginmanager.register(_FreshStateForEveryTest(), "wove-fresh-state")


@pytest.fixture
def wove_state() -> Iterator[None]:
    """Fresh Wove process state before and after the test: built-in configuration, no resolved
    environments (started executors are stopped), and a fresh plugin registry."""
    from ._state import reset_state  # here, so loading the plugin never imports the engine

    reset_state()
    yield
    reset_state()


@pytest.fixture
def executor_of() -> Callable[[str], Executor]:
    """:func:`wove.testing.executor_of`: the executor instance behind an environment name."""
    from ._state import executor_of as find

    return find


class _FreshStateForEveryTest:
    """Registered as a plugin when ``wove_fresh_state`` is true."""

    @pytest.fixture(autouse=True)
    def _wove_fresh_state(self, wove_state: None) -> None:
        """Every test uses ``wove_state`` (ini option ``wove_fresh_state = true``)."""
