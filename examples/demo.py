"""The Wove demo: one function, one weave, tasks wired by their parameter names and routed to
three environments -- two in this process and one in worker processes over stdio.

Run it with ``hatch run demo:run`` (see the README's Quickstart).
"""

from __future__ import annotations

import asyncio
import os
import time

import wove
from wove import weave


def build_report(user_id: int) -> dict[str, object]:
    wove.config(
        default_environment="default",
        environments={
            # Quick work, in this process.
            "default": {"executor": "local"},
            # A mapped fan-out with its own thread budget and a retry policy, in this process.
            "bulk": {"executor": "local", "max_workers": 16, "retries": 1, "workers": 8},
            # CPU-heavy work, in two reused worker processes that speak signed frames on stdio.
            "cpu": {"executor": "stdio", "executor_config": {"processes": 2}},
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

        @w.do
        def report(
            profile: dict[str, object],
            order_totals: list[float],
            fingerprints: list[tuple[int, int]],
        ) -> dict[str, object]:
            return {
                "user": profile["name"],
                "orders": len(order_totals),
                "total": sum(order_totals),
                "fingerprints": [digest for digest, _ in fingerprints],
            }

    elapsed = time.perf_counter() - started
    plan = w.execution_plan
    assert plan is not None
    worker_pids = sorted({pid for _, pid in w.result.fingerprints})
    print("plan tiers:   ", [list(tier) for tier in plan.tiers])
    print("profile:      ", w.result.profile)
    print("order totals: ", w.result["order_totals"])
    print(f"fingerprints:  computed by worker processes {worker_pids} (this one is {os.getpid()})")
    print("report:       ", w.result.final)
    print(f"elapsed:       {elapsed * 1000:.0f} ms, worker start-up included")
    return w.result.final  # type: ignore[no-any-return]


if __name__ == "__main__":
    build_report(user_id=7)
