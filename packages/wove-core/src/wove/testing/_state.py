"""Wove's process-wide state, for tests: reset it, and reach the executor behind an environment.

Nothing here imports pytest: the pytest plugin (:mod:`wove.testing.pytest_plugin`) imports
this module only when one of its fixtures runs.
"""

from __future__ import annotations

from .._config import current_config, reset_config
from .._environments import reset_environments, resolve_environment
from .._executor import Executor
from .._registry import reset_registry

__all__ = ["executor_of", "reset_state"]


def reset_state() -> None:
    """Give the process fresh Wove state: the built-in configuration, no resolved environments
    (every started executor is stopped, and waited for), and a plugin registry that discovers
    the installed plugins again when next used.

    The ``wove_state`` fixture calls it before and after a test.
    """
    reset_config()
    reset_environments()
    reset_registry()


def executor_of(environment_name: str) -> Executor:
    """Return the executor instance behind ``environment_name`` in the configuration in force.

    It is the instance every weave uses: the one the first weave to use the environment
    started, or, before any weave did, a new instance that has not been started.

    Raises:
        UnknownEnvironmentError: no environment of that name is configured.

    Example:
        After a weave ran tasks in environment ``"jobs"``::

            executor = executor_of("jobs")
            assert isinstance(executor, StdioExecutor)
    """
    return resolve_environment(current_config(), environment_name).executor
