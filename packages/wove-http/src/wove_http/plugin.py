"""The entry point of the ``http`` executor: hook implementations and metadata only.

Importing this module is cheap: httpx is imported when an ``http`` environment starts, and
uvicorn when ``wove worker http`` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterCommand, RegisterExecutor, hookimpl

if TYPE_CHECKING:
    import argparse

    from wove import Executor

__all__ = ["register_commands", "register_executors"]


def _load() -> type[Executor]:
    from ._executor import HttpExecutor

    return HttpExecutor


def _configure(parser: argparse.ArgumentParser) -> None:
    from .cli import configure

    configure(parser)


def _run(args: argparse.Namespace) -> int:
    from .cli import run

    return run(args, name="http")


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the HTTP executor; httpx is imported only when an environment starts."""
    register(
        name="http",
        kind="network",
        load=_load,
        requires=("httpx", "cloudpickle"),
        description="Run tasks on a `wove worker http` service over persistent HTTP connections.",
    )


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Offer `wove worker http`, the worker service the executor talks to."""
    register(
        name="http",
        help="serve tasks to the http/https executors over HTTP (TLS with --tls-cert)",
        configure=_configure,
        run=_run,
    )
