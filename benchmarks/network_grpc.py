"""Benchmark the ``grpc`` executor against a bare ``grpc.aio`` echo.

    python benchmarks/network_grpc.py [--rounds 5] [--tasks 2000]

Both servers run in separate processes on loopback: ``wove worker grpc`` (signed frames, one
worker runtime) and a bare echo server built the same way (``grpc.aio.server`` with a generic
bytes handler for a unary-stream method that streams the request back once). Measured, as the
median of ``--rounds`` rounds:

* per-task latency, one at a time: the executor's ``send(run_task)`` until its ``task_result``
  (signing, verifying, cloudpickle, the worker runtime, ``task_started`` + ``task_result`` on one
  streaming call) against one echo call with a request of the same size;
* throughput with 64 in flight: the same with 64 runs (or echo calls) outstanding at once.

Wove needs the ``wove-core`` and ``wove-grpc`` distributions installed (editable
is fine). The numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
from typing import Any

from _services import start_service, timed

ECHO_SERVER = """
import asyncio
import grpc

async def run(request, context):
    yield request

async def main():
    identity = lambda data: data
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 2**30 - 1)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("echo.Echo", {
        "Run": grpc.unary_stream_rpc_method_handler(
            run, request_deserializer=identity, response_serializer=identity
        )
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"echo listening on grpc://127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""

IN_FLIGHT = 64


async def executor_rounds(target: str, secret_env: str, tasks: int, rounds: int) -> dict[str, Any]:
    from wove._serializer import dumps
    from wove.plugins import RunTask, TaskResult
    from wove_grpc import GrpcExecutor

    executor = GrpcExecutor()
    await executor.start(
        "bench", {"target": target, "security": f"env:{secret_env}", "max_in_flight": 1024}, {}
    )
    callable_bytes = dumps(int, "benchmark")
    args = dumps({}, "benchmark")
    counter = iter(range(10**9))

    def frame() -> RunTask:
        return RunTask(
            run_id=f"bench-{next(counter)}", task_id="bench", callable=callable_bytes, args=args
        )

    assert executor.settings is not None
    sample = executor.settings.network.codec.encode(frame())

    async def until_results(count: int) -> None:
        done = 0
        while done < count:
            if isinstance(await executor.recv(), TaskResult):
                done += 1

    async def sequential() -> None:
        for _ in range(tasks):
            await executor.send(frame())
            await until_results(1)

    async def concurrent() -> None:
        sent = 0
        for _ in range(min(IN_FLIGHT, tasks)):
            await executor.send(frame())
            sent += 1
        done = 0
        while done < tasks:
            if isinstance(await executor.recv(), TaskResult):
                done += 1
                if sent < tasks:
                    await executor.send(frame())
                    sent += 1

    await sequential()  # warm up
    one = [await timed(sequential) for _ in range(rounds)]
    many = [await timed(concurrent) for _ in range(rounds)]
    await executor.stop()
    return {"sequential": one, "concurrent": many, "message_bytes": len(sample)}


async def echo_rounds(target: str, size: int, tasks: int, rounds: int) -> dict[str, Any]:
    import grpc.aio

    message = os.urandom(size)
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_stream(
            "/echo.Echo/Run",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )

        async def one_call() -> None:
            async for _ in call(message):
                pass

        async def sequential() -> None:
            for _ in range(tasks):
                await one_call()

        async def concurrent() -> None:
            slots = asyncio.Semaphore(IN_FLIGHT)

            async def bounded() -> None:
                async with slots:
                    await one_call()

            await asyncio.gather(*(bounded() for _ in range(tasks)))

        await sequential()
        one = [await timed(sequential) for _ in range(rounds)]
        many = [await timed(concurrent) for _ in range(rounds)]
    return {"sequential": one, "concurrent": many}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=2000)
    options = parser.parse_args()

    secret_env = "WOVE_BENCH_SECRET"
    env = dict(os.environ, **{secret_env: secrets.token_hex(32)})
    os.environ[secret_env] = env[secret_env]
    command = [sys.executable, "-m", "wove", "worker", "grpc", "--bind", "127.0.0.1:0"]
    service, service_url = start_service([*command, "--security", f"env:{secret_env}"], env)
    echo, echo_url = start_service([sys.executable, "-c", ECHO_SERVER], env)
    target, echo_target = service_url.split("://", 1)[1], echo_url.split("://", 1)[1]
    try:
        wove = asyncio.run(executor_rounds(target, secret_env, options.tasks, options.rounds))
        bare = asyncio.run(
            echo_rounds(echo_target, wove["message_bytes"], options.tasks, options.rounds)
        )
    finally:
        for process in (service, echo):
            process.terminate()
            process.wait(10)

    def per_task(seconds: list[float]) -> float:
        return statistics.median(seconds) / options.tasks * 1e6

    rows = [
        ("one at a time", per_task(wove["sequential"]), per_task(bare["sequential"])),
        (f"{IN_FLIGHT} in flight", per_task(wove["concurrent"]), per_task(bare["concurrent"])),
    ]
    print(
        f"grpc executor vs bare grpc.aio echo: {options.tasks} tasks, median of "
        f"{options.rounds} rounds, {wove['message_bytes']}-byte requests"
    )
    print(f"{'workload':<16}{'wove µs/task':>14}{'echo µs/task':>14}{'ratio':>8}{'tasks/s':>10}")
    for name, ours, floor in rows:
        print(f"{name:<16}{ours:>14.1f}{floor:>14.1f}{ours / floor:>7.2f}x{1e6 / ours:>10.0f}")


if __name__ == "__main__":
    main()
