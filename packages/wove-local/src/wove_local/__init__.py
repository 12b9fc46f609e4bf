"""The ``local`` executor for Wove: tasks run in the weave's own process.

It is the executor of the implicit ``"default"`` environment and comes with every wove-core
install. Wove finds it through the ``wove.executors`` entry point (:mod:`wove_local.plugin`).
"""

from __future__ import annotations

from ._executor import LocalExecutor

__all__ = ["LocalExecutor"]
