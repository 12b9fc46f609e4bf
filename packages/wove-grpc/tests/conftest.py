"""Real ``wove worker grpc`` services.

A service runs as its own process (``python -m wove worker grpc``); the fixture reads its
listening line for the port and terminates it by PID at teardown. Some conformance tests end
the service on purpose (a task calls ``os._exit``), so a supervisor thread starts it again on the
same port, as a process manager would in production.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

SECRET_VARIABLE = "WOVE_TEST_SECRET"
SECRET = "grpc-test-secret-0123456789abcdef"
LISTENING = re.compile(r"^wove worker grpc listening on (grpcs?)://(.+):(\d+)$")

os.environ[SECRET_VARIABLE] = SECRET


class Service:
    """One ``wove worker grpc`` process, restarted on the same port whenever it exits."""

    def __init__(self, *arguments: str) -> None:
        self.arguments = list(arguments)
        self.port = 0
        self.process = self._launch("127.0.0.1:0")
        self._closing = False
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._supervise, daemon=True)
        self._watcher.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _launch(self, bind: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "wove", "worker", "grpc", "--bind", bind, *self.arguments],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = LISTENING.match(line)
        if match is None:
            process.kill()
            process.wait()
            _close_output(process)
            raise RuntimeError(f"the grpc service did not report its address: {line!r}")
        self.port = int(match.group(3))
        return process

    def _supervise(self) -> None:
        while True:
            self.process.wait()
            _close_output(self.process)
            with self._lock:
                if self._closing:
                    return
                self.process = self._launch(self.target)

    def close(self) -> None:
        with self._lock:
            self._closing = True
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
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture(scope="session")
def service() -> Iterator[Service]:
    """A plain loopback service checking frames with ``env:WOVE_TEST_SECRET``."""
    running = Service("--security", f"env:{SECRET_VARIABLE}")
    yield running
    running.close()


class Certificates:
    def __init__(self, directory: Path) -> None:
        import trustme

        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        client = ca.issue_cert("wove-client@example.org")
        self.ca_file = directory / "ca.pem"
        self.server_cert = directory / "server.pem"
        self.server_key = directory / "server.key"
        self.client_cert = directory / "client.pem"
        self.client_key = directory / "client.key"
        ca.cert_pem.write_to_path(str(self.ca_file))
        server.private_key_pem.write_to_path(str(self.server_key))
        server.cert_chain_pems[0].write_to_path(str(self.server_cert))
        for blob in server.cert_chain_pems[1:]:
            blob.write_to_path(str(self.server_cert), append=True)
        client.private_key_pem.write_to_path(str(self.client_key))
        client.cert_chain_pems[0].write_to_path(str(self.client_cert))


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_service(certificates: Certificates) -> Iterator[Service]:
    """A TLS service that also requires a client certificate (mutual TLS)."""
    running = Service(
        "--security",
        f"env:{SECRET_VARIABLE}",
        "--tls-cert",
        str(certificates.server_cert),
        "--tls-key",
        str(certificates.server_key),
        "--tls-client-ca",
        str(certificates.ca_file),
    )
    yield running
    running.close()
