"""The worker side of the ``celery`` executor: one task on your own Celery app runs Wove payloads.

The task is deliberately thin. It hands the signed payload to
:func:`wove.worker.run_job`, which verifies it, claims the run on the weave's
callback server, executes it and posts every event (start, heartbeats, the result) back over
HTTP. The Celery result of the task is therefore tiny -- the tag of the terminal event -- and the
task's real return value never touches Celery's result backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery, Task  # type: ignore[import-untyped]

__all__ = ["register_wove_task"]


def register_wove_task(app: Celery, name: str = "wove.run", **task_options: Any) -> Task:
    """Register the task that runs Wove payloads on ``app``; call it once where workers import it.

    Args:
        app: your Celery app (the one ``celery -A ... worker`` loads).
        name: the task name; it must match the environment's ``task_name`` (default
            ``"wove.run"``).
        **task_options: passed to ``app.task`` (``acks_late``, ``time_limit``...).

    Returns:
        The registered task. Its Celery result is ``"task_result"``, ``"task_error"`` or
        ``"task_cancelled"`` -- how the Wove run ended -- or ``"not_claimed"`` for a duplicate
        delivery of a run that already started elsewhere or that nobody waits for any more,
        which is logged and otherwise ignored (see :func:`wove.worker.run_job`).
        A forged or tampered payload raises :class:`wove.FrameRejectedError`, so it shows as a
        failed Celery task.

    Workers need the environment's shared secret as ``WOVE_SECRET``, and the same code and
    packages as the weave that sends the tasks.

    Example:
        >>> from celery import Celery  # doctest: +SKIP
        >>> from wove_celery import register_wove_task  # doctest: +SKIP
        >>> app = Celery("tasks", broker="redis://127.0.0.1:6379/1")  # doctest: +SKIP
        >>> register_wove_task(app)  # doctest: +SKIP
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_wove_task: name must be a non-empty string, got {name!r}")

    def run_wove_payload(payload: str) -> str:
        from wove.worker import run_job

        # A second delivery of the same message (acks_late, a restored unacked message) or a
        # run the weave gave up on comes back "not_claimed": logged there, not a failure.
        return run_job(payload)

    run_wove_payload.__doc__ = "Run one signed Wove payload; the outcome goes to the weave."
    task: Task = app.task(name=name, **task_options)(run_wove_payload)
    return task
