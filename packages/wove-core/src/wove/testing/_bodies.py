"""Task bodies the conformance suite sends to workers, and the helpers that read what they left.

Everything a worker runs is a closure made by a factory here. A closure's qualified name holds
``<locals>``, so the dispatch serializer (cloudpickle) ships it *by value*, together with the
values it captured; the only globals it touches are standard-library modules, which travel by
reference. So a worker unpickles these bodies without importing ``wove.testing`` -- and
therefore without pytest -- which is what lets the suite drive workers on machines that only
have the executor's worker side installed.

Workers and the test process meet through files in a directory both can reach (the suite's
``shared_tmp_path`` fixture): markers that say something happened, and lines appended with
``O_APPEND``, whose order is the order in which the writes happened, across processes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Final

__all__ = [
    "POLL_SECONDS",
    "WAIT_LIMIT_SECONDS",
    "append_line",
    "async_blocker",
    "attempt_counter",
    "blocker",
    "count_lines",
    "max_overlap",
    "waiter",
]

#: How often a blocked task body looks for the file it waits on.
POLL_SECONDS: Final = 0.01
#: The longest any task body waits for a condition; long tasks never outlive a test by more.
WAIT_LIMIT_SECONDS: Final = 60.0


def append_line(path: str | os.PathLike[str]) -> Callable[[str], None]:
    """Return a function that appends one line to ``path`` in a single ``O_APPEND`` write."""
    target = os.fspath(path)

    def append(text: str) -> None:
        descriptor = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, text.encode() + b"\n")
        finally:
            os.close(descriptor)

    return append


def blocker(
    release: str | os.PathLike[str],
    *,
    started: str | os.PathLike[str] | None = None,
    finished: str | os.PathLike[str] | None = None,
    limit: float = WAIT_LIMIT_SECONDS,
) -> Callable[[], bool]:
    """A sync body that blocks until ``release`` exists (at most ``limit`` seconds).

    It creates ``started`` when it begins and ``finished`` if it ever stops waiting, so a test
    can tell a run that was really stopped from one that merely stopped being awaited.
    """
    release_path = os.fspath(release)
    started_path = None if started is None else os.fspath(started)
    finished_path = None if finished is None else os.fspath(finished)

    def block() -> bool:
        if started_path is not None:
            open(started_path, "a").close()
        deadline = time.monotonic() + limit
        while not os.path.exists(release_path) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if finished_path is not None:
            open(finished_path, "a").close()
        return True

    return block


def async_blocker(
    release: str | os.PathLike[str],
    *,
    started: str | os.PathLike[str] | None = None,
    finished: str | os.PathLike[str] | None = None,
    limit: float = WAIT_LIMIT_SECONDS,
) -> Callable[[], Awaitable[bool]]:
    """The coroutine twin of :func:`blocker`: it waits with ``asyncio.sleep``."""
    release_path = os.fspath(release)
    started_path = None if started is None else os.fspath(started)
    finished_path = None if finished is None else os.fspath(finished)

    # The file checks are microseconds each and polling is the point: the condition lives in
    # another process, so no asyncio.Event can carry it.
    async def ablock() -> bool:
        if started_path is not None:
            open(started_path, "a").close()  # noqa: ASYNC230
        deadline = time.monotonic() + limit
        while not os.path.exists(release_path) and time.monotonic() < deadline:  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(POLL_SECONDS)
        if finished_path is not None:
            open(finished_path, "a").close()  # noqa: ASYNC230
        return True

    return ablock


def waiter(path: str | os.PathLike[str], *, limit: float = 30.0) -> Callable[[], None]:
    """A sync body that waits until ``path`` exists, failing after ``limit`` seconds."""
    target = os.fspath(path)

    def wait() -> None:
        deadline = time.monotonic() + limit
        while not os.path.exists(target):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"conformance: {target!r} did not appear within {limit:g}s; the environment "
                    "must run at least two tasks at once and reach the suite's shared directory"
                )
            time.sleep(POLL_SECONDS)

    return wait


def attempt_counter(path: str | os.PathLike[str]) -> Callable[[], int]:
    """A body that records one attempt in ``path`` and returns the attempt's number (1-based).

    Each call appends one byte with ``O_APPEND``, so the count is right across processes.
    """
    target = os.fspath(path)

    def count() -> int:
        descriptor = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, b".")
        finally:
            os.close(descriptor)
        return os.stat(target).st_size

    return count


# -- read by the test process ---------------------------------------------------------------


def count_lines(path: Path) -> int:
    """How many lines ``path`` holds (0 when it does not exist)."""
    if not path.exists():
        return 0
    return len(path.read_text().splitlines())


def max_overlap(lines: Iterable[str]) -> int:
    """The most runs in flight at once, from ``start ...``/``end ...`` lines in write order."""
    running = peak = 0
    for line in lines:
        if line.startswith("start"):
            running += 1
            peak = max(peak, running)
        elif line.startswith("end"):
            running -= 1
    return peak
