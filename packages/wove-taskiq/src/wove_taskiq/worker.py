"""The worker side of the ``taskiq`` executor: one Taskiq task that runs Wove payloads.

Register it on the broker your ``taskiq worker`` command runs::

    # mymodule.py
    from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend
    from wove_taskiq import register_wove_task

    broker = ListQueueBroker("redis://127.0.0.1:6379/0").with_result_backend(
        RedisAsyncResultBackend("redis://127.0.0.1:6379/0", result_ex_time=3600)
    )
    register_wove_task(broker)

and start workers with ``WOVE_SECRET`` set: ``taskiq worker mymodule:broker``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._adapter import DEFAULT_TASK_NAME

if TYPE_CHECKING:
    from taskiq import AsyncBroker
    from taskiq.decor import AsyncTaskiqDecoratedTask

__all__ = ["register_wove_task"]


def register_wove_task(
    broker: AsyncBroker, task_name: str = DEFAULT_TASK_NAME
) -> AsyncTaskiqDecoratedTask[[str], Any]:
    """Register the task that runs Wove payloads on ``broker``, under ``task_name``.

    The task verifies the signed payload (the secret comes from ``WOVE_SECRET``), claims its
    run on the weave's callback server, runs it with heartbeats, and posts every event there;
    the result comes back that way, not through Taskiq's result backend. It returns the kind
    of the run's last event (``"task_result"``, ``"task_error"`` or ``"task_cancelled"``).

    A payload whose run another worker already claimed, or that nobody waits for any more (a
    job cancelled while it was queued), is not run: the task logs why and returns
    ``"not_claimed"`` (see :func:`wove.worker.arun_job`). A forged payload raises
    ``wove.FrameRejectedError`` and Taskiq records
    the job as failed; nothing in it was unpickled.

    Args:
        broker: the broker the workers run (``taskiq worker module:broker``).
        task_name: the name the environment's ``task_name`` kicks; keep the default unless
            two Wove deployments share one broker.

    Returns:
        The registered Taskiq task.
    """
    if not isinstance(task_name, str) or not task_name:
        raise ValueError(f"task_name must be a non-empty string, got {task_name!r}")

    async def run_wove_payload(payload: str) -> str:
        from wove.worker import arun_job

        return await arun_job(payload)

    run_wove_payload.__qualname__ = run_wove_payload.__name__
    return broker.register_task(run_wove_payload, task_name=task_name)
