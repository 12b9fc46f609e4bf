"""Benchmark the ``rq`` executor: one task's round trip through Wove against RQ's own
submit-and-wait of the same addition.

    python benchmarks/backend_rq.py [--rounds 5] [--repeat 20] [--worker-class CLASS]

Uses the Redis on 127.0.0.1:6379 (started if nothing answers there), database 3, and a queue of
its own, served by one ``rq worker`` this script starts and stops (default worker class
``wove_rq.worker.WoveWorker``; try ``rq.worker.Worker`` or ``wove_rq.worker.WoveSimpleWorker``).

* through Wove: a one-task weave in an ``rq`` environment -- the payload is signed and enqueued,
  the worker's horse verifies it, claims the run on the callback server, runs the task and
  posts its events back;
* native: ``Queue.enqueue("operator.add", 2, 3)`` then ``job.latest_result(timeout=...)``, which
  waits on RQ's result stream in Redis.

Needs ``wove-core`` and ``wove-rq`` installed (editable is fine). The ratio is
printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import sys
from pathlib import Path

from _backend_roundtrip import compare

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests-integration"))
import backend_services

DATABASE = 3
WAIT_SECONDS = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--worker-class", default="wove_rq.worker.WoveWorker")
    options = parser.parse_args()
    os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

    import redis
    from rq import Queue, Worker

    import wove

    url = backend_services.ensure_redis().url(DATABASE)
    queue_name = f"wove-bench-{secrets.token_hex(3)}"
    worker_name = f"wove-bench-{secrets.token_hex(3)}"
    rq = str(Path(sys.executable).with_name("rq"))
    connection = redis.Redis.from_url(url)

    def ready() -> bool:
        return any(worker.name == worker_name for worker in Worker.all(connection=connection))

    command = [rq, "worker", "--url", url, "-w", options.worker_class, "--name", worker_name]
    worker = backend_services.WorkerProcess(
        [*command, "--logging_level", "WARNING", queue_name], ready=ready
    )
    print(f"worker: {shlex.join(command)} {queue_name}")
    try:
        wove.config(
            environments={
                "rq": {
                    "executor": "rq",
                    "executor_config": {
                        "redis_url": url,
                        "queue": queue_name,
                        "security": "env:WOVE_SECRET",
                    },
                }
            }
        )
        queue = Queue(queue_name, connection=connection)

        def through_wove() -> int:
            with wove.weave(environment="rq") as w:

                @w.do
                def add() -> int:
                    return 2 + 3

            result: int = w.result.add
            return result

        def native() -> object:
            job = queue.enqueue("operator.add", 2, 3, result_ttl=60)
            result = job.latest_result(timeout=WAIT_SECONDS)
            if result is None or result.return_value != 5:
                raise RuntimeError(f"RQ job {job.id} gave {result!r}")
            return result.return_value

        compare("rq", through_wove, native, rounds=options.rounds, repeat=options.repeat)
    finally:
        worker.stop()
        Queue(queue_name, connection=connection).empty()
        connection.close()


if __name__ == "__main__":
    main()
