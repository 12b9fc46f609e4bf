"""``weave()``, ``Weave`` and the blocks: injected data (§2.3), inheritable weaves (§2.8) and the
loop rules of §2.12."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from wove import (
    InvalidOptionError,
    ReservedNameError,
    UnknownOptionError,
    Weave,
    WeaveBlock,
    WeaveUsageError,
    WoveResult,
    weave,
)

WAIT = 10.0


# -- §2.12 blocks and event loops -----------------------------------------------------------------


def test_sync_weave_inside_a_running_loop_raises_at_enter_pointing_to_async_with() -> None:
    body_ran: list[bool] = []

    async def main() -> None:
        with weave() as w:
            body_ran.append(True)

            @w.do
            def never() -> None:
                pass

    with pytest.raises(WeaveUsageError, match=r"inside a running event loop.*'async with") as c:
        asyncio.run(main())

    assert isinstance(c.value, RuntimeError)
    assert body_ran == []


def test_sync_weave_enter_refuses_a_running_loop_before_anything_else() -> None:
    block = weave()

    async def enter() -> None:
        block.__enter__()

    with pytest.raises(WeaveUsageError, match="async with"):
        asyncio.run(enter())


def test_sync_weave_works_in_a_thread_without_a_loop() -> None:
    outcome: dict[str, Any] = {}

    def in_thread() -> None:
        with weave() as w:

            @w.do
            async def value() -> int:
                return 41

            @w.do
            def plus_one(value: int) -> int:
                return value + 1

        outcome["final"] = w.result.final

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(WAIT)

    assert outcome == {"final": 42}


def test_sync_weaves_on_the_main_thread_reuse_one_event_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []
    for _ in range(2):
        with weave() as w:

            @w.do
            async def which_loop() -> None:
                loops.append(asyncio.get_running_loop())

    assert w.result.which_loop is None
    assert loops[0] is loops[1]
    assert not loops[0].is_closed()


def test_async_with_runs_on_the_callers_loop() -> None:
    async def main() -> bool:
        caller = asyncio.get_running_loop()
        async with weave() as w:

            @w.do
            async def loop_of_task() -> asyncio.AbstractEventLoop:
                return asyncio.get_running_loop()

            @w.do
            def sync_task() -> str:
                return "from a thread"

        assert w.result.sync_task == "from a thread"
        return w.result.loop_of_task is caller  # type: ignore[no-any-return]

    assert asyncio.run(main())


def test_a_block_can_be_used_only_once() -> None:
    block = weave()
    with block:
        pass

    with pytest.raises(WeaveUsageError, match="already used"), block:
        pass


def test_error_in_the_block_body_propagates_and_runs_no_task() -> None:
    ran: list[str] = []
    with pytest.raises(ZeroDivisionError, match="division by zero"), weave() as w:  # noqa: PT012

        @w.do
        def task() -> None:
            ran.append("task")

        1 / 0  # noqa: B018

    assert ran == []
    assert w.execution_plan is None


def test_on_done_is_called_with_the_result_after_a_foreground_weave() -> None:
    seen: list[WoveResult] = []
    with weave(on_done=seen.append) as w:

        @w.do
        def a() -> int:
            return 1

    assert seen == [w.result]
    assert seen[0].a == 1


def test_async_on_done_is_awaited_after_an_async_weave() -> None:
    seen: list[int] = []

    async def record(result: WoveResult) -> None:
        seen.append(result.a)

    async def main() -> None:
        async with weave(on_done=record) as w:

            @w.do
            async def a() -> int:
                return 1

    asyncio.run(main())

    assert seen == [1]


# -- declaring tasks ------------------------------------------------------------------------------


def test_do_accepts_bare_and_called_forms_and_returns_the_function() -> None:
    with weave() as w:

        @w.do
        def bare() -> int:
            return 1

        @w.do()
        def called() -> int:
            return 2

        assert bare() == 1
        assert called() == 2

    assert w.result.to_dict() == {"bare": 1, "called": 2}


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        pytest.param(b"items", "map over a task by its name as str", id="bytes"),
        pytest.param(42, "expected a task name to map over, an iterable", id="int"),
    ],
)
def test_do_rejects_an_argument_that_is_neither_name_nor_iterable(
    argument: object, message: str
) -> None:
    with weave() as w, pytest.raises(InvalidOptionError, match=message):
        w.do(argument)


def test_unknown_task_option_suggests_the_right_one() -> None:
    with weave() as w, pytest.raises(UnknownOptionError, match="Did you mean 'retries'"):

        @w.do(retires=2)
        def task() -> None:
            pass


def test_bad_task_option_value_is_shown() -> None:
    with weave() as w, pytest.raises(InvalidOptionError, match="retries must be an integer >= 0"):

        @w.do(retries=-1)
        def task() -> None:
            pass


@pytest.mark.parametrize("name", ["final", "cancelled"])
def test_task_named_like_a_result_property_is_a_reserved_name_error(name: str) -> None:
    def task() -> None:
        pass

    task.__name__ = name
    with (
        weave() as w,
        pytest.raises(ReservedNameError, match=f"task name {name!r} is reserved: w.result.{name}"),
    ):
        w.do(task)


# -- §2.3 injected data ---------------------------------------------------------------------------


def test_injected_data_are_plain_values_not_tasks() -> None:
    payload = {"id": 7}
    calls: list[str] = []

    def factory() -> str:
        calls.append("called")
        return "made"

    with weave(payload=payload, factory=factory) as w:

        @w.do
        def seen(payload: dict[str, int], factory: Any) -> tuple[Any, Any]:
            return payload, factory

    assert w.result.seen[0] is payload
    assert w.result.seen[1] is factory
    assert calls == []
    assert "payload" not in w.result
    assert list(w.result.keys()) == ["seen"]
    assert w.execution_plan is not None
    assert w.execution_plan.order == ("seen",)


def test_injected_data_reach_async_tasks_unchanged() -> None:
    marker = object()

    async def main() -> object:
        async with weave(marker=marker) as w:

            @w.do
            async def echo(marker: object) -> object:
                return marker

        return w.result.echo

    assert asyncio.run(main()) is marker


@pytest.mark.parametrize(
    "option", ["retries", "retry_backoff", "timeout", "workers", "limit_per_minute"]
)
def test_task_option_passed_to_weave_is_a_type_error_not_data(option: str) -> None:
    with pytest.raises(UnknownOptionError, match=rf"weave\(\) got {option}=3.*it is a task option"):
        weave(**{option: 3})


def test_task_option_passed_to_weave_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"Set it on @w\.do"):
        weave(retries=3)


def test_data_with_the_name_of_a_task_is_rejected() -> None:
    with (
        weave(user=1) as w,
        pytest.raises(InvalidOptionError, match="both injected data and a task"),
    ):

        @w.do
        def user() -> int:
            return 2


def test_parameter_default_is_used_when_nothing_matches_and_overridden_by_data() -> None:
    with weave(given=5) as w:

        @w.do
        def defaulted(limit: int = 3) -> int:
            return limit

        @w.do
        def overridden(given: int = 1) -> int:
            return given

    assert w.result.defaulted == 3
    assert w.result.overridden == 5


# -- §2.8 inheritable weaves ----------------------------------------------------------------------


class Pipeline(Weave):
    label = "total"

    @Weave.do
    def numbers(self) -> list[int]:
        return [1, 2, 3]

    @Weave.do("numbers")
    def doubled(self, number: int) -> int:
        return number * 2

    @Weave.do
    def summary(self, doubled: list[int]) -> str:
        return f"{self.label}={sum(doubled)}"


class Flaky(Weave):
    @Weave.do(retries=2)
    def fetch(self) -> str:
        raise ConnectionError("the parent never succeeds")

    @Weave.do
    async def shown(self, fetch: str) -> str:
        return fetch.upper()


def test_weave_class_methods_run_as_tasks() -> None:
    with weave(Pipeline) as w:
        pass

    assert w.result.to_dict() == {"numbers": [1, 2, 3], "doubled": [2, 4, 6], "summary": "total=12"}
    assert w.result.final == "total=12"


class LabelledPipeline(Pipeline):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label


def test_weave_instance_runs_with_its_own_state() -> None:
    with weave(LabelledPipeline("sum")) as w:
        pass

    assert w.result.final == "sum=12"


def test_weave_subclass_without_its_own_init_is_not_instantiated_by_hand() -> None:
    with pytest.raises(
        TypeError, match=r"Pipeline\(\) cannot be instantiated directly.*weave\(Pipeline\)"
    ):
        Pipeline()


def test_weave_requires_a_weave_class_or_instance() -> None:
    with pytest.raises(TypeError, match="takes a Weave subclass or instance"):
        weave(object)  # type: ignore[arg-type]


def test_inline_task_overrides_a_class_method_in_with() -> None:
    with weave(Pipeline) as w:

        @w.do
        def numbers() -> list[int]:
            return [10]

    assert w.result.doubled == [20]
    assert w.result.final == "total=20"
    assert list(w.result.keys()) == ["numbers", "doubled", "summary"]


def test_inline_task_overrides_a_class_method_in_async_with() -> None:
    async def main() -> Any:
        async with weave(Pipeline) as w:

            @w.do
            async def numbers() -> list[int]:
                return [100]

        return w.result.final

    assert asyncio.run(main()) == "total=200"


def test_override_of_the_last_class_task_is_final() -> None:
    with weave(Pipeline) as w:

        @w.do
        def summary(doubled: list[int]) -> str:
            return f"overridden {doubled}"

    assert w.result.final == "overridden [2, 4, 6]"


def test_inline_task_after_class_tasks_is_final() -> None:
    with weave(Pipeline) as w:

        @w.do
        def shout(summary: str) -> str:
            return summary.upper()

    assert w.result.final == "TOTAL=12"
    assert list(w.result.keys()) == ["numbers", "doubled", "summary", "shout"]


def test_inline_override_inherits_unset_options() -> None:
    attempts: list[int] = []
    with weave(Flaky) as w:

        @w.do
        def fetch() -> str:
            attempts.append(1)
            if len(attempts) < 3:
                raise ConnectionError("not yet")
            return "fetched"

    assert attempts == [1, 1, 1]
    assert w.result.final == "FETCHED"


def test_inline_override_options_win_over_inherited_ones() -> None:
    attempts: list[int] = []
    with pytest.raises(ConnectionError, match="once"), weave(Flaky) as w:

        @w.do(retries=0)
        def fetch() -> str:
            attempts.append(1)
            raise ConnectionError("once")

    assert attempts == [1]


def test_inline_override_inherits_the_map_source() -> None:
    with weave(Pipeline) as w:

        @w.do
        def doubled(number: int) -> int:
            return number * 100

    assert w.result.doubled == [100, 200, 300]
    assert w.result.final == "total=600"


def test_subclass_replaces_a_task_in_place_and_adds_new_ones() -> None:
    class Tripled(Pipeline):
        @Weave.do("numbers")
        def doubled(self, number: int) -> int:
            return number * 3

        @Weave.do
        def extra(self, summary: str) -> str:
            return summary + "!"

    with weave(Tripled) as w:
        pass

    assert list(w.result.keys()) == ["numbers", "doubled", "summary", "extra"]
    assert w.result.final == "total=18!"


def test_subclass_can_remove_a_task_with_a_plain_attribute() -> None:
    class NoSummary(Pipeline):
        summary = None  # type: ignore[assignment]

    with weave(NoSummary) as w:
        pass

    assert list(w.result.keys()) == ["numbers", "doubled"]


def test_weave_do_rejects_mapped_only_options_on_a_plain_method() -> None:
    with pytest.raises(InvalidOptionError, match="workers only apply to mapped tasks"):

        class Wrong(Weave):
            @Weave.do(workers=2)
            def plain(self) -> int:
                return 1


def test_class_task_named_like_data_is_rejected() -> None:
    with pytest.raises(InvalidOptionError, match="'numbers' is both injected data and a task"):
        weave(Pipeline, numbers=[1])


def test_weave_block_is_public() -> None:
    assert isinstance(weave(), WeaveBlock)
