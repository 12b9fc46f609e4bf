"""The entry point of the ``websocket`` executor: hook implementations and metadata only.

Importing this module is cheap: ``websockets`` and the executor are imported only when an
environment that uses ``websocket`` starts, or when ``wove worker websocket`` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterCommand, RegisterExecutor, hookimpl

if TYPE_CHECKING:
    import argparse

    from wove import Executor

__all__ = ["register_commands", "register_executors"]


def _load() -> type[Executor]:
    from ._executor import WebSocketExecutor

    return WebSocketExecutor


def _configure(parser: argparse.ArgumentParser) -> None:
    from ._service import configure_command

    configure_command(parser)


def _run(arguments: argparse.Namespace) -> int:
    from ._service import run_command

    return run_command(arguments)


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the WebSocket executor; websockets is imported only when an environment starts."""
    register(
        name="websocket",
        kind="network",
        load=_load,
        requires=("websockets", "cloudpickle"),
        description="Run tasks on a worker service over persistent, signed WebSocket connections.",
    )


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Offer ``wove worker websocket``, the service the executor connects to."""
    register(
        name="websocket",
        help="serve tasks to websocket executors over ws:// or wss://",
        configure=_configure,
        run=_run,
    )
