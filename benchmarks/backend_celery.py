"""Benchmark the ``celery`` executor against Celery's own submit-and-wait.

    python benchmarks/backend_celery.py [--rounds 5] [--repeat 20]

Starts Redis if none answers on 127.0.0.1:6379 (broker DB 1, result backend DB 2) and one
prefork Celery worker (concurrency 2) of its own, on a queue of its own, running the app in
``packages/wove-celery/tests/celery_app.py``. Then compares one trivial task's round trip:

* through Wove: a weave with one ``@w.do`` task in a ``celery`` environment (signed payload,
  ``send_task``, the worker claims the run and posts its events to the callback server);
* native: ``send_task("wove_celery_tests.echo").get()`` of the same trivial function, its
  result coming back through the Redis result backend.

Needs ``wove-core`` and ``wove-celery`` (with ``celery[redis]``) installed.
The figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests-integration"))
sys.path.insert(0, str(HERE))

import backend_services  # noqa: E402
from _backend_roundtrip import compare  # noqa: E402

WORKER_APP = ROOT / "packages" / "wove-celery" / "tests"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))
    redis = backend_services.ensure_redis()
    broker, backend = redis.url(1), redis.url(2)
    queue = f"wove-celery-bench-{uuid.uuid4().hex[:8]}"
    marker = Path(tempfile.mkdtemp(prefix="wove-celery-bench-")) / "ready"
    worker = backend_services.WorkerProcess(
        [
            sys.executable, "-m", "celery", "-A", "celery_app", "worker",
            "--pool=prefork", "--concurrency=2", "--loglevel=WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-Q", queue, "-n", f"{queue}@%h",
        ],
        ready=marker.exists,
        env={
            "WOVE_CELERY_BROKER": broker,
            "WOVE_CELERY_BACKEND": backend,
            "WOVE_CELERY_READY": str(marker),
        },
        cwd=WORKER_APP,
    )  # fmt: skip
    from celery import Celery

    import wove
    from wove_celery._adapter import close_app

    client = Celery("wove-celery-bench", broker=broker, backend=backend)
    try:
        wove.config(
            environments={
                "celery": {
                    "executor": "celery",
                    "executor_config": {
                        "broker_url": broker,
                        "result_backend": backend,
                        "queue": queue,
                        "security": "env:WOVE_SECRET",
                    },
                }
            }
        )

        def through_wove() -> object:
            with wove.weave(environment="celery") as w:

                @w.do
                def echo() -> int:
                    return 1

            return w.result.echo

        def native() -> object:
            result = client.send_task("wove_celery_tests.echo", args=[1], queue=queue)
            return result.get(timeout=30)

        compare("celery (Redis broker + backend)", through_wove, native, rounds=args.rounds,
                repeat=args.repeat)  # fmt: skip
    finally:
        close_app(client)
        worker.stop()
        if redis.started_here:
            redis.stop()


if __name__ == "__main__":
    main()
