"""Benchmark the ``taskiq`` executor against Taskiq's own kick-and-wait of the same function.

    python benchmarks/backend_taskiq.py [--rounds 5] [--repeat 20]

One ``taskiq worker backend_taskiq:broker --workers 1`` process (this file is also the worker
module) serves both sides through the local Redis (started if missing; database 5, list
``wove-bench``). Wove's side is a one-task weave: a signed payload kicked as a ``wove.run`` job,
the run claimed on the callback server, its events posted back. Taskiq's side kicks the same
trivial function as a plain task and waits on the Redis result backend, checking every 10 ms.
The worker takes jobs with a blocking ``BRPOP``, so neither side pays a poll interval on the
way in. The figures are printed, never asserted.
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

from taskiq import TaskiqEvents, TaskiqState
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from wove_taskiq import register_wove_task

HERE = Path(__file__).resolve().parent
QUEUE = "wove-bench"
REDIS_URL_ENV = "WOVE_TASKIQ_BENCH_REDIS_URL"
READY_DIR_ENV = "WOVE_TASKIQ_BENCH_READY_DIR"

_URL = os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/5")
_results: RedisAsyncResultBackend[Any] = RedisAsyncResultBackend(_URL, result_ex_time=300)
broker = ListQueueBroker(_URL, queue_name=QUEUE).with_result_backend(_results)
register_wove_task(broker)


def trivial() -> int:
    """The function both sides run."""
    return 1


@broker.task(task_name="bench.trivial")
async def native_trivial() -> int:
    """Taskiq's side: the same function as a plain Taskiq task."""
    return trivial()


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
def _announce(state: TaskiqState) -> None:
    ready_dir = os.environ.get(READY_DIR_ENV)
    if ready_dir:
        Path(ready_dir, str(os.getpid())).touch()


def _is_ready(ready_dir: Path) -> bool:
    return any(Path(f"/proc/{marker.name}").exists() for marker in ready_dir.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()

    sys.path.insert(0, str(HERE.parent / "tests-integration"))
    import backend_services
    import wove
    from _backend_roundtrip import compare

    os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))
    redis = backend_services.ensure_redis()
    url = redis.url(5)
    if url != _URL:
        raise SystemExit(f"set {REDIS_URL_ENV}={url} to benchmark against that Redis")
    ready_dir = Path(tempfile.mkdtemp(prefix="wove-taskiq-bench-"))
    worker = backend_services.WorkerProcess(
        [
            sys.executable,
            "-m",
            "taskiq",
            "worker",
            "backend_taskiq:broker",
            "--workers",
            "1",
            "--shutdown-timeout",
            "1",
            "--log-level",
            "WARNING",
        ],
        ready=lambda: _is_ready(ready_dir),
        env={REDIS_URL_ENV: url, READY_DIR_ENV: str(ready_dir)},
        cwd=HERE,
    )
    # The module's broker is Taskiq's side, on a loop of its own; the environment builds
    # another one from broker_url, on Wove's dispatch loop.
    loop = asyncio.new_event_loop()
    loop.run_until_complete(broker.startup())
    try:
        wove.config(
            environments={
                "taskiq": {
                    "executor": "taskiq",
                    "executor_config": {
                        "broker_url": url,
                        "labels": {"queue_name": QUEUE},
                        "security": "env:WOVE_SECRET",
                    },
                }
            }
        )

        def through_wove() -> object:
            with wove.weave(environment="taskiq") as w:
                w.do(trivial)
            return w.result.trivial

        async def kick_and_wait() -> object:
            task = await native_trivial.kiq()
            result = await task.wait_result(check_interval=0.01, timeout=30)
            return result.return_value

        def native() -> object:
            return loop.run_until_complete(kick_and_wait())

        compare("taskiq", through_wove, native, rounds=options.rounds, repeat=options.repeat)
    finally:
        loop.run_until_complete(broker.shutdown())
        loop.close()
        worker.stop()
        if redis.started_here:
            redis.stop()


if __name__ == "__main__":
    main()
