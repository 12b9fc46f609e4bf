"""The Taskiq worker module the tests start with ``taskiq worker worker_app:broker``.

It is what a user writes (a broker and one :func:`register_wove_task` call), plus a startup
hook that drops a marker file named after the worker process, so the tests know when every
child process listens. Settings come from the environment the fixtures start it with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from taskiq import TaskiqEvents, TaskiqState
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from wove_taskiq import register_wove_task

URL = os.environ["WOVE_TASKIQ_TEST_BROKER_URL"]
QUEUE = os.environ.get("WOVE_TASKIQ_TEST_QUEUE", "taskiq")
READY_DIR = os.environ.get("WOVE_TASKIQ_TEST_READY_DIR")

backend: RedisAsyncResultBackend[Any] = RedisAsyncResultBackend(URL, result_ex_time=600)
broker = ListQueueBroker(URL, queue_name=QUEUE).with_result_backend(backend)
register_wove_task(broker)


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
def announce_ready(state: TaskiqState) -> None:
    if READY_DIR is not None:
        Path(READY_DIR, str(os.getpid())).touch()
