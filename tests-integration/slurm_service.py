"""Start (installing where missing) and stop a real single-node Slurm cluster on 127.0.0.1.

A cluster here is three daemons, each started in the foreground by
:class:`backend_services.WorkerProcess` (so each is one PID in its own process group) and
stopped by that PID, with everything they write kept in one private directory:

* ``munged --foreground`` on a socket in that directory (Slurm's authentication);
* ``slurmctld -D`` (the controller) and ``slurmd -D`` (the one compute node);
* with ``rest=True``, also ``slurmrestd`` (Slurm's REST API) on 127.0.0.1, authenticating
  requests with JWTs: slurm.conf gets ``AuthAltTypes=auth/jwt`` and a private key file, and
  :meth:`SlurmCluster.token` asks ``scontrol token`` for a token.

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

    python tests-integration/slurm_service.py start [--rest]   # prints SLURM_CONF and the PIDs
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

__all__ = ["SlurmCluster", "ensure_slurm", "ensure_slurm_rest"]

#: Debian packages that bring munged, slurmctld, slurmd and the client commands.
_PACKAGES = ("slurm-wlm", "munge")
#: Debian packages that bring slurmrestd and the JWT authentication plugins.
_REST_PACKAGES = ("slurmrestd", "slurm-wlm-jwt-plugin")
#: The OpenAPI plugin slurmrestd serves (Slurm 22.05's newest job API).
REST_API_VERSION = "v0.0.38"
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


def ensure_slurm_rest() -> None:
    """Install slurmrestd and the JWT plugin with apt when either is missing."""
    ensure_slurm()
    if _which("slurmrestd") and _jwt_plugin():
        return
    apt_install(*_REST_PACKAGES)
    if not (_which("slurmrestd") and _jwt_plugin()):
        raise ServiceError(f"installing {' '.join(_REST_PACKAGES)} did not provide slurmrestd")


def _jwt_plugin() -> bool:
    return any(Path("/usr/lib").glob("*/slurm-wlm/auth_jwt.so")) or any(
        Path("/usr/lib").glob("slurm*/auth_jwt.so")
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
        rest: also run slurmrestd (JWT authentication) on ``rest_port``, a free one when
            omitted; :attr:`rest_url` is its address.
    """

    def __init__(
        self,
        ctld_port: int | None = None,
        slurmd_port: int | None = None,
        *,
        rest: bool = False,
        rest_port: int | None = None,
    ) -> None:
        if rest:
            ensure_slurm_rest()
        else:
            ensure_slurm()
        self.ctld_port = ctld_port or free_port()
        self.slurmd_port = slurmd_port or free_port()
        self.rest = rest
        self.rest_port = rest_port or free_port() if rest else 0
        self.directory = Path(tempfile.mkdtemp(prefix="wove-slurm-"))
        self.directory.chmod(0o755)  # jobs of other users read the configuration
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.directory / "slurm.conf"
        self.munge: WorkerProcess | None = None
        self.ctld: WorkerProcess | None = None
        self.slurmd: WorkerProcess | None = None
        self.restd: WorkerProcess | None = None
        self._write_config()

    @property
    def rest_url(self) -> str:
        """slurmrestd's base URL (``rest=True`` only)."""
        return f"http://127.0.0.1:{self.rest_port}"

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
        jwt = ""
        if self.rest:
            key = d / "jwt.key"
            if not key.exists():
                descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as file:
                    file.write(os.urandom(32))
            jwt = f"AuthAltTypes=auth/jwt\nAuthAltParameters=jwt_key={key}\n"
        self.conf.write_text(
            f"""\
{jwt}ClusterName=wove
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
            if self.rest and self.restd is None:
                self.start_rest()
        except BaseException:
            self.stop(keep_directory=True)  # its logs say why
            raise
        return self

    def start_rest(self) -> None:
        """Start slurmrestd on :attr:`rest_port`, as ``nobody`` (it refuses to run as root).

        ``SLURM_JWT=daemon`` makes it pass each request's own token on to slurmctld.
        """
        if not self.rest:
            raise ServiceError("this cluster was created without rest=True")
        self.restd = WorkerProcess(
            [
                _which("slurmrestd") or "slurmrestd",
                "-f", str(self.conf),
                "-a", "rest_auth/jwt",
                "-s", f"openapi/{REST_API_VERSION}",
                "-u", "nobody",
                f"127.0.0.1:{self.rest_port}",
            ],
            ready=lambda: _listening(self.rest_port),
            env={**self.env, "SLURM_JWT": "daemon"},
            log=self.directory / "slurmrestd.out",
        )  # fmt: skip

    def stop_rest(self) -> None:
        """Stop slurmrestd by its PID and wait until its port is free."""
        restd, self.restd = self.restd, None
        if restd is not None:
            restd.stop()
            _wait_freed(self.rest_port)

    def restart_rest(self) -> None:
        """Stop slurmrestd and start a new one on the same port."""
        self.stop_rest()
        self.start_rest()

    def token(self, username: str = "root", lifespan: int = 3600) -> str:
        """A JWT for ``username`` from ``scontrol token`` (needs ``rest=True``)."""
        out = self.run("scontrol", "token", f"lifespan={lifespan}", f"username={username}")
        name, _, token = out.strip().partition("=")
        if name != "SLURM_JWT" or not token:
            raise ServiceError(f"scontrol token printed {out!r}")
        return token

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
        for attribute in ("restd", "slurmd", "ctld", "munge"):
            process: WorkerProcess | None = getattr(self, attribute)
            setattr(self, attribute, None)
            if process is not None:
                process.stop()
        for port in (self.ctld_port, self.slurmd_port, self.rest_port):
            if port:
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
        for name in ("slurmctld.log", "slurmd.log", "slurmrestd.out"):
            path = self.directory / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


def _main(argv: list[str]) -> int:
    if argv not in (["start"], ["start", "--rest"]):
        print("usage: slurm_service.py start [--rest]", file=sys.stderr)
        return 2
    cluster = SlurmCluster(rest="--rest" in argv).start()
    assert cluster.ctld is not None
    assert cluster.slurmd is not None
    assert cluster.munge is not None
    print(
        f"export SLURM_CONF={cluster.conf}  # munged pid {cluster.munge.process.pid}, slurmctld "
        f"pid {cluster.ctld.process.pid}, slurmd pid {cluster.slurmd.process.pid}; stop all "
        f"with kill -TERM {os.getpid()}",
        flush=True,
    )
    if cluster.restd is not None:
        print(
            f"slurmrestd on {cluster.rest_url} (pid {cluster.restd.process.pid}); "
            f"export $(SLURM_CONF={cluster.conf} scontrol token lifespan=3600 username=root)",
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
