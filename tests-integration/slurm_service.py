"""Start (installing where missing) and stop a real single-node Slurm cluster on 127.0.0.1.

A cluster here is three daemons, each started in the foreground by
:class:`backend_services.WorkerProcess` (so each is one PID in its own process group) and
stopped by that PID, with everything they write kept in one private directory:

* ``munged --foreground`` on a socket in that directory (Slurm's authentication);
* ``slurmctld -D`` (the controller) and ``slurmd -D`` (the one compute node).

The configuration is generated for ``hostname -s`` (Slurm insists that the node name is the
host's short name) and binds every port to 127.0.0.1 (``NoCtldInAddrAny,NoInAddrAny``).
Processes are tracked without cgroups (``proctrack/linuxproc``, ``task/none``). No slurmdbd:
``squeue`` and ``scontrol`` keep finished jobs for ``MinJobAge`` (300 s), which is all the
adapter needs, and ``sacct`` is only used where accounting is configured. The partition lets
jobs share the node's cores (``OverSubscribe=FORCE``), so a few dozen one-process jobs can run
at once on a small machine without declaring CPUs it does not have.

Clients find the cluster through ``SLURM_CONF`` (:attr:`SlurmCluster.env`); the daemons run as
root and jobs run as the submitting user. Usable from test fixtures (:class:`SlurmCluster`)
and from a shell::

    python tests-integration/slurm_service.py start   # prints SLURM_CONF and the PIDs
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend_services import ServiceError, WorkerProcess, apt_install, free_port, wait_until

__all__ = ["SlurmCluster", "ensure_slurm"]

#: Debian packages that bring munged, slurmctld, slurmd and the client commands.
_PACKAGES = ("slurm-wlm", "munge")
_MUNGE_KEY = Path("/etc/munge/munge.key")
#: How many jobs may share one core of the node.
_JOBS_PER_CORE = 16


def ensure_slurm() -> None:
    """Install Slurm and munge with apt when the daemons or the key are missing."""
    needed = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")
    if all(_which(name) for name in needed) and _MUNGE_KEY.exists():
        return
    apt_install(*_PACKAGES)
    missing = [name for name in needed if not _which(name)]
    if missing or not _MUNGE_KEY.exists():
        raise ServiceError(
            f"installing {' '.join(_PACKAGES)} did not provide {missing or [str(_MUNGE_KEY)]}"
        )


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait_freed(port: int) -> None:
    wait_until(lambda: not _listening(port), 15, f"port {port} freed")


class SlurmCluster:
    """munged, slurmctld and one slurmd on 127.0.0.1, started by these tests.

    Args:
        ctld_port: the controller's port; a free one when omitted. :meth:`restart` keeps it.
        slurmd_port: the node daemon's port; a free one when omitted.
    """

    def __init__(self, ctld_port: int | None = None, slurmd_port: int | None = None) -> None:
        ensure_slurm()
        self.ctld_port = ctld_port or free_port()
        self.slurmd_port = slurmd_port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="wove-slurm-"))
        self.directory.chmod(0o755)  # jobs of other users read the configuration
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.directory / "slurm.conf"
        self.munge: WorkerProcess | None = None
        self.ctld: WorkerProcess | None = None
        self.slurmd: WorkerProcess | None = None
        self._write_config()

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs in its environment to talk to this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        d = self.directory
        for name in ("state", "spool", "munge"):
            (d / name).mkdir(exist_ok=True)
        munge = d / "munge"
        shutil.chown(munge, "munge", "munge")
        munge.chmod(0o755)  # munged insists that clients can reach the socket's directory
        socket_path = munge / "munge.socket.2"
        cpus = os.cpu_count() or 1
        self.conf.write_text(
            f"""\
ClusterName=wove
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
StateSaveLocation={d / "state"}
SlurmdSpoolDir={d / "spool"}
SlurmctldPidFile={d / "slurmctld.pid"}
SlurmdPidFile={d / "slurmd.pid"}
SlurmctldLogFile={d / "slurmctld.log"}
SlurmdLogFile={d / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=5
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1024 State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP \
OverSubscribe=FORCE:{_JOBS_PER_CORE}
"""
        )

    def start(self) -> SlurmCluster:
        """Start munged, slurmctld and slurmd; return once the node takes jobs."""
        d = self.directory
        socket_path = d / "munge" / "munge.socket.2"
        try:
            if self.munge is None:
                self.munge = WorkerProcess(
                    [
                        "runuser", "-u", "munge", "--",
                        _which("munged") or "munged", "--foreground",
                        f"--socket={socket_path}",
                        f"--pid-file={d / 'munge' / 'munged.pid'}",
                        f"--log-file={d / 'munge' / 'munged.log'}",
                        f"--seed-file={d / 'munge' / 'munged.seed'}",
                        f"--key-file={_MUNGE_KEY}",
                    ],
                    ready=socket_path.exists,
                    log=d / "munged.out",
                )  # fmt: skip
            self.ctld = WorkerProcess(
                [_which("slurmctld") or "slurmctld", "-D", "-f", str(self.conf)],
                ready=lambda: _listening(self.ctld_port),
                env=self.env,
                log=d / "slurmctld.out",
            )
            self.slurmd = WorkerProcess(
                [_which("slurmd") or "slurmd", "-D", "-f", str(self.conf)],
                ready=lambda: _listening(self.slurmd_port),
                env=self.env,
                log=d / "slurmd.out",
            )
            wait_until(self._node_idle, 60, f"Slurm node {self.host} idle")
        except BaseException:
            self.stop(keep_directory=True)  # its logs say why
            raise
        return self

    def _node_idle(self) -> bool:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], env={**os.environ, **self.env}, capture_output=True
        )
        states = done.stdout.decode().split()
        return done.returncode == 0 and any(state.startswith(("idle", "mix")) for state in states)

    def run(self, *argv: str) -> str:
        """Run a Slurm client command against this cluster and return its stdout."""
        done = subprocess.run(
            argv, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise ServiceError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
        return done.stdout

    def stop_controller(self) -> None:
        """Stop slurmctld alone (the node and running jobs stay); :meth:`start_controller`
        brings it back on the same port with its saved state."""
        ctld, self.ctld = self.ctld, None
        if ctld is not None:
            ctld.stop()
            wait_until(lambda: not _listening(self.ctld_port), 15, f"port {self.ctld_port} freed")

    def start_controller(self) -> None:
        self.ctld = WorkerProcess(
            [_which("slurmctld") or "slurmctld", "-D", "-f", str(self.conf)],
            ready=lambda: _listening(self.ctld_port),
            env=self.env,
            log=self.directory / "slurmctld.out",
        )
        wait_until(self._node_idle, 60, f"Slurm node {self.host} idle again")

    def stop(self, *, keep_directory: bool = False) -> None:
        """Cancel every job, stop slurmd, slurmctld and munged by their PIDs, and remove the
        cluster's directory (state, logs, job output) unless ``keep_directory``."""
        if self.ctld is not None:
            subprocess.run(
                ["scancel", "--full", "--user", str(os.getuid())],
                env={**os.environ, **self.env},
                capture_output=True,
                timeout=30,
            )
        for attribute in ("slurmd", "ctld", "munge"):
            process: WorkerProcess | None = getattr(self, attribute)
            setattr(self, attribute, None)
            if process is not None:
                process.stop()
        for port in (self.ctld_port, self.slurmd_port):
            _wait_freed(port)
        if not keep_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def restart(self) -> None:
        """Stop the controller and the node daemon and start them again on the same ports."""
        for attribute in ("slurmd", "ctld"):
            process: WorkerProcess | None = getattr(self, attribute)
            setattr(self, attribute, None)
            if process is not None:
                process.stop()
        for port in (self.ctld_port, self.slurmd_port):
            _wait_freed(port)
        self.start()

    def output(self) -> str:
        """The daemons' logs, for a failing test's message."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.directory / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


def _main(argv: list[str]) -> int:
    if argv != ["start"]:
        print("usage: slurm_service.py start", file=sys.stderr)
        return 2
    cluster = SlurmCluster().start()
    assert cluster.ctld is not None
    assert cluster.slurmd is not None
    assert cluster.munge is not None
    print(
        f"export SLURM_CONF={cluster.conf}  # munged pid {cluster.munge.process.pid}, slurmctld "
        f"pid {cluster.ctld.process.pid}, slurmd pid {cluster.slurmd.process.pid}; stop all "
        f"with kill -TERM {os.getpid()}",
        flush=True,
    )
    # WorkerProcess restarts daemons from watcher threads of this process: stay alive until
    # SIGTERM, then stop everything by PID.
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    while not stopping.wait(3600):
        pass
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
