"""The ARQ worker the tests start: ``arq arq_settings.WorkerSettings``, run from this folder.

Built with :func:`wove_arq.worker_settings`, exactly as the documentation shows, plus what the
tests need: the Redis and ready file from environment variables, room for the conformance
suite's 200 concurrent runs, and a short poll delay. The ready file gets the worker's PID from
ARQ's ``on_startup`` hook -- ``arq --check`` could pass early on a health key a previous
worker left behind.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from wove_arq import worker_settings

REDIS_URL_ENV = "WOVE_ARQ_TEST_REDIS_URL"
READY_FILE_ENV = "WOVE_ARQ_TEST_READY_FILE"


def _write_ready_file() -> None:
    Path(os.environ[READY_FILE_ENV]).write_text(str(os.getpid()))


async def _announce(ctx: dict[str, Any]) -> None:
    await asyncio.to_thread(_write_ready_file)


WorkerSettings = worker_settings(
    os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/4"),
    max_jobs=250,
    poll_delay=0.05,
    on_startup=_announce,
)
