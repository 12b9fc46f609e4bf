"""What the network benchmarks share: starting a service process and timing a coroutine."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Awaitable, Callable


def start_service(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start a service that prints ``... listening on <url>`` once bound; return it and the URL."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"{command} did not start: {line!r}")
    return process, line.rsplit(" ", 1)[1].strip()


async def timed(work: Callable[[], Awaitable[None]]) -> float:
    """Seconds ``work()`` took."""
    began = time.perf_counter()
    await work()
    return time.perf_counter() - began
