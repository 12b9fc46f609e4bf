"""The entry point of the ``slurm`` executor: hook implementations and metadata only.

Importing this module is cheap: the adapter (and asyncio's subprocess machinery) is imported
when a ``slurm`` environment starts. Slurm itself is reached through its client commands, or
through slurmrestd with aiohttp (from the callback extra), so there is no Python library to
require beyond the callback and dispatch extras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wove.plugins import RegisterExecutor, hookimpl

if TYPE_CHECKING:
    from wove import Executor

__all__ = ["register_executors"]


def _load() -> type[Executor]:
    from ._adapter import SlurmExecutor

    return SlurmExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the Slurm executor; nothing Slurm-specific is imported until an environment starts."""
    register(
        name="slurm",
        kind="backend",
        load=_load,
        requires=("cloudpickle", "aiohttp"),
        description="Run each task as a Slurm batch job (sbatch/squeue/scancel, or slurmrestd); "
        "results come back through Wove's callback server.",
    )
