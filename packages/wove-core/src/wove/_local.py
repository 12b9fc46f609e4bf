"""The built-in ``local`` executor and the plugin hook that offers it.

``local`` ships inside wove-core so that ``pip install wove-core`` alone runs weaves, with no
second distribution to depend on (and no dependency cycle between the two). It is found the way
every other executor is: wove-core's own ``wove.executors`` entry point names this module, so
``wove plugins list`` shows it with its distribution, ``wove-core``.
"""

from __future__ import annotations

from ._executor import Executor, InProcessExecutor
from ._hooks import RegisterExecutor, hookimpl

__all__ = ["LocalExecutor", "register_executors"]


class LocalExecutor(InProcessExecutor):
    """Run an environment's tasks in the weave's own process.

    This is the fast path: the scheduler sees that the executor runs in process and calls each
    task directly -- async tasks on the weave's event loop, sync tasks in the shared thread pool
    sized by the environment's ``max_workers`` -- so nothing is serialized and there are no
    per-task methods here. It accepts no ``executor_config`` keys.

    Example:
        >>> import wove
        >>> _ = wove.config(environments={"default": {"executor": "local", "max_workers": 32}})
    """


def _load() -> type[Executor]:
    return LocalExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the in-process executor; it needs nothing beyond the standard library."""
    register(
        name="local",
        kind="local",
        load=_load,
        requires=(),
        description="Run tasks in the weave's own process (async on its loop, sync in threads).",
    )
