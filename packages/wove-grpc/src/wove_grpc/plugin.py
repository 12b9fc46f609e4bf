"""The entry point of the ``grpc`` executor: hook implementations and metadata only.

Importing this module is cheap: grpc, the executor and the worker service are imported only
when an environment that uses ``grpc`` starts, or when ``wove worker grpc`` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterCommand, RegisterExecutor, hookimpl

if TYPE_CHECKING:
    import argparse

    from wove import Executor

__all__ = ["register_commands", "register_executors"]


def _load() -> type[Executor]:
    from ._executor import GrpcExecutor

    return GrpcExecutor


def _configure(parser: argparse.ArgumentParser) -> None:
    from ._service import configure_command

    configure_command(parser)


def _run(args: argparse.Namespace) -> int:
    from ._service import run_command

    return run_command(args)


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the gRPC executor; grpc is imported only when an environment starts."""
    register(
        name="grpc",
        kind="network",
        load=_load,
        requires=("grpc", "cloudpickle"),
        description="Run tasks on a 'wove worker grpc' service over signed gRPC streams.",
    )


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Offer ``wove worker grpc``, the service the executor talks to."""
    register(
        name="grpc",
        help="serve tasks to 'grpc' environments over gRPC",
        configure=_configure,
        run=_run,
    )
