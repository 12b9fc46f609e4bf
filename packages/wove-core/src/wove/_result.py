"""``WoveResult``: what a weave produced, readable as a mapping of task name to result."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._errors import TaskCancelledError

__all__ = ["WoveResult"]


class WoveResult(Mapping[str, Any]):
    """The results of a weave, by task name, in declaration order.

    ``w.result.name`` and ``w.result["name"]`` read one task. The mapping holds every task that
    produced a value; with ``error_mode="return"`` it also holds failed tasks, whose value is
    their exception. With ``error_mode="raise"`` reading a failed task re-raises its exception,
    and a task cancelled before it finished raises :class:`TaskCancelledError` (a ``KeyError``).

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

    # -- mapping protocol -------------------------------------------------------------------
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

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._declared if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        if name in self._results:
            return True
        return self._error_mode == "return" and name in self._errors

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name not in self._declared:
            known = ", ".join(repr(task) for task in self._declared) or "(none)"
            raise AttributeError(f"weave has no result named {name!r}; tasks: {known}")
        return self[name]

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={self._results.get(name, self._errors.get(name))!r}" for name in self
        )
        return f"WoveResult({shown})"

    # -- conveniences -----------------------------------------------------------------------
    @property
    def final(self) -> Any:
        """The result of the last task declared (also for class-based weaves)."""
        if not self._declared:
            raise LookupError("the weave declared no tasks, so it has no final result")
        return self[next(reversed(self._declared))]

    def get(self, name: str, default: Any = None) -> Any:
        """The result of ``name`` if it is in the mapping, else ``default`` (never raises)."""
        if name in self:
            return self[name]
        return default

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` of every readable result."""
        return dict(self.items())

    # -- used by the scheduler --------------------------------------------------------------
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


RESERVED_NAMES: frozenset[str] = frozenset(
    name for name in dir(WoveResult) if not name.startswith("_")
)
