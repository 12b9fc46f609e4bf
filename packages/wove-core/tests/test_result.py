"""``WoveResult`` (§2.7): results by task name, in declaration order; iteration yields values."""

from __future__ import annotations

import threading

import pytest

from wove import TaskCancelledError, WoveResult, weave

WAIT = 10.0


def finished_in_reverse() -> WoveResult:
    """A weave whose tasks are declared c, b, a but finish a, b, c."""
    with weave(user_id=7) as w:

        @w.do
        def c(b: int) -> int:
            return b + 1

        @w.do
        def b(a: int) -> int:
            return a + 1

        @w.do
        def a(user_id: int) -> int:
            return user_id

    return w.result


def test_result_reads_tasks_by_name() -> None:
    result = finished_in_reverse()

    assert result["a"] == 7
    assert result.a == 7
    assert result.get("b") == 8
    assert result.get("missing", "fallback") == "fallback"


def test_iteration_follows_declaration_order_not_completion_order() -> None:
    result = finished_in_reverse()

    assert list(result) == [9, 8, 7]
    assert list(result.keys()) == ["c", "b", "a"]
    assert list(result.values()) == [9, 8, 7]
    assert list(result.items()) == [("c", 9), ("b", 8), ("a", 7)]


def test_final_is_the_last_task_declared_not_the_last_to_finish() -> None:
    assert finished_in_reverse().final == 7


def test_len_and_in_count_task_names_only() -> None:
    result = finished_in_reverse()

    assert len(result) == 3
    assert "a" in result
    assert 7 not in result
    assert "user_id" not in result


def test_to_dict_is_a_plain_dict_in_declaration_order() -> None:
    as_dict = finished_in_reverse().to_dict()

    assert type(as_dict) is dict
    assert list(as_dict.items()) == [("c", 9), ("b", 8), ("a", 7)]


def test_result_equals_a_dict_with_the_same_items() -> None:
    assert finished_in_reverse() == {"a": 7, "b": 8, "c": 9}


def test_timings_give_non_negative_seconds_per_finished_task() -> None:
    result = finished_in_reverse()

    assert set(result.timings) == {"a", "b", "c"}
    assert all(isinstance(seconds, float) and seconds >= 0 for seconds in result.timings.values())


def test_successful_weave_has_no_exception_and_nothing_cancelled() -> None:
    result = finished_in_reverse()

    assert result.exception is None
    assert result.cancelled == set()


def test_unknown_name_is_an_attribute_error_listing_tasks_and_a_key_error_by_item() -> None:
    result = finished_in_reverse()

    with pytest.raises(AttributeError, match=r"no result named 'd'; tasks: 'c', 'b', 'a'"):
        result.d  # noqa: B018
    with pytest.raises(KeyError, match="'d'"):
        result["d"]
    assert not hasattr(result, "d")


def test_final_of_a_weave_without_tasks_is_none() -> None:
    with weave() as w:
        pass

    assert w.result.final is None


def test_repr_shows_results() -> None:
    with weave() as w:

        @w.do
        def a() -> str:
            return "x"

    assert repr(w.result) == "WoveResult(a='x')"


def test_failed_task_is_readable_as_its_exception_in_return_mode() -> None:
    with weave(error_mode="return") as w:

        @w.do
        def ok() -> int:
            return 1

        @w.do
        def bad() -> int:
            raise ValueError("bad")

    assert isinstance(w.result.bad, ValueError)
    assert isinstance(w.result["bad"], ValueError)
    assert "bad" in w.result
    assert len(w.result) == 2
    assert w.result.final is w.result.exception
    assert list(w.result.to_dict()) == ["ok", "bad"]


def test_failed_task_is_not_in_the_mapping_in_raise_mode() -> None:
    with pytest.raises(ValueError, match="bad"), weave() as w:  # noqa: PT012

        @w.do
        def ok() -> int:
            return 1

        @w.do
        def bad(ok: int) -> int:
            raise ValueError("bad")

    assert "bad" not in w.result
    assert w.result.to_dict() == {"ok": 1}
    assert len(w.result) == 1
    with pytest.raises(ValueError, match="bad"):
        w.result["bad"]
    with pytest.raises(ValueError, match="bad"):
        w.result.final  # noqa: B018


def test_task_that_failed_with_a_key_error_reraises_it_when_read_by_attribute() -> None:
    # A task's own KeyError must not be mistaken for "no such task".
    with pytest.raises(KeyError, match="missing key"), weave() as w:

        @w.do
        def lookup() -> int:
            return {}["missing key"]  # type: ignore[no-any-return]

    with pytest.raises(KeyError, match="missing key"):
        w.result["lookup"]
    with pytest.raises(KeyError, match="missing key"):
        w.result.lookup  # noqa: B018


def test_cancelled_task_raises_task_cancelled_error_by_attribute_and_item() -> None:
    release = threading.Event()
    try:
        with pytest.raises(RuntimeError, match="stop"), weave() as w:  # noqa: PT012

            @w.do
            def slow() -> None:
                release.wait(WAIT)

            @w.do
            def stop() -> None:
                raise RuntimeError("stop")

    finally:
        release.set()

    assert w.result.cancelled == {"slow"}
    with pytest.raises(TaskCancelledError, match="'slow' has no result"):
        w.result.slow  # noqa: B018
    with pytest.raises(TaskCancelledError, match="cancelled before it finished") as caught:
        w.result["slow"]
    assert isinstance(caught.value, KeyError)
    assert caught.value.task == "slow"


def test_result_is_created_empty_and_read_only_from_outside() -> None:
    result = WoveResult()

    assert len(result) == 0
    assert list(result) == []
    assert result.keys() == []
    with pytest.raises(TypeError, match="does not support item assignment"):
        result["a"] = 1  # type: ignore[index]
