"""Benchmark the ``websocket`` executor against a bare ``websockets`` echo.

    python benchmarks/network_websocket.py [--rounds 5] [--tasks 2000]

Both sides run in separate processes on loopback: ``wove worker websocket`` (signed frames, one
worker runtime) and a bare echo server built on the same ``websockets`` asyncio API. Measured,
as the median of ``--rounds`` rounds:

* per-task latency, one at a time: the executor's ``send(run_task)`` until its ``task_result``
  (signing, verifying, cloudpickle, the worker runtime, ``task_started`` + ``task_result``)
  against one echo round trip of a message of the same size;
* throughput with 64 in flight: the same, with 64 runs (or echoes) outstanding at once;
* the same runs written by a bare client straight to the service ("raw proto"), which
  separates the executor's own cost from the service's (two signed events per run, a thread
  hop for sync callables);
* per-task time through a full weave (``@w.do`` over a list), for context.

Wove needs the ``wove-core`` and ``wove-websocket`` distributions installed
(editable is fine). The numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from typing import Any

from _services import start_service, timed

ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve

async def echo(connection):
    async for message in connection:
        await connection.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=2**30, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"echo listening on ws://127.0.0.1:{port}", flush=True)
        await server.serve_forever()

asyncio.run(main())
"""

IN_FLIGHT = 64


async def executor_rounds(url: str, secret_env: str, tasks: int, rounds: int) -> dict[str, Any]:
    from wove._serializer import dumps
    from wove.plugins import RunTask, TaskResult
    from wove_websocket import WebSocketExecutor

    executor = WebSocketExecutor()
    await executor.start(
        "bench", {"url": url, "security": f"env:{secret_env}", "max_in_flight": 1024}, {}
    )
    callable_bytes = dumps(int, "benchmark")
    args = dumps({}, "benchmark")
    counter = iter(range(10**9))

    def frame() -> RunTask:
        return RunTask(
            run_id=f"bench-{next(counter)}", task_id="bench", callable=callable_bytes, args=args
        )

    sample = executor.settings.network.codec.encode(frame())  # type: ignore[union-attr]

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


async def echo_rounds(url: str, size: int, tasks: int, rounds: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    message = os.urandom(size)
    async with connect(url, max_size=2**30, compression=None) as connection:

        async def sequential() -> None:
            for _ in range(tasks):
                await connection.send(message)
                await connection.recv()

        async def concurrent() -> None:
            sent = received = 0
            for _ in range(min(IN_FLIGHT, tasks)):
                await connection.send(message)
                sent += 1
            while received < tasks:
                await connection.recv()
                received += 1
                if sent < tasks:
                    await connection.send(message)
                    sent += 1

        await sequential()
        one = [await timed(sequential) for _ in range(rounds)]
        many = [await timed(concurrent) for _ in range(rounds)]
    return {"sequential": one, "concurrent": many}


async def raw_rounds(url: str, secret_env: str, tasks: int, rounds: int) -> dict[str, Any]:
    """The same runs written straight to the service with a bare client: the service's share."""
    from websockets.asyncio.client import connect

    from wove._serializer import dumps
    from wove.plugins import LineCodec, RunTask, Security, TaskResult

    codec = LineCodec(Security(os.environ[secret_env]))
    callable_bytes = dumps(int, "benchmark")
    args = dumps({}, "benchmark")
    counter = iter(range(10**9))

    def message() -> bytes:
        run = RunTask(
            run_id=f"raw-{next(counter)}", task_id="bench", callable=callable_bytes, args=args
        )
        return codec.encode(run)

    async with connect(url, max_size=2**30, compression=None) as connection:
        pending: list[bytes] = []

        async def until_result() -> None:
            while True:
                while not pending:
                    message = await connection.recv()
                    assert isinstance(message, bytes)
                    pending.extend(line for line in message.split(b"\n") if line)
                if isinstance(codec.decode(pending.pop(0)), TaskResult):
                    return

        async def sequential() -> None:
            for _ in range(tasks):
                await connection.send(message())
                await until_result()

        async def concurrent() -> None:
            sent = 0
            for _ in range(min(IN_FLIGHT, tasks)):
                await connection.send(message())
                sent += 1
            for _ in range(tasks):
                await until_result()
                if sent < tasks:
                    await connection.send(message())
                    sent += 1

        await sequential()
        one = [await timed(sequential) for _ in range(rounds)]
        many = [await timed(concurrent) for _ in range(rounds)]
    return {"sequential": one, "concurrent": many}


def weave_rounds(url: str, secret_env: str, tasks: int, rounds: int) -> list[float]:
    import wove

    wove.config(
        environments={
            "bench": {
                "executor": "websocket",
                "executor_config": {"url": url, "security": f"env:{secret_env}"},
            }
        }
    )
    items = list(range(tasks))

    def once() -> float:
        began = time.perf_counter()
        with wove.weave(environment="bench") as w:

            @w.do(items)
            def double(item: int) -> int:
                return item * 2

        assert w.result.double[-1] == 2 * (tasks - 1)
        return time.perf_counter() - began

    once()
    return [once() for _ in range(rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=2000)
    options = parser.parse_args()

    secret_env = "WOVE_BENCH_SECRET"
    env = dict(os.environ, **{secret_env: secrets.token_hex(32)})
    os.environ[secret_env] = env[secret_env]
    service, service_url = start_service(
        [sys.executable, "-m", "wove", "worker", "websocket", "--bind", "127.0.0.1:0",
         "--security", f"env:{secret_env}"],
        env,
    )  # fmt: skip
    echo, echo_url = start_service([sys.executable, "-c", ECHO_SERVER], env)
    try:
        tasks, rounds = options.tasks, options.rounds
        wove_side = asyncio.run(executor_rounds(service_url, secret_env, tasks, rounds))
        bare = asyncio.run(echo_rounds(echo_url, wove_side["message_bytes"], tasks, rounds))
        raw = asyncio.run(raw_rounds(service_url, secret_env, tasks, rounds))
        weave_times = weave_rounds(service_url, secret_env, tasks, rounds)
    finally:
        for process in (service, echo):
            process.terminate()
            process.wait(10)

    def per_task_us(times: list[float]) -> float:
        return statistics.median(times) / tasks * 1e6

    def per_second(times: list[float]) -> float:
        return tasks / statistics.median(times)

    rows = [
        ("one at a time, µs/task", per_task_us(wove_side["sequential"]),
         per_task_us(raw["sequential"]), per_task_us(bare["sequential"])),
        (f"{IN_FLIGHT} in flight, µs/task", per_task_us(wove_side["concurrent"]),
         per_task_us(raw["concurrent"]), per_task_us(bare["concurrent"])),
        (f"{IN_FLIGHT} in flight, tasks/s", per_second(wove_side["concurrent"]),
         per_second(raw["concurrent"]), per_second(bare["concurrent"])),
    ]  # fmt: skip
    print(
        f"websocket executor vs bare websockets echo: {tasks} tasks, median of {rounds} rounds, "
        f"{wove_side['message_bytes']}-byte run_task messages"
    )
    print(
        f"{'measure':<28}{'executor':>10}{'raw proto':>11}{'bare echo':>11}"
        f"{'vs raw':>8}{'vs echo':>9}"
    )
    for label, mine, service_only, echo_only in rows:
        if "µs" in label:
            vs_raw, vs_echo = mine / service_only, mine / echo_only
        else:
            vs_raw, vs_echo = service_only / mine, echo_only / mine
        print(
            f"{label:<28}{mine:>10.1f}{service_only:>11.1f}{echo_only:>11.1f}"
            f"{vs_raw:>7.2f}x{vs_echo:>8.2f}x"
        )
    print(f"{'full weave, µs/task':<28}{per_task_us(weave_times):>12.1f}")


if __name__ == "__main__":
    main()
