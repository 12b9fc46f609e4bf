"""The Wove demo: one function, one weave, tasks wired by their parameter names.

Run it with ``hatch run demo:run`` (see the README's Quickstart).
"""

from __future__ import annotations

import asyncio
import time

import wove
from wove import weave


def build_report(user_id: int) -> dict[str, object]:
    # Two environments, both in this process: "default" for quick work and "bulk" for the
    # mapped fan-out, which gets its own thread budget and retry policy.
    wove.config(
        default_environment="default",
        environments={
            "default": {"executor": "local"},
            "bulk": {"executor": "local", "max_workers": 16, "retries": 1, "workers": 8},
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

        @w.do
        def report(profile: dict[str, object], order_totals: list[float]) -> dict[str, object]:
            return {
                "user": profile["name"],
                "orders": len(order_totals),
                "total": sum(order_totals),
            }

    elapsed = time.perf_counter() - started
    plan = w.execution_plan
    assert plan is not None
    print("plan tiers:   ", [list(tier) for tier in plan.tiers])
    print("profile:      ", w.result.profile)
    print("order totals: ", w.result["order_totals"])
    print("report:       ", w.result.final)
    print(f"elapsed:       {elapsed * 1000:.0f} ms (one after another: 350 ms)")
    return w.result.final  # type: ignore[no-any-return]


if __name__ == "__main__":
    build_report(user_id=7)
