"""The ``dispatch`` serializer: cloudpickle, for callables and values that cross a process
boundary. It is an optional extra (``pip install "wove-core[dispatch]"``) and is imported only
when something actually needs it, so ``import wove`` never pulls it in.

Only ever call :func:`loads` on bytes whose signature has been verified.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
from types import ModuleType
from typing import Any

from ._errors import MissingDispatchFeatureError

__all__ = ["dumps", "has_dispatch", "loads", "require_dispatch"]


_cloudpickle: ModuleType | None = None


def require_dispatch(reason: str) -> ModuleType:
    """Import cloudpickle, or raise :class:`MissingDispatchFeatureError` saying ``reason``."""
    global _cloudpickle
    if _cloudpickle is None:
        try:
            _cloudpickle = importlib.import_module("cloudpickle")
        except ImportError:
            raise MissingDispatchFeatureError(reason) from None
    return _cloudpickle


def has_dispatch() -> bool:
    """Whether the dispatch serializer is installed (without importing it)."""
    return importlib.util.find_spec("cloudpickle") is not None


def dumps(value: Any, reason: str) -> bytes:
    """Serialize ``value`` by value, closures and lambdas included."""
    pickler = require_dispatch(reason)
    data: bytes = pickler.dumps(value)
    return data


def loads(data: bytes, reason: str) -> Any:
    """Rebuild a value from :func:`dumps` output. The caller must have verified ``data``."""
    require_dispatch(reason)
    return pickle.loads(data)  # callers verify an HMAC first
