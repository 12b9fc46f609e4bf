"""Start (installing where missing) and stop a real single-node Ray cluster on 127.0.0.1.

The head runs as ``ray start --head --block``: with ``--block`` one parent process owns the GCS,
the raylet, the agents and every Ray worker, so the cluster is stopped by that one PID (SIGTERM,
which Ray drains in about two seconds; then SIGKILL for anything left), and ``ray stop`` -- which
kills every Ray process on the machine by name -- is never needed. Its temporary directory is
private and removed on stop.

Three environment variables make a local cluster sane (see ``RAY_ENVIRONMENT``): without
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` Ray ignores ``--node-ip-address=127.0.0.1`` and listens
on every interface; Ray 2.60 turns token authentication on by default and writes
``~/.ray/auth_token`` unless ``RAY_AUTH_MODE=disabled``; and usage statistics stay off. A driver
(the weave's process) needs the same ``RAY_AUTH_MODE`` as the cluster, so
:func:`configure_driver_environment` sets them in the calling process too.

Ray workers are started by the raylet and inherit the environment of ``ray start``, so a head
started from a test session whose ``WOVE_SECRET`` is set hands that secret to every worker.

Usable from test fixtures (``RayHead``) and from a shell::

    python tests-integration/ray_service.py start [--port 6380]   # prints the head's PID
    python tests-integration/ray_service.py stop PID [--directory TEMP_DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backend_services import ServiceError, descendants, free_port, kill_pids, wait_until

__all__ = ["RAY_ENVIRONMENT", "RayHead", "configure_driver_environment", "ray_executable"]

#: Environment of the head, its workers and every driver that connects to it.
RAY_ENVIRONMENT = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}
#: The pip requirement installed when the ``ray`` command is missing (wove-ray's own range).
RAY_REQUIREMENT = "ray>=2.40,<3"
#: Seconds a head may take to start: about 3-4 s on a quiet 2-core machine.
START_TIMEOUT = 120.0
#: Seconds Ray gets to drain after SIGTERM before the rest is killed.
STOP_TIMEOUT = 30.0
#: The object store is capped (Ray's default is 30 % of RAM, in /dev/shm).
OBJECT_STORE_BYTES = 200 * 1024 * 1024


def configure_driver_environment() -> None:
    """Give this process the variables a driver of a :class:`RayHead` cluster needs."""
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def ray_executable() -> str:
    """The ``ray`` command beside this interpreter, installed with pip when it is missing."""
    beside = Path(sys.executable).with_name("ray")
    if beside.exists():
        return str(beside)
    command = [sys.executable, "-m", "pip", "install", "-q", RAY_REQUIREMENT]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not beside.exists():
        raise ServiceError(
            f"the ray command is missing and `{' '.join(command)}` failed; install Ray "
            f"(pip install '{RAY_REQUIREMENT}'):\n{done.stderr[-2000:]}"
        )
    return str(beside)


class RayHead:
    """A ``ray start --head --block`` process on 127.0.0.1, started and stopped by its PID.

    Args:
        port: the GCS port drivers connect to (``address="127.0.0.1:<port>"``); a free one
            when ``None``. :meth:`restart` keeps it.
        num_cpus: CPUs the node declares (tasks ask for 1 by default).
        env: extra environment for the head and, through the raylet, every worker.
    """

    def __init__(
        self, port: int | None = None, *, num_cpus: int = 2, env: dict[str, str] | None = None
    ) -> None:
        self.port = port or free_port()
        self.num_cpus = num_cpus
        self.env = {**os.environ, **RAY_ENVIRONMENT, **(env or {})}
        self.directory = Path(tempfile.mkdtemp(prefix="wove-ray-"))
        self.log = self.directory / "head.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the head and wait until it says it runs; the GCS answers from then on."""
        if self.process is not None:
            raise ServiceError(f"the Ray head on {self.address} is already running")
        temp = self.directory / "tmp"
        command = [
            ray_executable(),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            f"--num-cpus={self.num_cpus}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            "--include-dashboard=false",
            # Ports Ray would otherwise take from fixed defaults (8265, 52365, ...).
            f"--dashboard-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ]
        began = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                cwd=self.directory,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = self.process

        def started() -> bool:
            if process.poll() is not None:
                raise ServiceError(
                    f"`ray start --head` on {self.address} exited with {process.returncode}:\n"
                    + self.output()[-3000:]
                )
            with open(self.log, "rb") as log:
                log.seek(began)
                return b"Ray runtime started" in log.read()

        try:
            wait_until(started, START_TIMEOUT, f"the Ray head on {self.address} starting")
        except ServiceError:
            self.stop()
            raise
        self.starts += 1

    def stop(self) -> None:
        """SIGTERM the head (Ray drains and stops its children), then kill what is left."""
        process, self.process = self.process, None
        if process is None:
            return
        strays = descendants(process.pid)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        kill_pids(strays)
        if process.poll() is None:
            process.wait(5)
        # The address file of a dead cluster would send a later `ray.init()` to it.
        with contextlib.suppress(OSError):
            (self.directory / "tmp" / "ray_current_cluster").unlink()

    def restart(self) -> None:
        """Stop the head and start a new cluster on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the head and remove its temporary directory (logs included)."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def worker_pids(self) -> list[int]:
        """PIDs of the cluster's Python task workers (processes named ``ray::...``)."""
        if self.process is None:
            return []
        found = []
        for pid in descendants(self.process.pid):
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if name.startswith("ray::") and "Agent" not in name:
                found.append(pid)
        return found


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Start or stop a local Ray head on 127.0.0.1.")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a head and print its PID")
    start.add_argument("--port", type=int, default=6380)
    start.add_argument("--num-cpus", type=int, default=2)
    stop = commands.add_parser("stop", help="stop a head started here, by PID")
    stop.add_argument("pid", type=int)
    stop.add_argument("--directory", help="the temp dir `start` printed, removed after the stop")
    options = parser.parse_args(argv)
    if options.command == "start":
        head = RayHead(options.port, num_cpus=options.num_cpus)
        head.start()
        assert head.process is not None
        print(head.process.pid)
        print(
            f"address: {head.address}; stop with: stop {head.process.pid} "
            f"--directory {head.directory}",
            file=sys.stderr,
        )
        # The head outlives this script: it was started in a session of its own.
        return 0
    strays = descendants(options.pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(options.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{options.pid}/stat").read_text().split()[2]
        except (OSError, IndexError):
            break  # gone
        if state == "Z":
            break  # exited; its parent has not reaped it yet
        time.sleep(0.1)
    kill_pids([options.pid, *strays])
    if options.directory:
        shutil.rmtree(options.directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
