"""``WoveResult``: what a weave produced, by task name, in declaration order."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from ._errors import TaskCancelledError

__all__ = ["RESERVED_NAMES", "WoveResult"]


class WoveResult:
    """The results of a weave, by task name, in declaration order.

    ``w.result.name`` and ``w.result["name"]`` read one task, and ``w.result.final`` the last
    task declared. Iterating yields the *values* in declaration order, as in wove 2.x, so
    ``a, b = w.result`` unpacks them; ``keys()``, ``values()``, ``items()``, ``get()``,
    ``to_dict()``, ``len()`` and ``in`` (which tests task names) work as for a ``dict``.

    The tasks counted are those that produced a value; with ``error_mode="return"`` also failed
    tasks, whose value is their exception. With ``error_mode="raise"`` reading a failed task
    re-raises its exception, and a task cancelled before it finished raises
    :class:`TaskCancelledError` (a ``KeyError``).

    A task may be named like a method (``items``, ``keys``, ``get``...): ``w.result["items"]``
    reads it, while ``w.result.items`` stays the method.

    Attributes:
        exception: the first task failure in time, or ``None``.
        cancelled: names of tasks that were cancelled or never started because the weave stopped.
        timings: seconds each finished or failed task took, by name.
    """

    __slots__ = (
        "_declared",
        "_error_mode",
        "_errors",
        "_results",
        "cancelled",
        "exception",
        "timings",
    )

    def __init__(self, error_mode: str = "raise") -> None:
        self._error_mode = error_mode
        self._declared: dict[str, None] = {}
        self._results: dict[str, Any] = {}
        self._errors: dict[str, BaseException] = {}
        self.exception: BaseException | None = None
        self.cancelled: set[str] = set()
        self.timings: dict[str, float] = {}

    # -- reading one task ---------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        try:
            return self._results[name]
        except KeyError:
            pass
        error = self._errors.get(name)
        if error is not None:
            if self._error_mode == "return":
                return error
            raise error
        if name in self.cancelled:
            raise TaskCancelledError(name)
        if name in self._declared:
            raise KeyError(f"task {name!r} has no result yet: the weave has not finished")
        raise KeyError(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name not in self._declared:
            known = ", ".join(repr(task) for task in self._declared) or "(none)"
            raise AttributeError(f"weave has no result named {name!r}; tasks: {known}")
        return self[name]

    def get(self, name: str, default: Any = None) -> Any:
        """The result of ``name`` if it is readable, else ``default`` (never raises)."""
        if name in self:
            return self[name]
        return default

    @property
    def final(self) -> Any:
        """The result of the last task declared (also for class-based weaves).

        ``None`` for a weave that declared no tasks, as in wove 2.x.
        """
        if not self._declared:
            return None
        return self[next(reversed(self._declared))]

    # -- the whole result ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        """The values, in declaration order: ``a, b = w.result``."""
        return (self[name] for name in self.keys())

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    def __contains__(self, name: object) -> bool:
        if name in self._results:
            return True
        return self._error_mode == "return" and name in self._errors

    def keys(self) -> list[str]:
        """The names of the readable tasks, in declaration order."""
        return [name for name in self._declared if name in self]

    def values(self) -> list[Any]:
        """The readable results, in declaration order."""
        return [self[name] for name in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        """``(name, result)`` pairs of the readable tasks, in declaration order."""
        return [(name, self[name]) for name in self.keys()]

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` of every readable result."""
        return dict(self.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WoveResult):
            return self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a dict, so unhashable like one

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.items())
        return f"WoveResult({shown})"

    # -- used by the scheduler ----------------------------------------------------------------
    def _declare(self, name: str) -> None:
        self._declared.setdefault(name)

    def _set_result(self, name: str, value: Any, seconds: float) -> None:
        self._results[name] = value
        self.timings[name] = seconds

    def _set_error(self, name: str, error: BaseException, seconds: float | None) -> None:
        self._errors[name] = error
        if seconds is not None:
            self.timings[name] = seconds
        if self.exception is None:
            self.exception = error


#: Task names that would hide a result attribute with its own meaning; wove 2.x refused them too.
RESERVED_NAMES: Final = frozenset({"final", "cancelled"})
