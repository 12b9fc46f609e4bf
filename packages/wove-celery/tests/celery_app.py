"""The Celery app the test workers run (``celery -A celery_app worker`` from this directory).

Broker, result backend and ready marker come from the environment, so one module serves the
Redis workers, the RabbitMQ worker and the private-Redis worker alike. This is exactly what a
user writes on the worker side: their app plus one ``register_wove_task`` call.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from wove_celery import register_wove_task

app = Celery(
    "wove-celery-tests",
    broker=os.environ["WOVE_CELERY_BROKER"],
    backend=os.environ.get("WOVE_CELERY_BACKEND") or None,
)
app.conf.update(
    # STARTED in the result backend is what makes a job's status "running".
    task_track_started=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
register_wove_task(app)


@app.task(name="wove_celery_tests.echo")
def echo(value: Any) -> Any:
    """The benchmark's native baseline: the same trivial function, as a plain Celery task."""
    return value


@worker_ready.connect
def _mark_ready(**_: Any) -> None:
    """Tell the test fixture this worker consumes its queue: the marker holds the main PID."""
    marker = os.environ.get("WOVE_CELERY_READY")
    if marker:
        temporary = f"{marker}.tmp"
        with open(temporary, "w") as output:
            output.write(str(os.getpid()))
        os.replace(temporary, marker)
