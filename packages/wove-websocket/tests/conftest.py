"""Fixtures: a shared secret, TLS certificates, and real ``wove worker websocket`` services
running as separate processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SECRET_ENV = "WOVE_TEST_SECRET"
SECRET = "wove-websocket-test-secret-0123456789"
LISTENING = "wove worker websocket listening on "


@pytest.fixture(scope="session", autouse=True)
def shared_secret() -> Iterator[str]:
    """The secret both sides read from ``WOVE_TEST_SECRET``."""
    previous = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = SECRET
    yield SECRET
    if previous is None:
        os.environ.pop(SECRET_ENV, None)
    else:
        os.environ[SECRET_ENV] = previous


class Service:
    """A ``wove worker websocket`` process, restarted on the same port whenever it exits
    (as a process supervisor would), until :meth:`close`.

    Conformance tests kill the worker from inside a task; the supervisor brings the service
    back so the executor's reconnect finds it.
    """

    def __init__(self, arguments: Sequence[str]) -> None:
        self.arguments = list(arguments)
        self.url = ""
        self.port = 0
        self.starts = 0
        self._process: subprocess.Popen[str] | None = None
        self._closing = threading.Event()
        self._first = threading.Event()
        self._error = ""
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()
        if not self._first.wait(30) or not self.url:
            self.close()
            raise RuntimeError(f"the websocket service did not start: {self._error}")

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def _launch(self) -> subprocess.Popen[str] | None:
        command = [
            sys.executable,
            "-m",
            "wove",
            "worker",
            "websocket",
            "--bind",
            f"127.0.0.1:{self.port}",
            *self.arguments,
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(LISTENING):
            process.wait()
            self._error = f"{command} exited with {process.returncode} and printed {line!r}"
            return None
        self.url = line[len(LISTENING) :].strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        self.starts += 1
        return process

    def _supervise(self) -> None:
        try:
            while not self._closing.is_set():
                process = self._launch()
                self._first.set()
                if process is None:
                    return
                process.wait()
                assert process.stdout is not None
                process.stdout.close()
        finally:
            self._first.set()

    def close(self) -> None:
        self._closing.set()
        process = self._process
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join(10)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A throwaway CA, a server certificate for 127.0.0.1 and localhost, a client certificate."""
    import trustme

    folder = tmp_path_factory.mktemp("certificates")
    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1", "localhost")
    client = authority.issue_cert("wove-test-client@example.org")
    paths = Certificates(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
    )
    authority.cert_pem.write_to_path(str(paths.ca))
    server.cert_chain_pems[0].write_to_path(str(paths.server_cert))
    server.private_key_pem.write_to_path(str(paths.server_key))
    client.cert_chain_pems[0].write_to_path(str(paths.client_cert))
    client.private_key_pem.write_to_path(str(paths.client_key))
    return paths


@pytest.fixture(scope="module")
def service(shared_secret: str) -> Iterator[Service]:
    """A plain ``ws://`` service on loopback, checking frames with the shared secret."""
    running = Service(["--security", f"env:{SECRET_ENV}"])
    yield running
    running.close()


@pytest.fixture(scope="module")
def tls_service(shared_secret: str, certificates: Certificates) -> Iterator[Service]:
    """A ``wss://`` service on loopback that also requires a client certificate."""
    running = Service(
        [
            "--security",
            f"env:{SECRET_ENV}",
            "--tls-cert",
            str(certificates.server_cert),
            "--tls-key",
            str(certificates.server_key),
            "--tls-client-ca",
            str(certificates.ca),
        ]
    )
    yield running
    running.close()


@pytest.fixture(scope="module")
def start_service() -> Iterator[Callable[..., Service]]:
    """Start extra services with the given arguments; all are stopped at the module's end."""
    started: list[Service] = []

    def start(*arguments: str) -> Service:
        running = Service(arguments)
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()
