"""The ``finch`` entry point: hooks and metadata only; finchlib is imported by ``load``."""

from __future__ import annotations

from wove.plugins import Executor, RegisterExecutor, hookimpl


def _load() -> type[Executor]:
    from ._executor import FinchExecutor

    return FinchExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    register(
        name="finch",
        kind="network",
        load=_load,
        requires=("finchlib",),
        description="Send tasks by finch.",
    )
