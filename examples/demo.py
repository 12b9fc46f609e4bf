"""The Wove demo: one function, one weave, tasks wired by their parameter names and routed to
four environments -- two in this process, one in worker processes over stdio, and one through a
WebSocket worker service (embedded here on loopback, as it would run on another machine).

Run it with ``hatch run demo:run`` (see the README's Quickstart).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time

import wove
from wove import Security, weave
from wove.network import ServiceSessions


def start_embedded_worker_service() -> str:
    """Run a WebSocket worker service in a background thread; return its URL once listening.

    In production this is ``wove worker websocket --bind ... --security env:NAME`` on another
    host; here it shares the secret through an environment variable of this process.
    """
    import wove_websocket

    os.environ["WOVE_DEMO_SECRET"] = secrets.token_hex(32)
    listening: list[str] = []
    ready = threading.Event()

    def serve() -> None:
        sessions = ServiceSessions(Security(os.environ["WOVE_DEMO_SECRET"]), name="demo")

        def announce(url: str) -> None:
            listening.append(url)
            ready.set()

        asyncio.run(wove_websocket.serve(sessions, "127.0.0.1", 0, ready=announce))

    threading.Thread(target=serve, name="demo-worker-service", daemon=True).start()
    if not ready.wait(30):
        raise RuntimeError("the embedded worker service did not start")
    return listening[0]


def build_report(user_id: int) -> dict[str, object]:
    service_url = start_embedded_worker_service()
    wove.config(
        default_environment="default",
        environments={
            # Quick work, in this process.
            "default": {"executor": "local"},
            # A mapped fan-out with its own thread budget and a retry policy, in this process.
            "bulk": {"executor": "local", "max_workers": 16, "retries": 1, "workers": 8},
            # CPU-heavy work, in two reused worker processes that speak signed frames on stdio.
            "cpu": {"executor": "stdio", "executor_config": {"processes": 2}},
            # A worker service reached over the network, every frame signed with the secret.
            "service": {
                "executor": "websocket",
                "executor_config": {"url": service_url, "security": "env:WOVE_DEMO_SECRET"},
            },
        },
    )
    started = time.perf_counter()
    with weave(user_id=user_id) as w:

        @w.do
        async def profile(user_id: int) -> dict[str, object]:
            await asyncio.sleep(0.05)  # an API call
            return {"id": user_id, "name": "Ada"}

        @w.do
        def orders(user_id: int) -> list[int]:
            time.sleep(0.05)  # a blocking database query, run in the shared thread pool
            return [101, 102, 103, 104, 105]

        @w.do("orders", environment="bulk")
        def order_totals(order_id: int) -> float:
            time.sleep(0.05)  # one slow lookup per order; all five run at once
            return order_id * 1.5

        @w.do("orders", environment="cpu")
        def fingerprints(order_id: int) -> tuple[int, int]:
            # Runs in a worker process: the closure-free function and its item are pickled,
            # signed, sent over the pipe, and the result comes back the same way.
            digest = sum(i * i for i in range(order_id * 1000)) % 9973
            return digest, os.getpid()

        @w.do(environment="service")
        async def invoice_number(user_id: int, order_totals: list[float]) -> str:
            # Runs on the worker service: the arguments travel there, the result comes back.
            return f"INV-{user_id}-{round(sum(order_totals))}"

        @w.do
        def report(
            profile: dict[str, object],
            order_totals: list[float],
            fingerprints: list[tuple[int, int]],
            invoice_number: str,
        ) -> dict[str, object]:
            return {
                "user": profile["name"],
                "orders": len(order_totals),
                "total": sum(order_totals),
                "fingerprints": [digest for digest, _ in fingerprints],
                "invoice": invoice_number,
            }

    elapsed = time.perf_counter() - started
    plan = w.execution_plan
    assert plan is not None
    worker_pids = sorted({pid for _, pid in w.result.fingerprints})
    print("plan tiers:   ", [list(tier) for tier in plan.tiers])
    print("profile:      ", w.result.profile)
    print("order totals: ", w.result["order_totals"])
    print(f"fingerprints:  computed by worker processes {worker_pids} (this one is {os.getpid()})")
    print(f"invoice:       {w.result.invoice_number} (from the worker service at {service_url})")
    print("report:       ", w.result.final)
    print(f"elapsed:       {elapsed * 1000:.0f} ms, worker start-up included")
    return w.result.final  # type: ignore[no-any-return]


if __name__ == "__main__":
    build_report(user_id=7)
