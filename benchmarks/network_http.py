"""Benchmark the ``http`` executor against a bare httpx + uvicorn echo.

    python benchmarks/network_http.py [--rounds 5] [--tasks 1000]

Both servers run in separate processes on loopback: ``wove worker http`` (signed frames, one
worker runtime, uvicorn) and a bare ASGI echo app served by uvicorn with the same settings.
The clients are ``httpx.AsyncClient`` with a keep-alive pool. Measured, as the median of
``--rounds`` rounds:

* per-task latency, one at a time: the executor's ``send(run_task)`` until its ``task_result``
  (signing, verifying, cloudpickle, the worker runtime, a streamed response carrying
  ``task_started`` + ``task_result``) against one ``POST`` echo of a body of the same size;
* throughput with 64 in flight: the same with 64 runs (or echoes) outstanding at once;
* per-task time through a full weave (``@w.do`` over a list), for context.

Needs ``wove-core`` and ``wove-http`` installed (editable is fine). The numbers
are printed, never asserted.
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
import asyncio, uvicorn

async def echo(scope, receive, send):
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson")]})
    await send({"type": "http.response.body", "body": b"".join(chunks)})

class Server(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets)
        port = self.servers[0].sockets[0].getsockname()[1]
        print(f"echo listening on http://127.0.0.1:{port}", flush=True)

config = uvicorn.Config(echo, host="127.0.0.1", port=0, lifespan="off", log_level="warning",
                        access_log=False)
asyncio.run(Server(config).serve())
"""

IN_FLIGHT = 64


async def executor_rounds(url: str, secret_env: str, tasks: int, rounds: int) -> dict[str, Any]:
    from wove._serializer import dumps
    from wove.plugins import LineCodec, RunTask, Security, TaskResult
    from wove_http import HttpExecutor

    executor = HttpExecutor()
    await executor.start(
        "bench", {"url": url, "security": f"env:{secret_env}", "max_in_flight": IN_FLIGHT}, {}
    )
    callable_bytes = dumps(int, "benchmark")
    args = dumps({}, "benchmark")
    counter = iter(range(10**9))

    def frame() -> RunTask:
        return RunTask(
            run_id=f"bench-{next(counter)}", task_id="bench", callable=callable_bytes, args=args
        )

    sample = LineCodec(Security(os.environ[secret_env])).encode(frame())

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
        async def feed() -> None:
            for _ in range(tasks):
                await executor.send(frame())  # waits for a free slot beyond 64 in flight

        feeder = asyncio.create_task(feed())
        await until_results(tasks)
        await feeder

    await sequential()  # warm up
    one = [await timed(sequential) for _ in range(rounds)]
    many = [await timed(concurrent) for _ in range(rounds)]
    await executor.stop()
    return {"sequential": one, "concurrent": many, "message_bytes": len(sample)}


async def echo_rounds(url: str, size: int, tasks: int, rounds: int) -> dict[str, Any]:
    import httpx

    body = os.urandom(size)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def one() -> None:
            async with client.stream("POST", url, content=body) as response:
                async for _ in response.aiter_raw():
                    pass

        async def sequential() -> None:
            for _ in range(tasks):
                await one()

        async def concurrent() -> None:
            slots = asyncio.Semaphore(IN_FLIGHT)

            async def limited() -> None:
                async with slots:
                    await one()

            await asyncio.gather(*(limited() for _ in range(tasks)))

        await sequential()
        first = [await timed(sequential) for _ in range(rounds)]
        many = [await timed(concurrent) for _ in range(rounds)]
    return {"sequential": first, "concurrent": many}


def weave_rounds(url: str, secret_env: str, tasks: int, rounds: int) -> list[float]:
    import wove

    wove.config(
        environments={
            "bench": {
                "executor": "http",
                "executor_config": {"url": url, "security": f"env:{secret_env}"},
            }
        }
    )

    def once() -> float:
        began = time.perf_counter()
        with wove.weave(environment="bench") as w:

            @w.do(range(tasks))
            async def item(index: int) -> int:
                return index

        assert w.result.item == list(range(tasks))
        return time.perf_counter() - began

    once()
    return [once() for _ in range(rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=1000)
    options = parser.parse_args()
    secret_env = "WOVE_BENCH_SECRET"
    env = {**os.environ, secret_env: secrets.token_hex(32)}
    os.environ[secret_env] = env[secret_env]
    service, url = start_service(
        [
            *(sys.executable, "-m", "wove", "worker", "http"),
            *("--bind", "127.0.0.1:0", "--security", f"env:{secret_env}"),
        ],
        env,
    )
    echo, echo_url = start_service([sys.executable, "-c", ECHO_SERVER], env)
    try:
        wove_side = asyncio.run(executor_rounds(url, secret_env, options.tasks, options.rounds))
        bare = asyncio.run(
            echo_rounds(echo_url, wove_side["message_bytes"], options.tasks, options.rounds)
        )
        weaves = weave_rounds(url, secret_env, options.tasks, options.rounds)
    finally:
        for process in (service, echo):
            process.terminate()
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()

    def per_task(samples: list[float]) -> float:
        return statistics.median(samples) / options.tasks * 1e6

    rows = [
        ("one at a time", per_task(wove_side["sequential"]), per_task(bare["sequential"])),
        (f"{IN_FLIGHT} in flight", per_task(wove_side["concurrent"]), per_task(bare["concurrent"])),
    ]
    print(
        f"http executor vs bare httpx+uvicorn echo ({options.tasks} tasks, "
        f"median of {options.rounds} rounds, body {wove_side['message_bytes']} bytes)"
    )
    print(f"{'workload':<16}{'executor µs/task':>18}{'echo µs/task':>14}{'ratio':>8}")
    for name, ours, floor in rows:
        print(f"{name:<16}{ours:>18.1f}{floor:>14.1f}{ours / floor:>8.2f}")
    print(f"{'full weave':<16}{per_task(weaves):>18.1f}{'-':>14}{'-':>8}")


if __name__ == "__main__":
    main()
