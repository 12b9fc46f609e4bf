"""Public building blocks for network executors and the worker services they talk to.

Executor plugins for HTTP, gRPC, WebSocket or any other transport import these instead of
writing their own endpoint checks, TLS contexts or service-side routing.

Part of the plugin SDK (see :mod:`wove.plugins`): every name in ``__all__`` follows semantic
versioning, and a name that is going away warns for at least one minor release first.
"""

from __future__ import annotations

from ._network import (
    DEFAULT_MAX_BODY_BYTES,
    NETWORK_CONFIG_KEYS,
    ClientRuns,
    NetworkExecutorSettings,
    NetworkSettings,
    ServiceOptions,
    ServiceSessions,
    add_service_arguments,
    client_ssl_context,
    network_settings,
    server_ssl_context,
    service_options,
)

__all__ = [
    "ClientRuns",
    "DEFAULT_MAX_BODY_BYTES",
    "NETWORK_CONFIG_KEYS",
    "NetworkExecutorSettings",
    "NetworkSettings",
    "ServiceOptions",
    "ServiceSessions",
    "add_service_arguments",
    "client_ssl_context",
    "network_settings",
    "server_ssl_context",
    "service_options",
]
