"""The ``local`` executor class."""

from __future__ import annotations

from wove import InProcessExecutor

__all__ = ["LocalExecutor"]


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
