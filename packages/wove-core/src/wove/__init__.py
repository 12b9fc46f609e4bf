"""Wove: inline task orchestration for Python.

Open ``with weave() as w:`` inside an ordinary function, declare tasks with ``@w.do``, and Wove
runs them concurrently from the dependency graph their parameter names describe. Named
environments (``wove.config(environments=...)``) choose where tasks run; executors come from
plugins in the ``wove.executors`` entry-point group.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import config
    from ._errors import (
        DeliveryOrphanedError,
        DeliveryTimeoutError,
        DependencyCycleError,
        DuplicatePluginError,
        EnvironmentExecutionError,
        FrameRejectedError,
        InvalidOptionError,
        MissingCallbackFeatureError,
        MissingDispatchFeatureError,
        MissingExecutorPluginError,
        PluginError,
        ReservedNameError,
        RunNotClaimedError,
        TaskCancelledError,
        TaskSignatureError,
        UnknownEnvironmentError,
        UnknownOptionError,
        UnresolvedSignatureError,
        UpstreamTaskError,
        WeaveUsageError,
        WoveError,
    )
    from ._executor import Executor, InProcessExecutor
    from ._graph import ExecutionPlan
    from ._local import LocalExecutor
    from ._merge import merge
    from ._result import WoveResult
    from ._security import Security
    from ._threads import sync_to_async
    from ._transforms import batch, denone, flatten, fold, redict, undict
    from ._weave import Weave, WeaveBlock, weave

__all__ = [
    # running weaves
    "weave",
    "Weave",
    "WeaveBlock",
    "WoveResult",
    "ExecutionPlan",
    "merge",
    "config",
    # helpers
    "flatten",
    "fold",
    "batch",
    "undict",
    "redict",
    "denone",
    "sync_to_async",
    # executors
    "Executor",
    "InProcessExecutor",
    "LocalExecutor",
    "Security",
    # errors
    "WoveError",
    "UnresolvedSignatureError",
    "UnknownEnvironmentError",
    "ReservedNameError",
    "DependencyCycleError",
    "InvalidOptionError",
    "UnknownOptionError",
    "TaskSignatureError",
    "WeaveUsageError",
    "UpstreamTaskError",
    "TaskCancelledError",
    "EnvironmentExecutionError",
    "DeliveryTimeoutError",
    "DeliveryOrphanedError",
    "MissingExecutorPluginError",
    "MissingDispatchFeatureError",
    "MissingCallbackFeatureError",
    "PluginError",
    "DuplicatePluginError",
    "FrameRejectedError",
    "RunNotClaimedError",
]

#: Where each public name lives; modules load on first use, so importing a submodule
#: such as ``wove.stdio_worker`` does not pull in the whole engine.
_EXPORTS: dict[str, str] = {
    "config": "._config",
    "DeliveryOrphanedError": "._errors",
    "DeliveryTimeoutError": "._errors",
    "DependencyCycleError": "._errors",
    "DuplicatePluginError": "._errors",
    "EnvironmentExecutionError": "._errors",
    "FrameRejectedError": "._errors",
    "ReservedNameError": "._errors",
    "RunNotClaimedError": "._errors",
    "TaskSignatureError": "._errors",
    "InvalidOptionError": "._errors",
    "MissingDispatchFeatureError": "._errors",
    "MissingCallbackFeatureError": "._errors",
    "MissingExecutorPluginError": "._errors",
    "PluginError": "._errors",
    "TaskCancelledError": "._errors",
    "UnknownEnvironmentError": "._errors",
    "UnknownOptionError": "._errors",
    "UnresolvedSignatureError": "._errors",
    "UpstreamTaskError": "._errors",
    "WeaveUsageError": "._errors",
    "WoveError": "._errors",
    "Executor": "._executor",
    "InProcessExecutor": "._executor",
    "ExecutionPlan": "._graph",
    "LocalExecutor": "._local",
    "merge": "._merge",
    "WoveResult": "._result",
    "Security": "._security",
    "sync_to_async": "._threads",
    "batch": "._transforms",
    "denone": "._transforms",
    "flatten": "._transforms",
    "fold": "._transforms",
    "redict": "._transforms",
    "undict": "._transforms",
    "Weave": "._weave",
    "WeaveBlock": "._weave",
    "weave": "._weave",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("wove-core")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wove' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    if getattr(value, "__module__", "").startswith("wove._"):
        try:
            value.__module__ = "wove"  # reprs and docs show the public path
        except (AttributeError, TypeError):
            pass
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
