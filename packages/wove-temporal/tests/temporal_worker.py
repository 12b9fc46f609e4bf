"""The Temporal worker the tests start: ``python temporal_worker.py``, run from this folder.

Built with :func:`wove_temporal.build_worker`, exactly as the documentation shows, plus what
the tests need: the server, task queue and ready file from environment variables. The ready
file gets the worker's PID once the worker is running; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from temporalio.client import Client

from wove_temporal import build_worker

TARGET_ENV = "WOVE_TEMPORAL_TEST_TARGET"
TASK_QUEUE_ENV = "WOVE_TEMPORAL_TEST_TASK_QUEUE"
READY_FILE_ENV = "WOVE_TEMPORAL_TEST_READY_FILE"


async def main() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    client = await Client.connect(os.environ[TARGET_ENV])
    worker = build_worker(client, os.environ[TASK_QUEUE_ENV], max_concurrent_activities=250)
    async with worker:
        await asyncio.to_thread(Path(os.environ[READY_FILE_ENV]).write_text, str(os.getpid()))
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
