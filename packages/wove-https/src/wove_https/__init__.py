"""The ``https`` executor for Wove: the ``http`` transport with TLS required.

It subclasses :class:`wove_http.HttpExecutor` and reuses its worker service; see the
``wove-http`` documentation for the wire and the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._executor import HttpsExecutor

__all__ = ["HttpsExecutor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import _executor

        return getattr(_executor, name)
    raise AttributeError(f"module 'wove_https' has no attribute {name!r}")
