"""Start (installing where missing) and stop the real services backend tests run against.

Every server binds 127.0.0.1. A service that already answers on its port is used as it is and
never stopped; one this module starts is stopped by its PID (the whole process group, so a
Celery worker's pool children go too). In CI (``CI`` set) nothing is skipped: a service that
cannot be started fails the test session with the reason; locally the same error says how to
start it by hand.

Usable from test fixtures (``ensure_redis()``, ``ensure_rabbitmq()``, ``Redis.private()``,
``WorkerProcess``) and from a shell::

    python tests-integration/backend_services.py start redis      # prints the PID it started
    python tests-integration/backend_services.py start rabbitmq
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "RabbitMQ",
    "Redis",
    "ServiceError",
    "WorkerProcess",
    "apt_install",
    "descendants",
    "ensure_rabbitmq",
    "ensure_redis",
    "free_port",
    "kill_pids",
    "stop_process_group",
    "wait_until",
]

REDIS_PORT = 6379
RABBITMQ_PORT = 5672


class ServiceError(RuntimeError):
    """A service could not be installed or started; the message says how to do it by hand."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; raise :class:`ServiceError` naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.05)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def apt_install(*packages: str) -> None:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ServiceError(
            f"{' '.join(packages)} is not installed and cannot be installed here (needs apt-get "
            f"and root); install it, e.g. `sudo apt-get install -y {' '.join(packages)}`"
        )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(command, env=environment, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=environment, capture_output=True, check=False)
        done = subprocess.run(command, env=environment, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceError(f"`{' '.join(command)}` failed:\n{done.stderr[-2000:]}")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, including ones that left its process group (RQ's work
    horses call ``setpgrp``), read from ``/proc``; empty where ``/proc`` has no children files."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                pids = [int(child) for child in children.read_text().split()]
            except OSError:
                continue
            found.extend(pids)
            pending.extend(pids)
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left after ``timeout``,
    including descendants that moved to a group of their own."""
    strays = descendants(process.pid)
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # pool children that outlived their parent
    except (ProcessLookupError, PermissionError):
        pass
    kill_pids(strays)
    if process.poll() is None:
        process.wait(5)


class Redis:
    """A Redis server on 127.0.0.1: one already running, or one started here."""

    def __init__(self, port: int, process: subprocess.Popen[bytes] | None = None) -> None:
        self.port = port
        self.process = process
        self._directory: str | None = None

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    @property
    def started_here(self) -> bool:
        return self.process is not None

    @classmethod
    def private(cls) -> Redis:
        """A new server on a free port, for tests that stop and restart it."""
        server = cls(free_port())
        server.start()
        return server

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            apt_install("redis-server")
            binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if self._directory is None:
            self._directory = tempfile.mkdtemp(prefix="wove-redis-")
        self.process = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", self._directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: _redis_answers(self.port), 15, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None

    def restart(self) -> None:
        """Stop the server this module started and start it again on the same port."""
        if not self.started_here:
            raise ServiceError("only a Redis started by these tests may be restarted")
        self.stop()
        self.start()


def ensure_redis(port: int = REDIS_PORT) -> Redis:
    """The Redis on ``port``: used if it answers, started (and installed) otherwise."""
    if _redis_answers(port):
        return Redis(port)
    if _listening(port):
        raise ServiceError(f"something that is not Redis listens on 127.0.0.1:{port}")
    server = Redis(port)
    server.start()
    return server


class RabbitMQ:
    """A RabbitMQ broker on 127.0.0.1:5672 (AMQP only, guest/guest, loopback)."""

    def __init__(self, process: subprocess.Popen[bytes] | None = None) -> None:
        self.process = process
        self.url = f"amqp://guest:guest@127.0.0.1:{RABBITMQ_PORT}//"
        self._environment: dict[str, str] = {}

    def start(self) -> None:
        server = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        if not server.exists():
            apt_install("rabbitmq-server")
        base = Path(tempfile.mkdtemp(prefix="wove-rabbitmq-"))
        for name in ("home", "mnesia", "log"):
            (base / name).mkdir()
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{RABBITMQ_PORT}\nloopback_users = none\n"
        )
        # Without these the node and epmd listen on every interface (see the Debian defaults).
        self._environment = {
            **os.environ,
            "HOME": str(base / "home"),
            "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(RABBITMQ_PORT),
            "RABBITMQ_DIST_PORT": "25672",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": "4369",
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self.process = subprocess.Popen(
            [str(server)],
            env=self._environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(lambda: _listening(RABBITMQ_PORT), 90, "RabbitMQ listening on 5672")

    def stop(self) -> None:
        if self.process is not None:
            # The node's process group holds epmd too: it was started by the node.
            stop_process_group(self.process, timeout=30)
            self.process = None


def ensure_rabbitmq() -> RabbitMQ:
    """The RabbitMQ on 127.0.0.1:5672: used if it listens, started (and installed) otherwise."""
    if _listening(RABBITMQ_PORT):
        return RabbitMQ()
    broker = RabbitMQ()
    broker.start()
    return broker


class WorkerProcess:
    """A worker process we start (``celery worker``, ``rq worker``, ``arq``...), restarted
    whenever it dies -- some tests kill workers on purpose -- and stopped by its PID.

    Args:
        argv: the command.
        ready: returns ``True`` once the worker takes jobs; awaited after every (re)start.
        env: extra environment variables.
        cwd: working directory (where the worker imports its task module from).
        log: a file the worker's output goes to (kept for diagnosing failures).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        ready: Callable[[], bool] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        log: Path | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.argv = list(argv)
        self.ready = ready
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.log = log or Path(tempfile.mkstemp(prefix="wove-worker-", suffix=".log")[1])
        self.ready_timeout = ready_timeout
        self.restarts = 0
        self._lock = threading.Lock()
        self._closed = False
        self.process = self._spawn()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as output:
            process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.ready is not None:
            deadline = time.monotonic() + self.ready_timeout
            while not self.ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    stop_process_group(process)
                    raise ServiceError(
                        f"worker {' '.join(self.argv)!r} did not become ready; its output:\n"
                        + self.log.read_text(errors="replace")[-3000:]
                    )
                time.sleep(0.1)
        return process

    def _watch(self) -> None:
        while True:
            process = self.process
            process.wait()
            with self._lock:
                if self._closed:
                    return
                stop_process_group(process)  # children of the dead worker
                self.restarts += 1
                try:
                    self.process = self._spawn()
                except ServiceError as error:
                    print(f"restarting a worker failed: {error}", file=sys.stderr)
                    return

    def kill(self) -> None:
        """Kill the worker and everything it started at once (SIGKILL); the watcher starts a
        new one."""
        strays = descendants(self.process.pid)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_pids(strays)

    def stop(self) -> None:
        with self._lock:
            self._closed = True
        stop_process_group(self.process)
        self._watcher.join(30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] != "start" or argv[1] not in ("redis", "rabbitmq"):
        print("usage: backend_services.py start redis|rabbitmq", file=sys.stderr)
        return 2
    if argv[1] == "redis":
        server = ensure_redis()
        print(server.process.pid if server.process else "already running")
    else:
        broker = ensure_rabbitmq()
        print(broker.process.pid if broker.process else "already running")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
