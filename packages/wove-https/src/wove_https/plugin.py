"""The entry point of the ``https`` executor: hook implementations and metadata only.

The transport is wove-http's; this plugin registers it under the name ``https`` with TLS
required, and ``wove worker https`` as ``wove worker http`` with ``--tls-cert`` required.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterCommand, RegisterExecutor, hookimpl

if TYPE_CHECKING:
    import argparse

    from wove import Executor

__all__ = ["register_commands", "register_executors"]


def _load() -> type[Executor]:
    from ._executor import HttpsExecutor

    return HttpsExecutor


def _configure(parser: argparse.ArgumentParser) -> None:
    from wove_http.cli import configure

    configure(parser, require_tls=True)


def _run(args: argparse.Namespace) -> int:
    from wove_http.cli import run

    return run(args, name="https", require_tls=True)


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the HTTPS executor; httpx is imported only when an environment starts."""
    register(
        name="https",
        kind="network",
        load=_load,
        requires=("httpx", "cloudpickle"),
        description="Run tasks on a `wove worker https` service over HTTP with TLS required.",
    )


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Offer `wove worker https`: the http worker service with --tls-cert required."""
    register(
        name="https",
        help="serve tasks to the https executor over HTTP with TLS (--tls-cert required)",
        configure=_configure,
        run=_run,
    )
