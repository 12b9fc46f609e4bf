"""``debug=True`` (§2.11): the plan and per-task timings on stderr, behaviour unchanged."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from wove import weave


def run_pipeline(debug: bool) -> dict[str, Any]:
    with weave(debug=debug, user_id=7) as w:

        @w.do
        def numbers(user_id: int) -> list[int]:
            return [user_id, user_id + 1]

        @w.do("numbers")
        async def doubled(n: int) -> int:
            return n * 2

        @w.do
        def total(doubled: list[int]) -> int:
            return sum(doubled)

    return w.result.to_dict()


def test_debug_prints_the_plan_and_timings_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    run_pipeline(debug=True)

    out, err = capsys.readouterr()
    assert out == ""
    assert "--- wove: plan ---" in err
    assert "numbers [sync, environment 'default']" in err
    assert "doubled [async, environment 'default'] mapped over 'numbers' (item: n)" in err
    assert "depends on: numbers; data: -" in err
    assert "depends on: -; data: user_id" in err
    assert "tier 1: numbers" in err
    assert "tier 3: total" in err
    assert err.index("--- wove: plan ---") < err.index("--- wove: timings ---")
    for name in ("numbers", "doubled", "total"):
        assert re.search(rf"{name}\s+\d+\.\d+ ms  ok", err), name


def test_debug_does_not_change_results(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = run_pipeline(debug=False)
    assert capsys.readouterr().err == ""

    assert (
        run_pipeline(debug=True) == quiet == {"numbers": [7, 8], "doubled": [14, 16], "total": 30}
    )


def test_debug_reports_failed_and_skipped_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    with weave(debug=True, error_mode="return") as w:

        @w.do
        def broken() -> None:
            raise ValueError("bad")

        @w.do
        def skipped(broken: None) -> None:
            pass

    err = capsys.readouterr().err
    assert re.search(r"broken\s+\d+\.\d+ ms  failed: ValueError", err)
    assert re.search(r"skipped\s+- ms  failed: UpstreamTaskError", err)
    assert isinstance(w.result.broken, ValueError)


def test_debug_prints_timings_even_when_the_weave_raises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ValueError, match="bad"), weave(debug=True) as w:  # noqa: PT012

        @w.do
        def broken() -> None:
            raise ValueError("bad")

        @w.do
        def never(broken: None) -> None:
            pass

    err = capsys.readouterr().err
    assert "--- wove: timings ---" in err
    assert re.search(r"never\s+- ms  cancelled", err)
    assert w.result.cancelled == {"never"}


def test_debug_in_async_with(capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> int:
        async with weave(debug=True) as w:

            @w.do
            async def answer() -> int:
                return 42

        return w.result.answer  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 42
    assert "answer [async, environment 'default']" in capsys.readouterr().err
