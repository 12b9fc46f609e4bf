"""Benchmark the ``arq`` executor against ARQ's own enqueue-and-wait of the same function.

    python benchmarks/backend_arq.py [--rounds 5] [--repeat 20] [--poll-delay 0.05]

Both sides go through one ARQ worker on the local Redis (started if missing; database 4, queue
``wove-bench``), started here as ``arq backend_arq.WorkerSettings`` -- this file is also the
worker's settings module. Wove's side is a one-task weave (signed payload, callback server,
the worker runtime, events posted back); ARQ's side is ``enqueue_job`` then ``job.result``
polling every 10 ms. Both pay the worker's queue poll (``--poll-delay``, 50 ms by default),
which dominates at the default; a shorter one shows Wove's own overhead. The figures are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from wove_arq import worker_settings

HERE = Path(__file__).resolve().parent
QUEUE = "wove-bench"
REDIS_URL_ENV = "WOVE_ARQ_BENCH_REDIS_URL"
READY_FILE_ENV = "WOVE_ARQ_BENCH_READY_FILE"
POLL_DELAY_ENV = "WOVE_ARQ_BENCH_POLL_DELAY"


def trivial() -> int:
    """The function both sides run."""
    return 1


async def native_trivial(ctx: dict[str, Any]) -> int:
    """ARQ's side: the same function as a plain ARQ job."""
    return trivial()


def _write_ready_file() -> None:
    Path(os.environ[READY_FILE_ENV]).write_text(str(os.getpid()))


async def _announce(ctx: dict[str, Any]) -> None:
    await asyncio.to_thread(_write_ready_file)


WorkerSettings = worker_settings(
    os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/4"),
    queue_name=QUEUE,
    functions=[native_trivial],
    poll_delay=float(os.environ.get(POLL_DELAY_ENV, "0.05")),
    max_jobs=4,
    on_startup=_announce,
)


def _is_ready(ready_file: Path) -> bool:
    try:
        pid = int(ready_file.read_text())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--poll-delay", type=float, default=0.05, help="the worker's queue poll, in seconds"
    )
    options = parser.parse_args()

    sys.path.insert(0, str(HERE.parent / "tests-integration"))
    from arq.connections import RedisSettings, create_pool

    import backend_services
    import wove
    from _backend_roundtrip import compare

    os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))
    redis = backend_services.ensure_redis()
    url = redis.url(4)
    ready_file = Path(tempfile.mkdtemp(prefix="wove-arq-bench-")) / "ready"
    worker = backend_services.WorkerProcess(
        [sys.executable, "-m", "arq", "backend_arq.WorkerSettings"],
        ready=lambda: _is_ready(ready_file),
        env={
            REDIS_URL_ENV: url,
            READY_FILE_ENV: str(ready_file),
            POLL_DELAY_ENV: str(options.poll_delay),
        },
        cwd=HERE,
    )
    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(
        create_pool(RedisSettings.from_dsn(url), default_queue_name=QUEUE)
    )
    try:
        wove.config(
            environments={
                "arq": {
                    "executor": "arq",
                    "executor_config": {
                        "redis_url": url,
                        "queue": QUEUE,
                        "security": "env:WOVE_SECRET",
                    },
                }
            }
        )

        def through_wove() -> object:
            with wove.weave(environment="arq") as w:
                w.do(trivial)
            return w.result.trivial

        async def enqueue_and_wait() -> object:
            job = await pool.enqueue_job("native_trivial")
            assert job is not None
            return await job.result(timeout=30, poll_delay=0.01)

        def native() -> object:
            return loop.run_until_complete(enqueue_and_wait())

        compare("arq", through_wove, native, rounds=options.rounds, repeat=options.repeat)
    finally:
        loop.run_until_complete(pool.aclose())
        loop.close()
        worker.stop()
        if redis.started_here:
            redis.stop()


if __name__ == "__main__":
    main()
