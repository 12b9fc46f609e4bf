"""The ``debug=True`` report: the plan before a weave runs and per-task timings after.

It is written to standard error so it never mixes with a program's own output.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ._result import WoveResult
    from ._scheduler import WeaveRun

__all__ = ["print_plan", "print_timings"]


def print_plan(run: WeaveRun, stream: TextIO | None = None) -> None:
    """Print tasks, their dependencies, where they run, and the tiers of the plan."""
    out = stream or sys.stderr
    plan = run.plan
    print("--- wove: plan ---", file=out)
    for name in plan.order:
        spec = run.specs[name]
        settings = run.settings[name]
        kind = "async" if spec.is_async else "sync"
        deps = ", ".join(plan.dependencies[name]) or "-"
        data = ", ".join(plan.data_parameters[name]) or "-"
        mapped = ""
        if spec.is_mapped:
            source = spec.map_source
            shown = repr(source) if isinstance(source, str) else type(source).__name__
            mapped = f" mapped over {shown} (item: {plan.item_parameters[name]})"
        print(
            f"  {name} [{kind}, environment {settings.environment!r}]{mapped}\n"
            f"      depends on: {deps}; data: {data}",
            file=out,
        )
    for index, tier in enumerate(plan.tiers, start=1):
        print(f"  tier {index}: {', '.join(tier)}", file=out)


def print_timings(result: WoveResult, stream: TextIO | None = None) -> None:
    """Print how long each task took and how it ended."""
    out = stream or sys.stderr
    print("--- wove: timings ---", file=out)
    for name in result._declared:
        seconds = result.timings.get(name)
        if name in result._results:
            outcome = "ok"
        elif name in result._errors:
            outcome = f"failed: {type(result._errors[name]).__name__}"
        else:
            outcome = "cancelled"
        shown = f"{seconds * 1000:9.3f} ms" if seconds is not None else "        - ms"
        print(f"  {name:<24} {shown}  {outcome}", file=out)
