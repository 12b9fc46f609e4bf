"""Wove's pluggy hooks: the project's markers, the ``register`` callbacks each hook receives,
and the hook specifications the registry calls.

Public through :mod:`wove.plugins`; the registry (``_registry``) and the built-in ``local``
executor import them from here, so the public facade can also re-export the registry without an
import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

import pluggy

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Sequence

    from ._config import EnvironmentConfig
    from ._executor import Executor, ExecutorKind

__all__ = [
    "PROJECT_NAME",
    "RegisterCommand",
    "RegisterDiagnostic",
    "RegisterExecutor",
    "WoveHookSpecs",
    "hookimpl",
    "hookspec",
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


# Documented, pickled and shown in reprs under the public module that exports them.
for _public in (RegisterExecutor, RegisterCommand, RegisterDiagnostic, WoveHookSpecs):
    _public.__module__ = "wove.plugins"
del _public
