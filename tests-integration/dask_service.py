"""Start (installing distributed where missing) and stop a real Dask cluster on 127.0.0.1.

A cluster here is two processes, each in its own process group and stopped by its PID:

* ``dask scheduler --host 127.0.0.1 --port PORT --dashboard-address 127.0.0.1:0``
* ``dask worker tcp://127.0.0.1:PORT --host 127.0.0.1 --dashboard-address 127.0.0.1:0
  --nworkers 1 --nthreads N --memory-limit 2GiB`` (a nanny and its worker process)

The dashboards are bound to 127.0.0.1 explicitly: without ``--dashboard-address`` both
processes open their HTTP servers on every interface, even with ``--no-dashboard``. Both are
:class:`backend_services.WorkerProcess` instances, so a worker killed on purpose is started
again. In CI (``CI`` set) a cluster that cannot start fails the tests with the reason.

Usable from test fixtures (:class:`DaskCluster`) and from a shell::

    python tests-integration/dask_service.py start [PORT]   # prints the address and PIDs
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend_services import ServiceError, WorkerProcess, free_port, wait_until

__all__ = ["DaskCluster", "ensure_distributed"]

#: What the worker logs once the scheduler has accepted it (``distributed.worker``).
_REGISTERED = "Registered to:"


def ensure_distributed() -> None:
    """Install ``distributed`` into this interpreter when it is missing (the ``dask`` command
    comes with it)."""
    if importlib.util.find_spec("distributed") is not None:
        return
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "distributed>=2024.1"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ServiceError(
            f"`pip install distributed` failed; install it by hand:\n{done.stderr[-2000:]}"
        )


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _registered_again(log: Path) -> Callable[[], bool]:
    """A readiness check for a worker that logs to ``log``: true once the log shows one more
    registration with the scheduler than it did at the previous check that passed, so every
    restart (``WorkerProcess`` appends to the same log) waits for its own registration."""
    seen = [0]

    def ready() -> bool:
        try:
            count = log.read_text(errors="replace").count(_REGISTERED)
        except OSError:
            return False
        if count > seen[0]:
            seen[0] = count
            return True
        return False

    return ready


class DaskCluster:
    """A ``dask scheduler`` and one ``dask worker`` on 127.0.0.1, started by these tests.

    Args:
        port: the scheduler's port; a free one when omitted. :meth:`restart` keeps it.
        nthreads: threads of the one worker process (each Wove run holds one while it runs).
        env: extra environment variables for both processes (``WOVE_SECRET`` is inherited).
    """

    def __init__(
        self, port: int | None = None, *, nthreads: int = 4, env: Mapping[str, str] | None = None
    ) -> None:
        ensure_distributed()
        self.port = port or free_port()
        self.nthreads = nthreads
        self.env = dict(env or {})
        self.directory = Path(tempfile.mkdtemp(prefix="wove-dask-"))
        self.scheduler: WorkerProcess | None = None
        self.worker: WorkerProcess | None = None

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> DaskCluster:
        """Start the scheduler, then the worker; return once the worker is registered."""
        dask = [sys.executable, "-m", "dask"]
        self.scheduler = WorkerProcess(
            [
                *dask, "scheduler",
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--dashboard-address", "127.0.0.1:0",
            ],
            ready=lambda: _listening(self.port),
            env=self.env,
            cwd=self.directory,
            log=self.directory / "scheduler.log",
        )  # fmt: skip
        log = self.directory / "worker.log"
        try:
            self.worker = WorkerProcess(
                [
                    *dask, "worker", self.address,
                    "--host", "127.0.0.1",
                    "--dashboard-address", "127.0.0.1:0",
                    "--nworkers", "1",
                    "--nthreads", str(self.nthreads),
                    "--memory-limit", "2GiB",
                    "--local-directory", str(self.directory / "worker-space"),
                ],
                ready=_registered_again(log),
                env=self.env,
                cwd=self.directory,
                log=log,
            )  # fmt: skip
        except BaseException:
            self.scheduler.stop()
            self.scheduler = None
            raise
        return self

    def kill_worker(self) -> None:
        """SIGKILL the ``dask worker`` (nanny and worker process) at once; it is restarted."""
        if self.worker is None:
            raise ServiceError("the Dask worker is not running")
        self.worker.kill()

    def wait_for_worker_restart(self, old_pid: int, timeout: float = 60.0) -> None:
        """Wait until the worker that had PID ``old_pid`` was replaced by a registered one
        (``WorkerProcess`` swaps the new process in only once it is ready)."""
        worker = self.worker
        assert worker is not None
        wait_until(
            lambda: worker.process.pid != old_pid and worker.process.poll() is None,
            timeout,
            "the Dask worker restarted",
        )

    def stop(self) -> None:
        """Stop the worker, then the scheduler, by their PIDs."""
        worker, self.worker = self.worker, None
        scheduler, self.scheduler = self.scheduler, None
        if worker is not None:
            worker.stop()
        if scheduler is not None:
            scheduler.stop()
            wait_until(lambda: not _listening(self.port), 15, f"port {self.port} freed")

    def restart(self) -> None:
        """Stop both processes and start them again on the same port."""
        self.stop()
        self.start()

    def output(self) -> str:
        """Both logs, for a failing test's message."""
        parts = []
        for name in ("scheduler.log", "worker.log"):
            path = self.directory / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


def _main(argv: list[str]) -> int:
    if not argv or argv[0] != "start" or len(argv) > 2:
        print("usage: dask_service.py start [PORT]", file=sys.stderr)
        return 2
    port = int(argv[1]) if len(argv) == 2 else 8786
    if _listening(port):
        print(f"something already listens on 127.0.0.1:{port}; used as it is")
        return 0
    cluster = DaskCluster(port).start()
    assert cluster.scheduler is not None
    assert cluster.worker is not None
    print(
        f"{cluster.address} scheduler pid {cluster.scheduler.process.pid}, worker pid "
        f"{cluster.worker.process.pid}; stop both with kill -TERM {os.getpid()}",
        flush=True,
    )
    # WorkerProcess restarts processes from a watcher thread of this process: stay alive
    # until SIGTERM, then stop both by PID.
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    while not stopping.wait(3600):
        pass
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
