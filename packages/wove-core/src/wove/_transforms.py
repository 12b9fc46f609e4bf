"""Small list helpers for shaping data between tasks: ``flatten``, ``fold``, ``batch``,
``undict``, ``redict`` and ``denone``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["batch", "denone", "flatten", "fold", "redict", "undict"]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


def flatten(list_of_lists: Iterable[Iterable[T]]) -> list[T]:
    """Join one level of nesting: ``[[1, 2], [3]]`` -> ``[1, 2, 3]``."""
    return [item for sublist in list_of_lists for item in sublist]


def fold(items: Sequence[T], size: int) -> list[list[T]]:
    """Cut ``items`` into consecutive chunks of ``size`` (the last may be shorter).

    Raises:
        ValueError: ``size`` is not a positive integer.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"fold size must be a positive integer, got {size!r}")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def batch(items: Sequence[T], count: int) -> list[list[T]]:
    """Cut ``items`` into at most ``count`` chunks of ``ceil(len(items) / count)`` items each
    (the last may be shorter), keeping order: 7 items in 3 batches are 3, 3 and 1.

    Raises:
        ValueError: ``count`` is not a positive integer.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"batch count must be a positive integer, got {count!r}")
    if not items:
        return []
    size = -(-len(items) // count)
    return fold(items, size)


def undict(mapping: Mapping[K, V]) -> list[tuple[K, V]]:
    """Turn a mapping into ``(key, value)`` tuples, so a task can map over it.

    The pairs are tuples, as in wove 2.x: hashable, and unpacked with ``key, value = item``.
    """
    return list(mapping.items())


def redict(pairs: Iterable[Sequence[Any]]) -> dict[Any, Any]:
    """Turn ``(key, value)`` pairs (tuples or lists) back into a dict; the inverse of
    :func:`undict`."""
    return {pair[0]: pair[1] for pair in pairs}


def denone(items: Iterable[T | None]) -> list[T]:
    """Drop every ``None`` from ``items``, keeping order."""
    return [item for item in items if item is not None]
