"""List helpers for shaping data between tasks: ``wove._transforms``."""

from __future__ import annotations

from typing import Any

import pytest

from wove import batch, denone, flatten, fold, redict, undict, weave


def test_flatten_joins_one_level() -> None:
    assert flatten([[1, 2], [], [3], (4, 5)]) == [1, 2, 3, 4, 5]
    assert flatten([[[1]], [[2]]]) == [[1], [2]]
    assert flatten([]) == []


def test_fold_cuts_consecutive_chunks_of_a_size() -> None:
    assert fold([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert fold("abcd", 4) == [["a", "b", "c", "d"]]
    assert fold([], 3) == []


def test_batch_cuts_at_most_count_nearly_equal_chunks() -> None:
    assert batch(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert batch([1, 2], 5) == [[1], [2]]
    assert batch([], 2) == []
    assert flatten(batch(list(range(10)), 4)) == list(range(10))


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "2"])
def test_fold_rejects_bad_sizes(size: Any) -> None:
    with pytest.raises(ValueError, match="fold size must be a positive integer"):
        fold([1, 2], size)


@pytest.mark.parametrize("count", [0, -3, 2.0, False, None])
def test_batch_rejects_bad_counts(count: Any) -> None:
    with pytest.raises(ValueError, match="batch count must be a positive integer"):
        batch([1, 2], count)


def test_undict_and_redict_round_trip() -> None:
    mapping = {"a": 1, "b": 2}

    assert undict(mapping) == [("a", 1), ("b", 2)]
    assert redict(undict(mapping)) == mapping
    assert redict([("x", 1), ["y", 2]]) == {"x": 1, "y": 2}


def test_denone_drops_only_none() -> None:
    assert denone([0, None, "", False, None, 3]) == [0, "", False, 3]


def test_helpers_shape_data_between_mapped_tasks() -> None:
    with weave(prices={"tea": 2, "cake": None, "jam": 3}) as w:

        @w.do
        def pairs(prices: dict[str, int | None]) -> list[tuple[str, int | None]]:
            return undict(prices)

        @w.do("pairs")
        def doubled(pair: tuple[str, int | None]) -> list[Any] | None:
            name, price = pair
            return None if price is None else [name, price * 2]

        @w.do
        def priced(doubled: list[list[Any] | None]) -> dict[str, int]:
            return redict(denone(doubled))

    assert w.result.priced == {"tea": 4, "jam": 6}
