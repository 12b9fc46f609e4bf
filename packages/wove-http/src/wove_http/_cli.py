"""``wove worker http`` (and ``wove worker https``): serve :func:`wove_http.create_app` with
uvicorn.

Only argparse is imported here at module level; uvicorn is imported when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from wove.network import DEFAULT_MAX_BODY_BYTES
from wove.plugins import is_loopback_host, security_from_config

if TYPE_CHECKING:
    from wove.plugins import Security

__all__ = ["configure", "run"]

EXIT_OK = 0
EXIT_USAGE = 2
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def configure(parser: argparse.ArgumentParser, *, require_tls: bool = False) -> None:
    """Add the worker service's arguments to ``parser``."""
    parser.add_argument(
        "--bind",
        metavar="HOST:PORT",
        default="127.0.0.1:8700",
        help="address to listen on (default 127.0.0.1:8700; port 0 picks a free port)",
    )
    tls_help = "(required)" if require_tls else "(enables TLS)"
    parser.add_argument("--tls-cert", metavar="PATH", help=f"server certificate chain {tls_help}")
    parser.add_argument("--tls-key", metavar="PATH", help="private key of --tls-cert")
    parser.add_argument(
        "--tls-client-ca",
        metavar="PATH",
        help="require client certificates signed by this CA (mutual TLS)",
    )
    parser.add_argument(
        "--security",
        metavar="SPEC",
        help="the shared secret frames are signed with, e.g. env:WOVE_SECRET",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address without --security (frames are then unsigned)",
    )
    parser.add_argument(
        "--max-threads",
        type=int,
        default=32,
        metavar="N",
        help="sync tasks that may run at once (default 32)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="N",
        help=f"largest request body accepted (default {DEFAULT_MAX_BODY_BYTES})",
    )


def run(args: argparse.Namespace, *, name: str = "http", require_tls: bool = False) -> int:
    """Run the service until SIGTERM or SIGINT; return the exit status."""
    try:
        host, port, security = _checked(args, name=name, require_tls=require_tls)
    except ValueError as error:
        print(f"wove worker {name}: {error}", file=sys.stderr)
        return EXIT_USAGE
    import ssl

    import uvicorn

    from ._service import create_app

    app = create_app(
        security, max_threads=args.max_threads, max_body_bytes=args.max_body_bytes, name=name
    )
    tls: dict[str, Any] = {}
    if args.tls_cert:
        tls = {"ssl_certfile": args.tls_cert, "ssl_keyfile": args.tls_key}
        if args.tls_client_ca:
            tls.update(ssl_ca_certs=args.tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
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
    scheme = "https" if args.tls_cert else "http"

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.should_exit:
                return
            bound = self.servers[0].sockets[0].getsockname()
            shown = f"[{host}]" if ":" in host else host
            print(f"wove worker {name} listening on {scheme}://{shown}:{bound[1]}", flush=True)

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


def _checked(
    args: argparse.Namespace, *, name: str, require_tls: bool
) -> tuple[str, int, Security | None]:
    host, colon, port_text = str(args.bind).rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"--bind must be HOST:PORT, e.g. 127.0.0.1:8700, got {args.bind!r}")
    if require_tls and not args.tls_cert:
        raise ValueError(f"'wove worker {name}' needs --tls-cert and --tls-key")
    if args.tls_key and not args.tls_cert:
        raise ValueError("--tls-key was given without --tls-cert")
    if args.tls_client_ca and not args.tls_cert:
        raise ValueError("--tls-client-ca needs --tls-cert (mutual TLS runs over TLS)")
    if args.max_threads < 1 or args.max_body_bytes < 1:
        raise ValueError("--max-threads and --max-body-bytes must be at least 1")
    loopback = is_loopback_host(host)
    if not loopback and args.security is None and not args.insecure:
        raise ValueError(
            f"refusing to listen on {host!r} without --security: anyone who can reach it could "
            "run code here. Pass --security env:NAME (and TLS), or --insecure to accept that"
        )
    where = f"wove worker {name} --security"
    security = security_from_config(args.security, where=where, loopback=loopback or args.insecure)
    return host, int(port_text), security
