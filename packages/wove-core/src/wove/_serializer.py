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
from typing import Any, Final

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


_SCALARS: Final = (type(None), bool, int, float, complex, str, bytes, bytearray)
#: Above this many elements, checking that a value is plain data costs more than it saves.
_PLAIN_CHECK_LIMIT: Final = 4096


def _is_plain(value: Any, budget: list[int], depth: int = 0) -> bool:
    """Whether ``value`` is built only from builtin scalars, lists, tuples, sets and dicts.

    Such values pickle the same by reference as by value, so the much faster standard pickler
    can serialize them; anything else (functions, classes, instances) goes to cloudpickle.
    """
    kind = type(value)
    if kind in _SCALARS:
        return True
    if depth > 8 or kind not in (list, tuple, dict, set, frozenset):
        return False
    budget[0] -= len(value)
    if budget[0] < 0:
        return False
    if kind is dict:
        return all(
            _is_plain(key, budget, depth + 1) and _is_plain(item, budget, depth + 1)
            for key, item in value.items()
        )
    return all(_is_plain(item, budget, depth + 1) for item in value)


def dumps(value: Any, reason: str) -> bytes:
    """Serialize ``value`` by value, closures and lambdas included."""
    pickler = require_dispatch(reason)
    if _is_plain(value, [_PLAIN_CHECK_LIMIT]):
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    data: bytes = pickler.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return data


def loads(data: bytes, reason: str) -> Any:
    """Rebuild a value from :func:`dumps` output. The caller must have verified ``data``."""
    require_dispatch(reason)
    return pickle.loads(data)  # callers verify an HMAC first
