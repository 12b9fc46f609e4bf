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
    python benchmarks/workloads.py --stdio-cpu stdio-per-task-vs-echo  # CPU per item, by process

Method: every workload has a *wove* operation and a *floor* operation doing the same work with
plain asyncio or ``concurrent.futures``. Both are warmed up, then timed alternately for
``repetitions`` rounds (wove first on even rounds, floor first on odd ones); a round times
``inner`` back-to-back operations with ``time.perf_counter_ns`` and divides by the number of
tasks. The figure reported is the median round. Garbage is collected before each round; the
collector stays enabled while timing, as it would in an application.

The ``stdio-*`` workloads route tasks to a ``stdio`` environment (worker processes speaking JSON
lines over pipes); they use ``wove.config(environments=...)``, which both engines have, and run
last, so the configuration never touches the in-process workloads. Their floor, where they have
one, is a bare JSON-lines echo over asyncio subprocess pipes to plain Python children started
once. ``stdio-mapped-200`` and ``stdio-one-task`` have no in-process floor: they are compared with
wove 2.0.3 (``run.py --peer``), which spawns a worker per weave. The first weave on a stdio
environment starts its workers; ``stdio-mapped-200`` times it apart (``cold_ms``) before warming
up, and no timed round includes a start.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import json
import os
import platform
import re
import statistics
import sys
import threading
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
STDIO_MAPPED_ITEMS = 200
STDIO_ECHO_ITEMS = 2000
#: Bytes per echo line, newline included: about what Wove writes for one trivial mapped item
#: (a signed ``run_task`` line carrying a ~520-byte pickled closure is ~960 bytes).
STDIO_LINE_BYTES = 1000
STDIO_ENV_2 = "bench-stdio-2"
STDIO_ENV_1 = "bench-stdio-1"
STDIO_ENVIRONMENTS = {
    STDIO_ENV_2: {"executor": "stdio", "executor_config": {"processes": 2}},
    STDIO_ENV_1: {"executor": "stdio", "executor_config": {"processes": 1}},
}

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
# Out of process: stdio environments, and the bare JSON-lines echo they are compared with.
# --------------------------------------------------------------------------------------------

_stdio_configured = False


def _configure_stdio() -> None:
    """Add the stdio environments once, just before the first stdio workload runs.

    wove 2.0.3 ignores ``processes`` (it spawns one worker per weave and environment).
    """
    global _stdio_configured
    if not _stdio_configured:
        import wove

        wove.config(environments=STDIO_ENVIRONMENTS)
        _stdio_configured = True


def _stdio_map(items: int, environment: str) -> None:
    _configure_stdio()
    with weave() as w:

        @w.do(range(items), environment=environment)
        def f(i: int) -> int:
            return i

    assert w.result.f == list(range(items))


def stdio_mapped_wove() -> None:
    _stdio_map(STDIO_MAPPED_ITEMS, STDIO_ENV_2)


def stdio_one_task_wove() -> None:
    _configure_stdio()
    with weave() as w:

        @w.do(environment=STDIO_ENV_2)
        def one() -> int:
            return 1

    assert w.result.one == 1


def stdio_echo1_wove() -> None:
    _stdio_map(STDIO_ECHO_ITEMS, STDIO_ENV_1)


def stdio_echo2_wove() -> None:
    _stdio_map(STDIO_ECHO_ITEMS, STDIO_ENV_2)


_ECHO_CHILD = """\
import sys
source, sink = sys.stdin.buffer, sys.stdout.buffer
for line in source:
    sink.write(line)
    sink.flush()
"""
_echo_loop: asyncio.AbstractEventLoop | None = None
_echo_children: list[asyncio.subprocess.Process] = []


def _echo_payloads(count: int) -> list[dict[str, Any]]:
    """JSON-able records that encode to :data:`STDIO_LINE_BYTES` bytes with their newline."""
    bare = len(json.dumps({"run_id": f"echo-{count:06d}", "pad": ""})) + 1
    pad = "x" * (STDIO_LINE_BYTES - bare)
    return [{"run_id": f"echo-{i:06d}", "pad": pad} for i in range(count)]


_ECHO_PAYLOADS = _echo_payloads(STDIO_ECHO_ITEMS)


def _echo_processes(
    count: int,
) -> tuple[asyncio.AbstractEventLoop, list[asyncio.subprocess.Process]]:
    """The first ``count`` echo children, started once on a loop kept for them."""
    global _echo_loop
    if _echo_loop is None:
        _echo_loop = asyncio.new_event_loop()
        atexit.register(_close_echo_children)
    loop = _echo_loop
    while len(_echo_children) < count:
        start = asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _ECHO_CHILD,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        _echo_children.append(loop.run_until_complete(start))
    return loop, _echo_children[:count]


def _close_echo_children() -> None:
    loop = _echo_loop
    if loop is None or loop.is_closed():
        return

    async def close() -> None:
        for child in _echo_children:
            assert child.stdin is not None
            child.stdin.close()
        await asyncio.gather(*(child.wait() for child in _echo_children))

    loop.run_until_complete(close())
    _echo_children.clear()
    loop.close()


async def _echo_round(children: list[asyncio.subprocess.Process]) -> None:
    """Send every line and read every reply, pipelined as Wove does a mapped task's items.

    The lines are written back to back (draining as any sender must) while the replies are read
    concurrently: 2 MB do not fit in two pipe buffers, so "write all, then read all" would stall.
    The lines are dealt round-robin over the children; each reply is parsed as JSON.
    """
    width = len(children)
    replies: list[str] = []

    async def send(child: asyncio.subprocess.Process, payloads: list[dict[str, Any]]) -> None:
        stdin = child.stdin
        assert stdin is not None
        for payload in payloads:
            stdin.write(json.dumps(payload).encode() + b"\n")
            await stdin.drain()

    async def receive(child: asyncio.subprocess.Process, count: int) -> None:
        stdout = child.stdout
        assert stdout is not None
        for _ in range(count):
            replies.append(json.loads(await stdout.readline())["run_id"])

    shares = [_ECHO_PAYLOADS[index::width] for index in range(width)]
    await asyncio.gather(
        *(send(child, share) for child, share in zip(children, shares, strict=True)),
        *(receive(child, len(share)) for child, share in zip(children, shares, strict=True)),
    )
    assert len(replies) == STDIO_ECHO_ITEMS


def stdio_echo1_floor() -> None:
    loop, children = _echo_processes(1)
    loop.run_until_complete(_echo_round(children))


def stdio_echo2_floor() -> None:
    loop, children = _echo_processes(2)
    loop.run_until_complete(_echo_round(children))


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
    target: float | None  # see target_kind
    unit: str = "µs/task"
    #: "ratio": value / floor <= target; "latency": value (ms) <= target; "speedup": wove 2.0.3's
    #: value / this engine's value >= target, judged by run.py when it has both (``--peer``).
    target_kind: str = "ratio"
    #: Time the very first operation apart, before the warm-up, as ``cold_ms``.
    cold: bool = False
    #: Rounds instead of the run's default (the stdio workloads take 5, or 3 with --quick).
    rounds: int | None = None


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
        target_kind="latency",
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
        target_kind="latency",
    ),
    # Out of process. stdio-mapped-200 comes first: its first weave is the one that starts the
    # workers of STDIO_ENV_2, and it is timed apart as the cold start.
    Workload(
        "stdio-mapped-200",
        "stdio mapped 200, processes=2",
        stdio_mapped_wove,
        None,
        STDIO_MAPPED_ITEMS,
        5,
        5.0,
        "µs/item",
        target_kind="speedup",
        cold=True,
        rounds=5,
    ),
    Workload(
        "stdio-one-task",
        "stdio one task, processes=2",
        stdio_one_task_wove,
        None,
        1,
        20,
        None,
        "µs/weave",
        rounds=5,
    ),
    Workload(
        "stdio-per-task-vs-echo",
        "stdio 2000 mapped, processes=1, vs 1 echo child",
        stdio_echo1_wove,
        stdio_echo1_floor,
        STDIO_ECHO_ITEMS,
        1,
        1.5,
        "µs/item",
        rounds=5,
    ),
    Workload(
        "stdio-per-task-vs-echo-2proc",
        "stdio 2000 mapped, processes=2, vs 2 echo children",
        stdio_echo2_wove,
        stdio_echo2_floor,
        STDIO_ECHO_ITEMS,
        1,
        1.5,
        "µs/item",
        rounds=5,
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


def _describe(workload: Workload) -> dict[str, Any]:
    return {
        "title": workload.title,
        "unit": workload.unit,
        "target": workload.target,
        "target_kind": workload.target_kind,
        "tasks": workload.tasks,
    }


def measure(workload: Workload, repetitions: int, warmup: int) -> dict[str, Any]:
    if workload.target_kind == "latency":
        for _ in range(warmup):
            workload.wove()
        samples = [_latency_round(workload.wove) for _ in range(repetitions)]
        return {
            **_describe(workload),
            "value": statistics.median(samples),
            "samples": samples,
            "floor": None,
            "floor_samples": [],
        }
    extra: dict[str, Any] = {}
    if workload.cold:  # the first operation in this process, timed before any warm-up
        extra["cold_ms"] = _time_round(workload.wove, 1, 1) / 1_000
    operations = [workload.wove] if workload.floor is None else [workload.wove, workload.floor]
    for _ in range(warmup):
        for _ in range(workload.inner):
            for operation in operations:
                operation()
    # The new engine's stdio workers, to check that no timed weave spawned one (2.0.3: none).
    workers = set(_live_worker_pids()) if workload.key.startswith("stdio-") else set()
    wove_samples: list[float] = []
    floor_samples: list[float] = []
    for repetition in range(repetitions):
        pair = [(workload.wove, wove_samples)]
        if workload.floor is not None:
            pair.append((workload.floor, floor_samples))
        if repetition % 2:
            pair.reverse()
        for operation, samples in pair:
            samples.append(_time_round(operation, workload.inner, workload.tasks))
    if workers:
        extra["workers_spawned"] = len(set(_live_worker_pids()) - workers)
    return {
        **_describe(workload),
        **extra,
        "value": statistics.median(wove_samples),
        "samples": wove_samples,
        "floor": statistics.median(floor_samples) if floor_samples else None,
        "floor_samples": floor_samples,
    }


def selected(key: str, only: list[str] | None) -> bool:
    """Whether ``--only`` picks ``key``: by its name, or by a group prefix that is no workload's
    name (``stdio`` picks every ``stdio-*`` workload)."""
    if not only:
        return True
    keys = {workload.key for workload in WORKLOADS}
    return any(key == name or (name not in keys and key.startswith(f"{name}-")) for name in only)


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
        if not selected(workload.key, only):
            continue
        reps = repetitions
        if workload.target_kind == "latency":  # each round sleeps 0.3 s; fewer rounds suffice
            reps = 3 if quick else 5
        elif workload.rounds is not None:
            reps = min(workload.rounds, repetitions)
        try:
            results[workload.key] = measure(workload, reps, warmup)
        except Exception as error:  # report and go on: one broken workload is not the run
            results[workload.key] = {
                **_describe(workload),
                "error": f"{type(error).__name__}: {error}",
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
# Where the CPU goes in a stdio workload: this process by thread, and the workers by thread.
# --------------------------------------------------------------------------------------------


def _thread_group(name: str) -> str:
    """``ThreadPoolExecutor-0_3`` -> ``ThreadPoolExecutor``: pool threads are summed together."""
    return re.sub(r"([-_]\d+)+$", "", name) or name


def _proc_cpu(path: str) -> float | None:
    """utime + stime in seconds from a ``/proc/.../stat`` file; ``None`` once it is gone."""
    try:
        with open(path) as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _live_worker_pids() -> list[int]:
    """The pids of the new engine's stdio workers (private API; 2.0.3 has none between weaves)."""
    try:
        from wove import _environments
    except ImportError:
        return []
    pids: list[int] = []
    for resolved in list(_environments._resolved.values()):
        pids += getattr(resolved.executor, "pids", ())
    return pids


def _cpu_snapshot() -> dict[str, float]:
    """CPU seconds so far: per thread of this process, per thread of each live worker, reaped
    children, and this process's total."""
    import resource

    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    snapshot: dict[str, float] = {"parent total": time.process_time()}
    for tid in os.listdir("/proc/self/task"):
        seconds = _proc_cpu(f"/proc/self/task/{tid}/stat")
        if seconds is not None:
            snapshot[f"parent {tid} {names.get(int(tid), '?')}"] = seconds
    for pid in _live_worker_pids():
        for tid in os.listdir(f"/proc/{pid}/task"):
            seconds = _proc_cpu(f"/proc/{pid}/task/{tid}/stat")
            if seconds is not None:
                role = "event loop" if int(tid) == pid else "other threads"
                snapshot[f"worker {pid} {tid} {role}"] = seconds
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    snapshot["reaped children"] = children.ru_utime + children.ru_stime
    return snapshot


def stdio_cpu(key: str, weaves: int) -> None:
    """Print wall and CPU time per item of ``weaves`` warm weaves of a stdio workload."""
    workload = next((w for w in WORKLOADS if w.key == key), None)
    if workload is None or not key.startswith("stdio-"):
        stdio = [w.key for w in WORKLOADS if w.key.startswith("stdio-")]
        raise SystemExit(f"--stdio-cpu takes a stdio workload, one of {stdio}")
    for _ in range(2):  # start the workers, warm the caches
        workload.wove()
    gc.collect()
    before = _cpu_snapshot()
    started = time.perf_counter()
    for _ in range(weaves):
        workload.wove()
    wall = time.perf_counter() - started
    after = _cpu_snapshot()
    items = weaves * workload.tasks
    groups: dict[str, float] = {}
    for name, seconds in after.items():
        spent = seconds - before.get(name, 0.0)
        if name.startswith("parent ") and name != "parent total":
            name = "parent thread " + _thread_group(name.split(" ", 2)[2])
        elif name.startswith("worker "):
            name = "workers, " + name.split(" ", 3)[3]
        groups[name] = groups.get(name, 0.0) + spent
    print(f"{key}: {weaves} weaves of {workload.tasks} items, {wall:.2f} s wall")
    print(f"{'':32} {'s':>8} {'µs/item':>9}")
    print(f"{'wall':32} {wall:8.2f} {wall / items * 1e6:9.1f}")
    workers = sum(seconds for name, seconds in groups.items() if name.startswith("workers"))
    workers += groups.get("reaped children", 0.0)
    ordered = sorted(groups.items(), key=lambda pair: (not pair[0].startswith("parent"), pair[0]))
    for name, seconds in [*ordered, ("workers total", workers)]:
        print(f"{name:32} {seconds:8.2f} {seconds / items * 1e6:9.1f}")
    print(f"(/proc figures tick every {1 / os.sysconf('SC_CLK_TCK') * 1e3:.0f} ms)")


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
    parser.add_argument(
        "--stdio-cpu", metavar="KEY", help="CPU per item of a stdio workload, by process and thread"
    )
    parser.add_argument("--weaves", type=int, default=10, help="weaves timed by --stdio-cpu")
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
    if args.stdio_cpu:
        stdio_cpu(args.stdio_cpu, args.weaves)
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
