"""The ``https`` executor: :class:`wove_http.HttpExecutor` with an ``https://`` URL required."""

from __future__ import annotations

from typing import ClassVar

from wove_http import HttpExecutor

__all__ = ["HttpsExecutor"]


class HttpsExecutor(HttpExecutor):
    """Run an environment's tasks on a ``wove worker https`` service; TLS is required.

    Everything but the scheme check is :class:`wove_http.HttpExecutor`: the same
    ``executor_config`` keys (``url`` must start with ``https://``; ``ca_file`` for a private CA,
    ``cert_file``/``key_file`` for mutual TLS), the same wire and the same worker service.
    """

    name: ClassVar[str] = "https"
    require_tls: ClassVar[bool] = True
