"""Wove: inline task orchestration for Python.

Open ``with weave() as w:`` inside an ordinary function, declare tasks with ``@w.do``, and Wove
runs them concurrently from the dependency graph their parameter names describe. Named
environments (``wove.config(environments=...)``) choose where tasks run; executors come from
plugins in the ``wove.executors`` entry-point group.
"""

from __future__ import annotations

from ._config import config
from ._errors import (
    DeliveryOrphanedError,
    DeliveryTimeoutError,
    DependencyCycleError,
    DuplicatePluginError,
    EnvironmentExecutionError,
    FrameRejectedError,
    InvalidOptionError,
    MissingDispatchFeatureError,
    MissingExecutorPluginError,
    PluginError,
    TaskCancelledError,
    UnknownEnvironmentError,
    UnknownOptionError,
    UnresolvedSignatureError,
    UpstreamTaskError,
    WeaveUsageError,
    WoveError,
)
from ._executor import Executor, InProcessExecutor
from ._graph import ExecutionPlan
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
    "Security",
    # errors
    "WoveError",
    "UnresolvedSignatureError",
    "UnknownEnvironmentError",
    "DependencyCycleError",
    "InvalidOptionError",
    "UnknownOptionError",
    "WeaveUsageError",
    "UpstreamTaskError",
    "TaskCancelledError",
    "EnvironmentExecutionError",
    "DeliveryTimeoutError",
    "DeliveryOrphanedError",
    "MissingExecutorPluginError",
    "MissingDispatchFeatureError",
    "PluginError",
    "DuplicatePluginError",
    "FrameRejectedError",
]

for _name in __all__:
    _public = globals()[_name]
    if getattr(_public, "__module__", "").startswith("wove._"):
        try:
            _public.__module__ = "wove"
        except (AttributeError, TypeError):
            pass
del _name, _public


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("wove-core")
    raise AttributeError(f"module 'wove' has no attribute {name!r}")
