"""Wove benchmark workloads, each timed against its floor in the same process.

This file is run as a script, once per engine, in a fresh subprocess (``benchmarks/run.py``
starts it), so two engines never share warm state. It is self-contained and uses only the
public API that wove 2.0.3 and the new engine share: ``weave``, ``@w.do``,
``@w.do(items, workers=...)``, ``w.result.<name>`` and ``async with weave()``. Whichever
``wove`` the interpreter imports is the engine measured.

Usage::

    python benchmarks/workloads.py --json [--quick]     # all timed workloads, JSON on stdout
    python benchmarks/workloads.py --memory wove 1000000  # one memory probe, JSON on stdout
    python benchmarks/workloads.py --profile async_fanout # cProfile of one workload's wove side

Method: every workload has a *wove* operation and a *floor* operation doing the same work with
plain asyncio or ``concurrent.futures``. Both are warmed up, then timed alternately for
``repetitions`` rounds (wove first on even rounds, floor first on odd ones); a round times
``inner`` back-to-back operations with ``time.perf_counter_ns`` and divides by the number of
tasks. The figure reported is the median round. Garbage is collected before each round; the
collector stays enabled while timing, as it would in an application.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from wove import weave

FANOUT_TASKS = 200
CHAIN_LINKS = 200
MAPPED_ITEMS = 10_000
CRITICAL_FIRST_SECONDS = 0.010
CRITICAL_SIBLING_SECONDS = 0.300
MEMORY_WORKERS = 64

Operation = Callable[[], object]


# --------------------------------------------------------------------------------------------
# Task factories. Task names are dependencies, so every task needs its own function name.
# --------------------------------------------------------------------------------------------


def _named(func: Any, name: str) -> Any:
    func.__name__ = name
    func.__qualname__ = name
    return func


def _async_constant(name: str, value: int) -> Callable[[], Coroutine[Any, Any, int]]:
    async def task() -> int:
        return value

    return _named(task, name)  # type: ignore[no-any-return]


def _sync_constant(name: str, value: int) -> Callable[[], int]:
    def task() -> int:
        return value

    return _named(task, name)  # type: ignore[no-any-return]


def _async_chain(links: int) -> list[Callable[..., Coroutine[Any, Any, int]]]:
    """``t0() -> t1(t0) -> ... -> t{links-1}(t{links-2})``, each adding one."""
    source = ["async def t0():\n    return 0\n"]
    source += [f"async def t{i}(t{i - 1}):\n    return t{i - 1} + 1\n" for i in range(1, links)]
    namespace: dict[str, Any] = {}
    exec("\n".join(source), namespace)
    return [namespace[f"t{i}"] for i in range(links)]


ASYNC_FANOUT = [_async_constant(f"task_{i}", i) for i in range(FANOUT_TASKS)]
SYNC_FANOUT = [_sync_constant(f"task_{i}", i) for i in range(FANOUT_TASKS)]
ASYNC_CHAIN = _async_chain(CHAIN_LINKS)


async def _one() -> int:
    return 1


async def _item_async(i: int) -> int:
    return i


def _item_sync(i: int) -> int:
    return i


# --------------------------------------------------------------------------------------------
# Workload operations: each returns nothing useful; a wrong answer raises.
# --------------------------------------------------------------------------------------------


def one_task_wove() -> None:
    with weave() as w:

        @w.do
        async def one() -> int:
            return 1

    assert w.result.one == 1


def one_task_floor() -> None:
    assert asyncio.run(_one()) == 1


_REUSED_LOOP = asyncio.new_event_loop()


def one_task_reused_loop_floor() -> None:
    """One coroutine on a loop kept between runs, as sync ``with weave()`` keeps its own."""
    assert _REUSED_LOOP.run_until_complete(_one()) == 1


def one_task_async_with_wove() -> None:
    async def main() -> int:
        async with weave() as w:

            @w.do
            async def one() -> int:
                return 1

        return w.result.one  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 1


def async_fanout_wove() -> None:
    with weave() as w:
        for func in ASYNC_FANOUT:
            w.do(func)
    assert w.result.task_199 == FANOUT_TASKS - 1


def async_fanout_floor() -> None:
    async def main() -> list[int]:
        return await asyncio.gather(*(func() for func in ASYNC_FANOUT))

    assert asyncio.run(main())[-1] == FANOUT_TASKS - 1


def sync_fanout_wove() -> None:
    with weave() as w:
        for func in SYNC_FANOUT:
            w.do(func)
    assert w.result.task_199 == FANOUT_TASKS - 1


_SHARED_POOL = ThreadPoolExecutor()


def sync_fanout_floor() -> None:
    futures = [_SHARED_POOL.submit(func) for func in SYNC_FANOUT]
    wait(futures)
    assert futures[-1].result() == FANOUT_TASKS - 1


def mapped_async_wove() -> None:
    with weave() as w:

        @w.do(range(MAPPED_ITEMS))
        async def f(i: int) -> int:
            return i

    assert len(w.result.f) == MAPPED_ITEMS


def mapped_async_floor() -> None:
    async def main() -> list[int]:
        return await asyncio.gather(*(_item_async(i) for i in range(MAPPED_ITEMS)))

    assert len(asyncio.run(main())) == MAPPED_ITEMS


def mapped_sync_wove() -> None:
    with weave() as w:

        @w.do(range(MAPPED_ITEMS))
        def f(i: int) -> int:
            return i

    assert len(w.result.f) == MAPPED_ITEMS


def mapped_sync_floor() -> None:
    with ThreadPoolExecutor() as pool:
        results = list(pool.map(_item_sync, range(MAPPED_ITEMS)))
    assert len(results) == MAPPED_ITEMS


def async_chain_wove() -> None:
    with weave() as w:
        for func in ASYNC_CHAIN:
            w.do(func)
    assert w.result.t199 == CHAIN_LINKS - 1


async def _link(previous: asyncio.Task[int] | None) -> int:
    return 0 if previous is None else await previous + 1


def async_chain_floor() -> None:
    async def main() -> int:
        task: asyncio.Task[int] | None = None
        for _ in range(CHAIN_LINKS):
            task = asyncio.create_task(_link(task))
        assert task is not None
        return await task

    assert asyncio.run(main()) == CHAIN_LINKS - 1


def critical_path_async() -> float:
    """Seconds between ``a`` returning and ``b(a)`` starting, with a slow sibling running."""
    with weave() as w:

        @w.do
        async def a() -> float:
            await asyncio.sleep(CRITICAL_FIRST_SECONDS)
            return time.perf_counter()

        @w.do
        async def b(a: float) -> float:
            return time.perf_counter() - a

        @w.do
        async def slow() -> None:
            await asyncio.sleep(CRITICAL_SIBLING_SECONDS)

    return w.result.b  # type: ignore[no-any-return]


def critical_path_sync() -> float:
    """As :func:`critical_path_async`, with sync tasks running on threads."""
    with weave() as w:

        @w.do
        def a() -> float:
            time.sleep(CRITICAL_FIRST_SECONDS)
            return time.perf_counter()

        @w.do
        def b(a: float) -> float:
            return time.perf_counter() - a

        @w.do
        def slow() -> None:
            time.sleep(CRITICAL_SIBLING_SECONDS)

    return w.result.b  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    wove: Operation
    floor: Operation | None
    tasks: int  # tasks (or items, or links) per operation
    inner: int  # operations per timed round
    target: float | None  # ratio to the floor, or milliseconds for latency workloads
    unit: str = "µs/task"


WORKLOADS: list[Workload] = [
    Workload("one_task", "one-task weave", one_task_wove, one_task_floor, 1, 100, 1.5),
    Workload(
        "one_task_reused_loop",
        "one-task weave vs reused loop",
        one_task_wove,
        one_task_reused_loop_floor,
        1,
        100,
        None,
    ),
    Workload(
        "one_task_async_with",
        "one-task weave, async with",
        one_task_async_with_wove,
        one_task_floor,
        1,
        100,
        None,
    ),
    Workload(
        "async_fanout",
        "async fan-out (200)",
        async_fanout_wove,
        async_fanout_floor,
        FANOUT_TASKS,
        10,
        2.5,
    ),
    Workload(
        "sync_fanout",
        "sync fan-out (200)",
        sync_fanout_wove,
        sync_fanout_floor,
        FANOUT_TASKS,
        10,
        None,
    ),
    Workload(
        "mapped_async",
        "10k mapped async",
        mapped_async_wove,
        mapped_async_floor,
        MAPPED_ITEMS,
        1,
        2.5,
    ),
    Workload(
        "mapped_sync",
        "10k mapped sync",
        mapped_sync_wove,
        mapped_sync_floor,
        MAPPED_ITEMS,
        1,
        3.0,
    ),
    Workload(
        "async_chain",
        "async chain (200 links)",
        async_chain_wove,
        async_chain_floor,
        CHAIN_LINKS,
        5,
        2.5,
    ),
    Workload(
        "critical_path_async",
        "critical path, async",
        critical_path_async,
        None,
        1,
        1,
        1.0,
        "ms late",
    ),
    Workload(
        "critical_path_sync",
        "critical path, sync",
        critical_path_sync,
        None,
        1,
        1,
        1.0,
        "ms late",
    ),
]


def _time_round(operation: Operation, inner: int, tasks: int) -> float:
    """Microseconds per task over ``inner`` back-to-back operations."""
    gc.collect()
    started = time.perf_counter_ns()
    for _ in range(inner):
        operation()
    elapsed = time.perf_counter_ns() - started
    return elapsed / 1_000 / inner / tasks


def _latency_round(operation: Operation) -> float:
    """Milliseconds an operation reports as its latency."""
    gc.collect()
    seconds = operation()
    assert isinstance(seconds, float)
    return seconds * 1_000


def measure(workload: Workload, repetitions: int, warmup: int) -> dict[str, Any]:
    if workload.floor is None:
        for _ in range(warmup):
            workload.wove()
        samples = [_latency_round(workload.wove) for _ in range(repetitions)]
        return {
            "title": workload.title,
            "unit": workload.unit,
            "value": statistics.median(samples),
            "samples": samples,
            "floor": None,
            "floor_samples": [],
            "target": workload.target,
        }
    for _ in range(warmup):
        for _ in range(workload.inner):
            workload.wove()
            workload.floor()
    wove_samples: list[float] = []
    floor_samples: list[float] = []
    for repetition in range(repetitions):
        pair = [(workload.wove, wove_samples), (workload.floor, floor_samples)]
        if repetition % 2:
            pair.reverse()
        for operation, samples in pair:
            samples.append(_time_round(operation, workload.inner, workload.tasks))
    return {
        "title": workload.title,
        "unit": workload.unit,
        "value": statistics.median(wove_samples),
        "samples": wove_samples,
        "floor": statistics.median(floor_samples),
        "floor_samples": floor_samples,
        "target": workload.target,
    }


def engine_info() -> dict[str, Any]:
    import wove

    version = getattr(wove, "__version__", None)
    if version is None:
        from importlib import metadata

        for distribution in ("wove-core", "wove"):
            try:
                version = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return {
        "version": version,
        "file": wove.__file__,
        "python": platform.python_version(),
        "executable": sys.executable,
    }


def run_all(quick: bool, only: list[str] | None) -> dict[str, Any]:
    repetitions = 3 if quick else 7
    warmup = 1 if quick else 2
    results: dict[str, Any] = {}
    for workload in WORKLOADS:
        if only and workload.key not in only:
            continue
        reps = repetitions
        if workload.floor is None:  # each round sleeps 0.3 s; fewer rounds suffice
            reps = 3 if quick else 5
        try:
            results[workload.key] = measure(workload, reps, warmup)
        except Exception as error:  # report and go on: one broken workload is not the run
            results[workload.key] = {
                "title": workload.title,
                "unit": workload.unit,
                "error": f"{type(error).__name__}: {error}",
                "target": workload.target,
            }
        print(f"  {workload.title}: done", file=sys.stderr, flush=True)
    return {"engine": engine_info(), "quick": quick, "results": results}


# --------------------------------------------------------------------------------------------
# Memory: one probe per fresh process, so the peak RSS belongs to one run of one size.
# --------------------------------------------------------------------------------------------


async def _trivial(i: int) -> None:
    return None


def _memory_wove(items: int) -> None:
    with weave() as w:

        @w.do(range(items), workers=MEMORY_WORKERS)
        async def f(i: int) -> None:
            return None

    assert len(w.result.f) == items


def _memory_gather(items: int) -> None:
    async def main() -> list[None]:
        return await asyncio.gather(*(_trivial(i) for i in range(items)))

    assert len(asyncio.run(main())) == items


def memory_probe(kind: str, items: int) -> dict[str, Any]:
    """Peak-RSS growth of mapping ``items`` trivial async items (``kind``: wove or gather)."""
    import resource

    run = _memory_wove if kind == "wove" else _memory_gather
    run(1_000)  # warm up imports, the loop and the pools
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter_ns()
    run(items)
    seconds = (time.perf_counter_ns() - started) / 1e9
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    growth = (after - before) * scale
    return {
        "kind": kind,
        "items": items,
        "growth_bytes": growth,
        "bytes_per_item": growth / items,
        "seconds": seconds,
    }


# --------------------------------------------------------------------------------------------
# Profiling
# --------------------------------------------------------------------------------------------


def profile(key: str, top: int) -> None:
    import cProfile
    import pstats

    workload = next((w for w in WORKLOADS if w.key == key), None)
    if workload is None:
        raise SystemExit(f"unknown workload {key!r}; one of {[w.key for w in WORKLOADS]}")
    for _ in range(2):
        workload.wove()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(max(workload.inner, 3)):
        workload.wove()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--only", action="append", metavar="KEY", help="run only this workload")
    parser.add_argument("--memory", nargs=2, metavar=("KIND", "ITEMS"), help="one memory probe")
    parser.add_argument("--profile", metavar="KEY", help="cProfile the wove side of a workload")
    parser.add_argument("--top", type=int, default=15, help="rows of profile output")
    parser.add_argument("--info", action="store_true", help="print only the engine's details")
    args = parser.parse_args(argv)

    if args.info:
        print(json.dumps(engine_info()))
        return 0
    if args.memory:
        kind, items = args.memory[0], int(args.memory[1])
        if kind not in ("wove", "gather"):
            parser.error("--memory KIND is 'wove' or 'gather'")
        print(json.dumps(memory_probe(kind, items)))
        return 0
    if args.profile:
        profile(args.profile, args.top)
        return 0
    report = run_all(args.quick, args.only)
    if args.json:
        print(json.dumps(report))
    else:
        for key, result in report["results"].items():
            if "error" in result:
                print(f"{key:22} ERROR {result['error']}")
            elif result["floor"] is None:
                print(f"{key:22} {result['value']:10.3f} {result['unit']}")
            else:
                ratio = result["value"] / result["floor"]
                print(
                    f"{key:22} {result['value']:10.2f} vs {result['floor']:8.2f} "
                    f"{result['unit']}  ({ratio:.2f}x)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
