"""What the backend benchmarks share: one task's round trip through Wove against the backend's
own submit-and-wait for the same function, as a median ratio over interleaved rounds.

Each round times ``repeat`` sequential round trips of each side, alternating which goes first,
so drift on a noisy machine hits both alike. The target (DESIGN: within 1.25x) is printed
beside the figure, never asserted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

TARGET_RATIO = 1.25


def per_call(work: Callable[[], object], repeat: int) -> float:
    """Seconds per call of ``work``, over ``repeat`` sequential calls."""
    began = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - began) / repeat


def compare(
    name: str,
    through_wove: Callable[[], object],
    native: Callable[[], object],
    *,
    rounds: int = 5,
    repeat: int = 20,
) -> float:
    """Print and return the median ratio of Wove's round trip to the native one."""
    through_wove()  # warm both paths: connections, worker imports, the callback server
    native()
    ratios: list[float] = []
    wove_times: list[float] = []
    native_times: list[float] = []
    for round_number in range(rounds):
        if round_number % 2:
            baseline = per_call(native, repeat)
            measured = per_call(through_wove, repeat)
        else:
            measured = per_call(through_wove, repeat)
            baseline = per_call(native, repeat)
        wove_times.append(measured)
        native_times.append(baseline)
        ratios.append(measured / baseline)
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(
        f"{name}: one task round trip {statistics.median(wove_times) * 1000:.1f} ms through "
        f"Wove vs {statistics.median(native_times) * 1000:.1f} ms native submit-and-wait; "
        f"median ratio {ratio:.2f}x over {rounds} rounds of {repeat} "
        f"({verdict} the {TARGET_RATIO}x target)"
    )
    return ratio
