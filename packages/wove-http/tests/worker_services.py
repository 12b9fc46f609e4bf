"""Worker services run as real processes, the secret they share with the test process, and TLS
certificates made by trustme.

A :class:`Service` is ``python -m wove worker http --bind 127.0.0.1:0 ...`` in its own process.
It is started once per module and, because some conformance tests end the worker process on
purpose (``os._exit`` inside a task), a watcher thread restarts it on the same port whenever
it dies; the executor retries refused connections for ``connect_timeout`` seconds meanwhile.

wove-https's tests use this module too (their conftest puts this folder on ``sys.path``), so it
imports nothing else from this folder.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import trustme

__all__ = ["SECRET_VARIABLE", "Service", "issue_certificates", "tls_service"]

SECRET_VARIABLE = "WOVE_TEST_SECRET"
# The test process and every service it starts share this secret.
os.environ.setdefault(SECRET_VARIABLE, secrets.token_hex(32))


class Service:
    """One ``wove worker <name>`` process, restarted on the same port if it dies."""

    def __init__(self, arguments: Sequence[str], name: str = "http") -> None:
        self._arguments = list(arguments)
        self._name = name
        self._lock = threading.Lock()
        self._closed = False
        self.url = ""
        self.restarts = 0
        self.process = self._spawn("127.0.0.1:0")
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _spawn(self, bind: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "wove", "worker", self._name, "--bind", bind, *self._arguments],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        prefix = f"wove worker {self._name} listening on "
        if not line.startswith(prefix):
            process.kill()
            process.wait()
            _close_output(process)
            raise RuntimeError(f"the service did not start: {line!r}")
        self.url = line.removeprefix(prefix)
        return process

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _watch(self) -> None:
        while True:
            process = self.process
            process.wait()
            _close_output(process)
            with self._lock:
                if self._closed:
                    return
                self.restarts += 1
                self.process = self._spawn(f"127.0.0.1:{self.port}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            process = self.process
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._watcher.join(timeout=10)
        _close_output(process)


def _close_output(process: subprocess.Popen[str]) -> None:
    if process.stdout is not None and not process.stdout.closed:
        process.stdout.close()


def issue_certificates(folder: Path) -> dict[str, str]:
    """Write a CA, a server certificate for 127.0.0.1 and localhost, and a client certificate.

    Returns the paths by role: ``ca``, ``cert`` and ``key`` (the server's), ``client`` (the
    client's key and certificate in one file).
    """
    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1", "localhost")
    client = authority.issue_cert("wove-client@example.invalid")
    paths = {
        "ca": folder / "ca.pem",
        "cert": folder / "server.pem",
        "key": folder / "server.key",
        "client": folder / "client.pem",
    }
    authority.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client"]))
    return {key: str(value) for key, value in paths.items()}


def tls_service(certificates: dict[str, str], *extra: str, name: str = "http") -> Service:
    """A ``wove worker <name>`` serving TLS with the server certificate and the shared secret."""
    return Service(
        [
            "--security",
            f"env:{SECRET_VARIABLE}",
            "--tls-cert",
            certificates["cert"],
            "--tls-key",
            certificates["key"],
            *extra,
        ],
        name=name,
    )
