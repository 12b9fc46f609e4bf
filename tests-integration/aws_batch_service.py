"""Start (installing where missing) and stop a local AWS Batch that really runs its jobs.

AWS Batch itself cannot run on one machine, so the API is moto's (``moto_server``, a real HTTP
server on 127.0.0.1 and a free port). moto runs every submitted container job through the
Docker API; here that API is served by **podman** (``podman system service``), so each job's
command really executes in a container:

* podman runs rootful with ``runc`` (crun refuses this machine's hybrid cgroups), ``vfs``
  storage, the ``cgroupfs`` manager, host networking and ulimits it is allowed to set -- see
  ``/work/shared/notes/local-services.md`` section 10;
* the image (``localhost/wove-host:latest``) is an almost empty root file system ``podman
  import``-ed here: ``/bin``, ``/lib``... point into ``/usr``, and the job definition bind-mounts
  the host's ``/usr``, this interpreter's installation, its virtual environment, the repository
  and the temporary directory at the same paths (:func:`host_volumes`). A job therefore runs
  *this* Python with *these* packages, and reaches the weave's callback server on 127.0.0.1
  through the host network namespace -- as a production image would hold the same code;
* moto is told ``MOTO_DOCKER_NETWORK_MODE=host`` so it starts every container that way.

Both processes run in process groups of their own and are stopped by PID. moto keeps its
state in memory: a restart forgets queues and definitions, so :func:`create_job_queue` is run
again after one.

Usable from test fixtures (:class:`LocalBatch`) and from a shell::

    python tests-integration/aws_batch_service.py start   # prints the endpoint and the PIDs
    kill -TERM -- -<moto pid>; kill -TERM -- -<podman pid>  # each leads its process group
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend_services import ServiceError, WorkerProcess, apt_install, free_port

__all__ = [
    "IMAGE",
    "REGION",
    "LocalBatch",
    "Podman",
    "create_job_queue",
    "ensure_moto",
    "host_volumes",
]

REGION = "us-east-1"
#: The image every test job definition names; it exists only in this podman's storage.
IMAGE = "localhost/wove-host:latest"
REPOSITORY = Path(__file__).resolve().parent.parent
_CONTAINERS_CONF = """\
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[containers]
netns = "host"
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
"""


def ensure_moto() -> None:
    """Install moto's server and the Docker client it drives podman with, when missing."""
    wanted = ("moto", "flask", "docker")
    if all(importlib.util.find_spec(name) is not None for name in wanted):
        return
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "moto[server,batch]>=5.1"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ServiceError(
            f"`pip install 'moto[server,batch]'` failed; install it by hand:\n{done.stderr[-2000:]}"
        )


def _ensure_podman() -> None:
    if shutil.which("podman") is None or shutil.which("runc") is None:
        apt_install("podman", "runc")


def host_volumes() -> list[tuple[str, str]]:
    """``(name, host path)`` of every directory a job needs to run this interpreter: ``/usr``,
    the Python installation and virtual environment, the repository (editable installs point
    into it) and the temporary directory (tests share files with tasks there). Nested paths are
    dropped: their parent's bind mount already holds them."""
    candidates = [
        "/usr",
        sys.base_prefix,
        sys.prefix,
        str(Path(sys.executable).resolve().parent.parent),
        str(REPOSITORY),
        tempfile.gettempdir(),
    ]
    paths: list[str] = []
    for path in sorted({os.path.realpath(candidate) for candidate in candidates}, key=len):
        if not any(path == kept or path.startswith(kept + "/") for kept in paths):
            paths.append(path)
    return [(f"host{index}", path) for index, path in enumerate(paths)]


def _ping(socket_path: Path) -> bool:
    done = subprocess.run(
        ["curl", "-sf", "--unix-socket", str(socket_path), "http://d/_ping"],
        capture_output=True,
    )
    return done.returncode == 0


class Podman:
    """A rootful ``podman system service`` on a Unix socket of its own, with the host image."""

    def __init__(self, directory: Path) -> None:
        _ensure_podman()
        self.directory = directory
        self.socket = directory / "podman.sock"
        self.conf = directory / "containers.conf"
        self.process: WorkerProcess | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(_CONTAINERS_CONF)
        for name in ("root", "run", "tmp"):
            (directory / name).mkdir(exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {"CONTAINERS_CONF": str(self.conf)}

    def command(self, *args: str) -> list[str]:
        d = self.directory
        return [
            "podman",
            "--root", str(d / "root"),
            "--runroot", str(d / "run"),
            "--tmpdir", str(d / "tmp"),
            "--storage-driver", "vfs",
            *args,
        ]  # fmt: skip

    def import_image(self) -> None:
        """``podman import`` a root file system whose ``/bin``, ``/lib``... point into ``/usr``."""
        listed = subprocess.run(
            self.command("image", "exists", IMAGE), env={**os.environ, **self.env}
        )
        if listed.returncode == 0:
            return
        tree = self.directory / "rootfs"
        for name in ("usr", "tmp", "etc", "proc", "dev", "sys", "root", "work"):
            (tree / name).mkdir(parents=True, exist_ok=True)
        for name in ("bin", "lib", "lib64", "sbin"):
            link = tree / name
            if not link.is_symlink():
                link.symlink_to(f"usr/{name}")
        (tree / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        archive = self.directory / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(tree, arcname=".")
        done = subprocess.run(
            self.command("import", str(archive), IMAGE),
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ServiceError(f"podman import failed:\n{done.stderr[-2000:]}")

    def start(self) -> None:
        self.import_image()
        self.socket.unlink(missing_ok=True)
        self.process = WorkerProcess(
            self.command("system", "service", "--time=0", f"unix://{self.socket}"),
            ready=lambda: _ping(self.socket),
            env=self.env,
            log=self.directory / "podman.log",
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        leftovers = subprocess.run(
            self.command("ps", "-aq"), env={**os.environ, **self.env}, capture_output=True
        )
        if leftovers.stdout.strip():
            subprocess.run(
                self.command("rm", "-f", *leftovers.stdout.decode().split()),
                env={**os.environ, **self.env},
                capture_output=True,
            )


class LocalBatch:
    """moto's AWS API on 127.0.0.1, running Batch jobs as podman containers.

    Args:
        port: moto's port; a free one when omitted. :meth:`restart` keeps it.
        podman: a running :class:`Podman` to share (it is then not stopped here); by default
            a new one is started with the server.
    """

    def __init__(self, port: int | None = None, *, podman: Podman | None = None) -> None:
        ensure_moto()
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="wove-batch-"))
        self.podman = podman or Podman(self.directory / "podman")
        self._owns_podman = podman is None
        self.moto: WorkerProcess | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    def start(self) -> LocalBatch:
        if self.podman.process is None:
            self.podman.start()
        moto_server = str(Path(sys.executable).with_name("moto_server"))
        env = {
            "DOCKER_HOST": f"unix://{self.podman.socket}",
            "MOTO_DOCKER_NETWORK_MODE": "host",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        self.moto = WorkerProcess(
            [moto_server, "-H", "127.0.0.1", "-p", str(self.port)],
            ready=self._answers,
            env=env,
            log=self.directory / "moto.log",
        )
        return self

    def stop_moto(self) -> None:
        if self.moto is not None:
            self.moto.stop()
            self.moto = None

    def restart(self) -> None:
        """Stop moto and start it again on the same port; its state is gone afterwards."""
        self.stop_moto()
        self.start()

    def stop(self) -> None:
        """Stop moto, and podman when this server started it; remove their files."""
        self.stop_moto()
        if self._owns_podman:
            self.podman.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def client(self, service: str = "batch") -> Any:
        import boto3

        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def output(self) -> str:
        return self.moto.output() if self.moto is not None else ""

    def hold_jobs(self, seconds: float = 3600) -> None:
        """Make every job wait ``seconds`` in each state before moving on (moto's state
        manager), so a job stays SUBMITTED -- queued -- as on a busy queue. moto otherwise
        starts every job at once."""
        body = {
            "model_name": "batch::job",
            "transition": {"progression": "time", "seconds": seconds},
        }
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/state-manager/set-transition",
            data=json.dumps(body).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def containers(self, name_prefix: str) -> list[str]:
        """Ids of the running containers whose name starts with ``name_prefix`` (moto names
        each one ``<job name>-<job id>``)."""
        done = subprocess.run(
            self.podman.command("ps", "-q", "--filter", f"name=^{name_prefix}"),
            env={**os.environ, **self.podman.env},
            capture_output=True,
            text=True,
        )
        return done.stdout.split()

    def kill_container(self, container: str) -> None:
        """SIGKILL a job's container from outside, as when its instance dies."""
        subprocess.run(
            self.podman.command("kill", container),
            env={**os.environ, **self.podman.env},
            capture_output=True,
        )


def create_job_queue(batch: LocalBatch, name: str = "wove") -> str:
    """Create what a Batch job queue needs in moto (IAM role and instance profile, VPC, subnet,
    security group, a managed compute environment) and the queue; return the queue's name."""
    iam, ec2, client = batch.client("iam"), batch.client("ec2"), batch.client("batch")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "batch.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))
    profile = iam.create_instance_profile(InstanceProfileName=f"{name}-profile")
    iam.add_role_to_instance_profile(InstanceProfileName=f"{name}-profile", RoleName=f"{name}-role")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"{name}-sg", Description="wove", VpcId=vpc)
    environment = client.create_compute_environment(
        computeEnvironmentName=f"{name}-compute",
        type="MANAGED",
        state="ENABLED",
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": 2,
            "desiredvCpus": 0,
            "instanceTypes": ["optimal"],
            "subnets": [subnet],
            "securityGroupIds": [group["GroupId"]],
            "instanceRole": profile["InstanceProfile"]["Arn"],
        },
        serviceRole=role["Role"]["Arn"],
    )
    client.create_job_queue(
        jobQueueName=name,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}
        ],
    )
    for other in (iam, ec2, client):
        other.close()
    return name


def _main(argv: list[str]) -> int:
    if argv != ["start"]:
        print("usage: aws_batch_service.py start", file=sys.stderr)
        return 2
    batch = LocalBatch().start()
    queue = create_job_queue(batch)
    assert batch.moto is not None
    assert batch.podman.process is not None
    print(f"endpoint_url={batch.endpoint_url} job_queue={queue} image={IMAGE}")
    print(f"moto pid={batch.moto.process.pid} podman pid={batch.podman.process.process.pid}")
    print(f"podman: CONTAINERS_CONF={batch.podman.conf} {' '.join(batch.podman.command())}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
