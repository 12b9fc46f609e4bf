"""The ``pigeon`` entry point. Importing it is cheap, but discovering it is not: the hook
imports the backend library to put its version in the description."""

from __future__ import annotations

from wove.plugins import Executor, RegisterExecutor, hookimpl


def _load() -> type[Executor]:
    from ._executor import PigeonExecutor

    return PigeonExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    import pigeonlib  # the defect: every `wove plugins list` now imports the backend

    register(
        name="pigeon",
        kind="network",
        load=_load,
        requires=("pigeonlib",),
        description=f"Send tasks by pigeon (pigeonlib {pigeonlib.__version__}).",
    )
