"""Every public exception Wove raises.

The hierarchy::

    WoveError
     ├── UnresolvedSignatureError  (NameError)    a parameter names no task and no injected data
     ├── UnknownEnvironmentError   (NameError)    an environment name that is not configured
     ├── ReservedNameError         (NameError)    a task or data name that Wove keeps for itself
     ├── DependencyCycleError      (RuntimeError) tasks that depend on each other in a loop
     ├── InvalidOptionError        (ValueError)   an option with a value it cannot take
     ├── UnknownOptionError        (TypeError)    an option name Wove does not know ("did you mean")
     ├── TaskSignatureError        (TypeError)    a task signature Wove cannot fill by name
     ├── WeaveUsageError           (RuntimeError) the API used in a way it cannot work
     ├── UpstreamTaskError         (RuntimeError) a task skipped because a dependency failed
     ├── TaskCancelledError        (KeyError)     reading a task cancelled before it finished
     ├── EnvironmentExecutionError (RuntimeError) a task failed in another process or service
     ├── DeliveryTimeoutError      (TimeoutError+) no terminal event within ``delivery_timeout``
     ├── DeliveryOrphanedError     (RuntimeError) the worker running a task went away
     ├── FrameRejectedError        (PermissionError) a frame whose signature, age or nonce fails
     ├── RunNotClaimedError        (RuntimeError) a backend payload whose run started elsewhere
     ├── MissingExecutorPluginError(LookupError, ValueError) an executor name no plugin provides
     ├── MissingDispatchFeatureError(ImportError+) cloudpickle is needed and not installed
     ├── MissingCallbackFeatureError(ImportError) aiohttp (the callback server) is not installed
     └── PluginError               (RuntimeError) a plugin that cannot load or breaks the rules
          └── DuplicatePluginError                two distributions register the same executor name

``+``: also a ``RuntimeError``. Where wove 2.x raised another built-in for the same problem, the
class derives from that one too (``DependencyCycleError`` is a ``RuntimeError`` for the same
reason), so ``except`` clauses written for 2.x still catch them.

Every class here shows its public path, ``wove.<Name>``, in tracebacks and reprs from the moment
it is defined, and pickles by that path. :class:`WoveError` pickles without calling
``__init__`` again, so errors whose constructor takes more than a message (and plugin subclasses
of them) survive ``pickle`` and ``cloudpickle`` round trips, such as from a worker to the weave.

Messages say what happened, show the bad value with ``!r``, list what exists and say what to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

__all__ = [
    "DeliveryOrphanedError",
    "DeliveryTimeoutError",
    "DependencyCycleError",
    "DuplicatePluginError",
    "EnvironmentExecutionError",
    "FrameRejectedError",
    "InvalidOptionError",
    "MissingCallbackFeatureError",
    "MissingDispatchFeatureError",
    "MissingExecutorPluginError",
    "PluginError",
    "ReservedNameError",
    "RunNotClaimedError",
    "TaskCancelledError",
    "TaskSignatureError",
    "UnknownEnvironmentError",
    "UnknownOptionError",
    "UnresolvedSignatureError",
    "UpstreamTaskError",
    "WeaveUsageError",
    "WoveError",
    "install_line",
]


#: The module every public exception names as its home: ``wove.DeliveryTimeoutError``.
_PUBLIC_MODULE: Final = "wove"


def install_line(executor_name: str) -> str:
    """Return the pip command that installs the distribution for ``executor_name``."""
    return f"pip install wove-{executor_name.replace('_', '-')}"


def _quoted(names: Iterable[str]) -> str:
    listed = ", ".join(repr(name) for name in names)
    return listed or "(none)"


def _rebuild(kind: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Recreate a pickled :class:`WoveError` without running its ``__init__`` again."""
    error = kind.__new__(kind, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class WoveError(Exception):
    """Base class of every error Wove raises itself."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduction calls ``type(self)(*self.args)``, which fails for errors whose
        # constructor takes other arguments than the message (``UnresolvedSignatureError``).
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class UnresolvedSignatureError(WoveError, NameError):
    """A task parameter that names neither a task nor injected data."""

    def __init__(self, task: str, parameter: str, available: Iterable[str]) -> None:
        self.task = task
        self.parameter = parameter
        self.available = tuple(available)
        super().__init__(
            f"task {task!r} asks for {parameter!r}, which is neither a task nor injected data; "
            f"available: {_quoted(self.available)}. Declare a task named {parameter!r}, pass it "
            f"as data with weave({parameter}=...), or give the parameter a default."
        )


class UnknownEnvironmentError(WoveError, NameError):
    """An environment name that is not configured."""

    def __init__(self, name: str, configured: Iterable[str]) -> None:
        self.environment = name
        self.configured = tuple(configured)
        super().__init__(
            f"unknown environment {name!r}; configured: {_quoted(self.configured)}. "
            "Add it with wove.config(environments={...})."
        )


class ReservedNameError(WoveError, NameError):
    """A task or an injected value named after something Wove keeps for itself.

    A task may not be called ``final`` or ``cancelled`` (``w.result.final`` and
    ``w.result.cancelled`` mean something else), and injected data may not be called ``data``
    (a task parameter named ``data`` receives all injected values as a dict), ``final`` or
    ``cancelled``.
    """

    def __init__(self, name: str, kind: str, reason: str) -> None:
        self.name = name
        super().__init__(f"{kind} name {name!r} is reserved: {reason}. Rename it.")


class DependencyCycleError(WoveError, RuntimeError):
    """Tasks whose dependencies form a loop."""

    def __init__(self, cycle: Iterable[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__(
            f"tasks depend on each other in a cycle: {' -> '.join(self.cycle)}. "
            "Break the cycle by removing one of these parameters."
        )


class InvalidOptionError(WoveError, ValueError):
    """An option given a value it cannot take."""


class UnknownOptionError(WoveError, TypeError):
    """An option name Wove does not know."""


class TaskSignatureError(WoveError, TypeError):
    """A task whose parameters Wove cannot fill by name.

    A mapped task needs exactly one parameter that is neither a task nor data (it receives each
    item), and no parameter Wove fills may be positional-only.
    """


class WeaveUsageError(WoveError, RuntimeError):
    """The API used in a way that cannot work, such as ``merge`` outside a task."""


class UpstreamTaskError(WoveError, RuntimeError):
    """Recorded for a task that did not run because a task it depends on failed.

    Only seen with ``error_mode="return"``; the original failure is ``__cause__`` and ``upstream``.
    """

    def __init__(self, task: str, failed_dependency: str, upstream: BaseException) -> None:
        self.task = task
        self.failed_dependency = failed_dependency
        self.upstream = upstream
        super().__init__(
            f"task {task!r} did not run because its dependency {failed_dependency!r} did not "
            f"complete; the failure upstream was {type(upstream).__name__}: {upstream}"
        )
        self.__cause__ = upstream


class TaskCancelledError(WoveError, KeyError):
    """Reading the result of a task that was cancelled or never started."""

    def __init__(self, task: str) -> None:
        self.task = task
        super().__init__(task)

    def __str__(self) -> str:
        return (
            f"task {self.task!r} has no result: it was cancelled before it finished because "
            "another task failed (see w.result.exception and w.result.cancelled)"
        )


class EnvironmentExecutionError(WoveError, RuntimeError):
    """A task failed in another process or service and its exception could not be rebuilt here.

    Attributes:
        kind: the remote exception's qualified type name.
        remote_traceback: the traceback as formatted on the worker.
        retryable: ``False`` when the worker marked the failure as not worth retrying.
        source: where the error arose (``"task"``, ``"worker"``, ``"transport"``...).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "",
        remote_traceback: str = "",
        retryable: bool = True,
        source: str = "task",
    ) -> None:
        self.kind = kind
        self.remote_traceback = remote_traceback
        self.retryable = retryable
        self.source = source
        super().__init__(message)

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            return f"{text}\n\nRemote traceback:\n{self.remote_traceback.rstrip()}"
        return text

    @property
    def payload(self) -> dict[str, object]:
        """The normalized error as wove 2.x exposed it, for code written against 2.x."""
        return {
            "kind": self.kind,
            "message": str(self.args[0]) if self.args else "",
            "traceback": self.remote_traceback,
            "retryable": self.retryable,
            "source": self.source,
        }


class FrameRejectedError(WoveError, PermissionError):
    """A frame or payload that failed verification: no or wrong signature, too old, replayed.

    Nothing in a rejected frame is ever decoded further or executed.
    """


class RunNotClaimedError(WoveError, RuntimeError):
    """A backend worker did not run a payload: its run was already started by another worker
    (a redelivered or replayed copy), or the weave no longer waits for it.

    Raised by :func:`wove.integrations.worker.run` before anything is unpickled; the task
    system records the job as failed with this message, and the weave is unaffected.
    """


class DeliveryTimeoutError(WoveError, TimeoutError, RuntimeError):
    """No terminal event arrived within the task's ``delivery_timeout``."""


class DeliveryOrphanedError(WoveError, RuntimeError):
    """The worker running a task disappeared (missed heartbeats, closed pipe, dead job)."""


class MissingExecutorPluginError(WoveError, LookupError, ValueError):
    """An environment names an executor that no installed plugin provides.

    Also a ``ValueError``: wove 2.x raised one for an unknown executor name, and ``except``
    clauses written for it keep working.
    """

    def __init__(self, executor_name: str, environment: str, installed: Iterable[str]) -> None:
        self.executor_name = executor_name
        self.environment = environment
        self.installed = tuple(installed)
        super().__init__(
            f"environment {environment!r} uses executor {executor_name!r}, but no installed "
            f"plugin provides it (installed: {_quoted(self.installed)}). "
            f"Install it with: {install_line(executor_name)}"
        )


class MissingDispatchFeatureError(WoveError, ImportError, RuntimeError):
    """A remote environment needs the ``dispatch`` serializer (cloudpickle), which is missing."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"{reason} needs the dispatch serializer, which is not installed. "
            'Install it with: pip install "wove-core[dispatch]"'
        )


class MissingCallbackFeatureError(WoveError, ImportError):
    """The callback server needs aiohttp (the ``callback`` extra of wove-core), which is missing."""

    def __init__(self) -> None:
        super().__init__(
            "the callback server needs aiohttp, which is not installed. "
            'Install it with: pip install "wove-core[callback]"'
        )


class PluginError(WoveError, RuntimeError):
    """A plugin that cannot be loaded or that breaks the plugin rules."""


class DuplicatePluginError(PluginError):
    """Two distributions register the same executor name."""

    def __init__(self, name: str, first: str, second: str) -> None:
        self.name = name
        self.distributions = (first, second)
        super().__init__(
            f"executor {name!r} is registered by two distributions, {first!r} and {second!r}. "
            "Uninstall one of them."
        )


def _show_public_module() -> None:
    """Name ``wove`` as the home of every class here, so tracebacks, reprs and pickles use the
    public path (``wove.DeliveryTimeoutError``) instead of this private module's."""
    for name in __all__:
        value = globals()[name]
        if isinstance(value, type):
            value.__module__ = _PUBLIC_MODULE


_show_public_module()
