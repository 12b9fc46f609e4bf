"""The hooks a Wove plugin implements, the markers it implements them with, and everything
else an executor plugin needs: the executor base classes, the wire frames and the codec and
signing that protect them.

A plugin is a module named by an entry point in the ``wove.executors`` group, under its executor
name. Importing it must be cheap: it holds ``@hookimpl`` functions and metadata, and imports its
backend library only inside the ``load`` callable it registers. Each hook receives a ``register``
callback rather than returning a list, so Wove owns duplicate checks and ordering.

Example:
    ``wove_celery/plugin.py``::

        from wove import Executor
        from wove.plugins import RegisterExecutor, hookimpl

        def _load_adapter() -> type[Executor]:
            from ._adapter import CeleryAdapter
            return CeleryAdapter

        @hookimpl
        def register_executors(register: RegisterExecutor) -> None:
            register(name="celery", kind="backend", requires=("celery",), load=_load_adapter)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

import pluggy

from ._config import EnvironmentConfig
from ._errors import FrameRejectedError
from ._executor import EXECUTOR_KINDS, Executor, ExecutorKind, InProcessExecutor
from ._frames import (
    CancelTask,
    Delivery,
    Frame,
    Heartbeat,
    LogRecord,
    NormalizedError,
    RunTask,
    Shutdown,
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskStarted,
    decode_json,
    decode_msgpack,
    encode_json,
    encode_msgpack,
)
from ._security import LineCodec, Security, is_loopback_host, security_from_config

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    # hooks
    "PROJECT_NAME",
    "hookspec",
    "hookimpl",
    "RegisterExecutor",
    "RegisterCommand",
    "RegisterDiagnostic",
    "WoveHookSpecs",
    # what an executor implements and is configured with
    "EXECUTOR_KINDS",
    "EnvironmentConfig",
    "Executor",
    "ExecutorKind",
    "InProcessExecutor",
    # the wire
    "CancelTask",
    "Delivery",
    "Frame",
    "Heartbeat",
    "LogRecord",
    "NormalizedError",
    "RunTask",
    "Shutdown",
    "TaskCancelled",
    "TaskError",
    "TaskResult",
    "TaskStarted",
    "decode_json",
    "decode_msgpack",
    "encode_json",
    "encode_msgpack",
    # security
    "FrameRejectedError",
    "LineCodec",
    "Security",
    "is_loopback_host",
    "security_from_config",
]

#: The pluggy project name; Wove's hooks never mix with another project's.
PROJECT_NAME: Final = "wove"

hookspec: Final = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl: Final = pluggy.HookimplMarker(PROJECT_NAME)


class RegisterExecutor(Protocol):
    """Offer one executor: its name, kind, required modules and a callable returning its class."""

    def __call__(
        self,
        *,
        name: str,
        kind: ExecutorKind,
        load: Callable[[], type[Executor]],
        requires: Sequence[str] = (),
        description: str = "",
    ) -> None: ...


class RegisterCommand(Protocol):
    """Offer a ``wove worker <name>`` command: ``configure`` adds its arguments, ``run`` runs it."""

    def __call__(
        self,
        *,
        name: str,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int],
    ) -> None: ...


class RegisterDiagnostic(Protocol):
    """Offer a ``wove doctor`` check returning problems (empty when fine) for an environment.

    With ``executor`` set, the check runs only for environments using that executor.
    """

    def __call__(
        self,
        *,
        name: str,
        check: Callable[[EnvironmentConfig], Iterable[str]],
        executor: str | None = None,
    ) -> None: ...


class WoveHookSpecs:
    """The hooks Wove calls; each is called once per plugin when plugins are first discovered."""

    @hookspec
    def register_executors(self, register: RegisterExecutor) -> None:
        """Called at discovery; register the executor named like the plugin's entry point."""

    @hookspec
    def register_commands(self, register: RegisterCommand) -> None:
        """Called at discovery; register worker services run as ``wove worker <name>``."""

    @hookspec
    def register_diagnostics(self, register: RegisterDiagnostic) -> None:
        """Called at discovery; register checks that ``wove doctor`` runs for each environment."""
