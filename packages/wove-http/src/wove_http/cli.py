"""``wove worker http`` (and ``wove worker https``): serve :func:`wove_http.create_app` with
uvicorn.

Public, so that a plugin serving the same worker under another command name (wove-https's
``wove worker https``) builds its command from :func:`configure` and :func:`run`. Only argparse
is imported here at module level; uvicorn is imported when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

from wove.network import add_service_arguments, service_options

__all__ = ["configure", "run"]

EXIT_OK = 0
EXIT_USAGE = 2
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def configure(parser: argparse.ArgumentParser, *, require_tls: bool = False) -> None:
    """Add the worker service's arguments to ``parser``."""
    add_service_arguments(parser, default_port=8700, require_tls=require_tls)


def run(args: argparse.Namespace, *, name: str = "http", require_tls: bool = False) -> int:
    """Run the service until SIGTERM or SIGINT; return the exit status."""
    try:
        options = service_options(args, name=name, require_tls=require_tls)
    except (ValueError, OSError) as error:
        print(f"wove worker {name}: {error}", file=sys.stderr)
        return EXIT_USAGE
    host, port, security = options.host, options.port, options.security
    import ssl

    import uvicorn

    from ._service import create_app

    app = create_app(
        security, max_threads=options.max_threads, max_body_bytes=options.max_body_bytes, name=name
    )
    tls: dict[str, Any] = {}
    if options.tls:
        tls = {"ssl_certfile": options.tls_cert, "ssl_keyfile": options.tls_key}
        if options.tls_client_ca:
            tls.update(ssl_ca_certs=options.tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        **tls,
    )
    scheme = "https" if options.tls else "http"

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.should_exit:
                return
            bound = self.servers[0].sockets[0].getsockname()
            print(f"wove worker {name} listening on {options.url(scheme, bound[1])}", flush=True)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # Stop on SIGTERM/SIGINT and exit 0 (uvicorn would re-raise the signal afterwards).
            loop = asyncio.get_running_loop()
            for signum in _STOP_SIGNALS:
                loop.add_signal_handler(signum, self.handle_exit, signum, None)
            try:
                yield
            finally:
                for signum in _STOP_SIGNALS:
                    loop.remove_signal_handler(signum)

    server = _Server(config)
    asyncio.run(server.serve())
    return EXIT_OK if server.started else 1
