"""The plan built from signatures (DESIGN §2.1, and the tiers of §2.2): ``wove._graph``."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import pytest

from wove import (
    DependencyCycleError,
    TaskSignatureError,
    UnresolvedSignatureError,
    weave,
)
from wove._graph import NOT_MAPPED, ExecutionPlan, TaskSpec, build_plan, parameters_of


def spec(func: Callable[..., Any], map_source: Any = NOT_MAPPED) -> TaskSpec:
    return TaskSpec(name=func.__name__, func=func, is_async=False, map_source=map_source)


def plan_of(*funcs: Callable[..., Any], **data: Any) -> ExecutionPlan:
    return build_plan({func.__name__: spec(func) for func in funcs}, data)


# -- dependencies from parameter names ------------------------------------------------------------


def test_parameter_named_after_a_task_is_a_dependency() -> None:
    def a() -> int:
        return 1

    def b(a: int) -> int:
        return a

    plan = plan_of(a, b)

    assert plan.dependencies == {"a": (), "b": ("a",)}
    assert plan.dependents == {"a": ("b",), "b": ()}
    assert plan.task_parameters["b"] == ("a",)


def test_parameter_named_after_data_is_not_a_dependency() -> None:
    def a(user_id: int) -> int:
        return user_id

    plan = plan_of(a, user_id=7)

    assert plan.dependencies == {"a": ()}
    assert plan.data_parameters == {"a": ("user_id",)}
    assert plan.order == ("a",)


def test_parameter_with_default_that_matches_nothing_is_ignored() -> None:
    def a(limit: int = 5) -> int:
        return limit

    plan = plan_of(a)

    assert plan.dependencies == {"a": ()}
    assert plan.task_parameters == {"a": ()}
    assert plan.data_parameters == {"a": ()}


def test_unresolved_parameter_raises_name_error_listing_what_is_available() -> None:
    def a() -> int:
        return 1

    def b(a: int, missing: int) -> int:
        return a + missing

    with pytest.raises(UnresolvedSignatureError, match=r"available: 'a', 'user_id'") as caught:
        plan_of(a, b, user_id=7)

    assert isinstance(caught.value, NameError)
    assert caught.value.task == "b"
    assert caught.value.parameter == "missing"
    assert caught.value.available == ("a", "user_id", "data")
    assert "task 'b' asks for 'missing'" in str(caught.value)


def test_unresolved_parameter_raises_when_the_block_ends() -> None:
    ran: list[str] = []
    with pytest.raises(UnresolvedSignatureError, match="'missing'"), weave(user_id=7) as w:  # noqa: PT012

        @w.do
        def a(user_id: int) -> int:
            ran.append("a")
            return user_id

        @w.do
        def b(missing: int) -> int:
            return missing

        ran.append("end of block")

    assert ran == ["end of block"]


def test_variadic_parameters_are_not_dependencies() -> None:
    def a(*args: Any, **kwargs: Any) -> int:
        return 1

    assert parameters_of(a) == ()
    assert plan_of(a).dependencies == {"a": ()}


def test_keyword_only_parameters_are_wired_by_name() -> None:
    def a() -> int:
        return 2

    def b(*, a: int, scale: int = 10) -> int:
        return a * scale

    plan = plan_of(a, b)

    assert plan.dependencies["b"] == ("a",)


def test_bound_method_skips_self() -> None:
    class Holder:
        def task(self, a: int) -> int:
            return a

    params = parameters_of(Holder().task)

    assert [p.name for p in params] == ["a"]


def test_callable_without_code_object_is_read_by_signature() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    partial = functools.partial(add, b=2)

    assert [(p.name, p.has_default) for p in parameters_of(partial)] == [("a", False), ("b", True)]


def test_positional_only_dependency_is_rejected() -> None:
    def a() -> int:
        return 1

    def b(a: int, /) -> int:
        return a

    with pytest.raises(TaskSignatureError, match=r"positional-only.*Remove the '/'"):
        plan_of(a, b)


# -- cycles ---------------------------------------------------------------------------------------


def test_two_task_cycle_is_named() -> None:
    def a(b: int) -> int:
        return b

    def b(a: int) -> int:
        return a

    with pytest.raises(DependencyCycleError, match="a -> b -> a") as caught:
        plan_of(a, b)

    assert isinstance(caught.value, RuntimeError)
    assert caught.value.cycle == ("a", "b", "a")


def test_three_task_cycle_is_named_without_tasks_downstream_of_it() -> None:
    def downstream(a: int) -> int:
        return a

    def a(c: int) -> int:
        return c

    def b(a: int) -> int:
        return a

    def c(b: int) -> int:
        return b

    with pytest.raises(DependencyCycleError, match=r"cycle: a -> c -> b -> a\."):
        plan_of(downstream, a, b, c)


def test_task_depending_on_itself_is_a_cycle() -> None:
    def a(a: int) -> int:
        return a

    with pytest.raises(DependencyCycleError, match="a -> a"):
        plan_of(a)


def test_task_mapping_over_itself_is_a_cycle() -> None:
    def a(item: int) -> int:
        return item

    with pytest.raises(DependencyCycleError, match="a -> a"):
        build_plan({"a": spec(a, map_source="a")}, {})


def test_cycle_raises_from_the_block() -> None:
    with pytest.raises(DependencyCycleError, match="first -> second -> first"), weave() as w:  # noqa: PT012

        @w.do
        def first(second: int) -> int:
            return second

        @w.do
        def second(first: int) -> int:
            return first


# -- mapped tasks ---------------------------------------------------------------------------------


def test_mapped_task_item_parameter_is_the_one_left_over() -> None:
    def source() -> list[int]:
        return [1, 2]

    def mapped(item: int, source: list[int], factor: int) -> int:
        return item * factor

    plan = build_plan(
        {"source": spec(source), "mapped": spec(mapped, map_source="source")}, {"factor": 3}
    )

    assert plan.item_parameters == {"mapped": "item"}
    assert plan.dependencies["mapped"] == ("source",)
    assert plan.data_parameters["mapped"] == ("factor",)


def test_mapping_over_a_task_makes_it_a_dependency_even_without_a_parameter() -> None:
    def source() -> list[int]:
        return [1, 2]

    def mapped(item: int) -> int:
        return item

    plan = build_plan({"source": spec(source), "mapped": spec(mapped, map_source="source")}, {})

    assert plan.dependencies["mapped"] == ("source",)
    assert plan.tiers == (("source",), ("mapped",))


def test_mapping_over_data_is_not_a_dependency() -> None:
    def mapped(item: int) -> int:
        return item

    plan = build_plan({"mapped": spec(mapped, map_source="ids")}, {"ids": [1, 2]})

    assert plan.dependencies["mapped"] == ()


def test_mapping_over_an_unknown_name_is_unresolved() -> None:
    def mapped(item: int) -> int:
        return item

    with pytest.raises(UnresolvedSignatureError, match="asks for 'nowhere'"):
        build_plan({"mapped": spec(mapped, map_source="nowhere")}, {"ids": [1]})


@pytest.mark.parametrize(
    ("signature", "count"),
    [
        pytest.param(lambda: None, "0 (none)", id="no item parameter"),
        pytest.param(lambda item, other: None, "2 ('item', 'other')", id="two item parameters"),
    ],
)
def test_mapped_task_needs_exactly_one_item_parameter(
    signature: Callable[..., Any], count: str
) -> None:
    with pytest.raises(
        TaskSignatureError, match=f"exactly one parameter.*it has {re.escape(count)}"
    ):
        build_plan({"mapped": TaskSpec("mapped", signature, False, [1, 2])}, {})


def test_mapped_task_with_two_item_parameters_raises_from_the_block() -> None:
    with pytest.raises(TaskSignatureError, match="exactly one parameter"), weave() as w:

        @w.do([1, 2])
        def mapped(item: int, other: int) -> int:
            return item + other


# -- tiers ----------------------------------------------------------------------------------------


def test_tiers_group_tasks_by_longest_dependency_chain() -> None:
    def a() -> int:
        return 1

    def b(a: int) -> int:
        return a

    def c(a: int, b: int) -> int:
        return a + b

    def d() -> int:
        return 4

    plan = plan_of(a, b, c, d)

    assert plan.tiers == (("a", "d"), ("b",), ("c",))


def test_plan_to_dict_is_plain_data() -> None:
    def a() -> int:
        return 1

    def b(a: int) -> int:
        return a

    assert plan_of(a, b).to_dict() == {
        "order": ["a", "b"],
        "dependencies": {"a": [], "b": ["a"]},
        "dependents": {"a": ["b"], "b": []},
        "tiers": [["a"], ["b"]],
    }


def test_empty_plan_has_no_tiers() -> None:
    plan = build_plan({}, {"x": 1})

    assert plan.order == ()
    assert plan.tiers == ()


def test_execution_plan_is_published_after_the_block() -> None:
    with weave() as w:

        @w.do
        def a() -> int:
            return 1

        @w.do
        def b(a: int) -> int:
            return a + 1

        assert w.execution_plan is None

    assert w.execution_plan is not None
    assert w.execution_plan.tiers == (("a",), ("b",))
