"""A real single-node Slurm cluster.

The cluster is munged, slurmctld, one slurmd and slurmrestd (JWT authentication) on
127.0.0.1, started once per session by ``tests-integration/slurm_service.py`` (each daemon a
:class:`backend_services.WorkerProcess`, stopped by its PID). REST environments read a token
from ``scontrol token`` out of :data:`TOKEN_VARIABLE`. CLI environments name the cluster's
configuration with ``slurm_conf``; the jobs inherit ``WOVE_SECRET`` from this process
through ``sbatch`` (Slurm's default ``--export=ALL``) or slurmrestd's ``environment``.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wove.testing import stop_environments

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services
import slurm_service

# Jobs inherit the secret from this process's environment; environments name it.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

__all__ = [
    "GUARD",
    "TOKEN_VARIABLE",
    "backend_services",
    "slurm_environment",
    "slurm_rest_environment",
    "slurm_service",
]

#: A guard so that no test can hang: every weave fails after this many seconds.
GUARD = 60.0
#: Keeps a job queued (Reason=BeginTime) for an hour.
LATER = "--begin=now+3600"
#: The variable REST environments take slurmrestd's token from (``rest_token="env:..."``).
TOKEN_VARIABLE = "WOVE_TEST_SLURM_JWT"


@pytest.fixture
def environments() -> Iterator[list[str]]:
    """Names of environments a test configured; their executors are stopped afterwards."""
    names: list[str] = []
    yield names
    stop_environments(*names, timeout=GUARD)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[slurm_service.SlurmCluster]:
    """The session's cluster; the restart test restarts it and waits until it is back."""
    cluster = slurm_service.SlurmCluster(rest=True).start()
    (cluster.directory / "payloads").mkdir(mode=0o700)
    (cluster.directory / "logs").mkdir()
    os.environ[TOKEN_VARIABLE] = cluster.token(lifespan=7200)
    yield cluster
    os.environ.pop(TOKEN_VARIABLE, None)
    cluster.stop()


def slurm_environment(cluster: slurm_service.SlurmCluster, **extra: Any) -> dict[str, Any]:
    """A ``slurm`` environment on ``cluster``; job output is kept in its ``logs`` directory."""
    return {
        "executor": "slurm",
        "executor_config": {
            "slurm_conf": str(cluster.conf),
            "payload_dir": str(cluster.directory / "payloads"),
            "sbatch_options": [f"--output={cluster.directory / 'logs'}/job-%j.out"],
            "security": "env:WOVE_SECRET",
            "worker_heartbeat_seconds": 0.5,
            "status_interval": 0.25,
            **extra,
        },
    }


def slurm_rest_environment(cluster: slurm_service.SlurmCluster, **extra: Any) -> dict[str, Any]:
    """A ``slurm`` environment on ``cluster`` in REST mode (slurmrestd, JWT from
    :data:`TOKEN_VARIABLE`); job output is kept in its ``logs`` directory."""
    return {
        "executor": "slurm",
        "executor_config": {
            "mode": "rest",
            "rest_url": cluster.rest_url,
            "rest_token": f"env:{TOKEN_VARIABLE}",
            "payload_dir": str(cluster.directory / "payloads"),
            "rest_job_fields": {"standard_output": f"{cluster.directory / 'logs'}/job-%j.out"},
            "security": "env:WOVE_SECRET",
            "worker_heartbeat_seconds": 0.5,
            "status_interval": 0.25,
            **extra,
        },
    }


def jobs_named(cluster: slurm_service.SlurmCluster, name: str) -> dict[str, str]:
    """Slurm's view: job id -> state of every job called ``name`` (finished ones included)."""
    out = cluster.run("squeue", "-h", "-t", "all", "-n", name, "-o", "%i|%T")
    return dict(line.split("|", 1) for line in out.split())


def job_fields(cluster: slurm_service.SlurmCluster, slurm_id: str) -> dict[str, str]:
    out = cluster.run("scontrol", "show", "job", slurm_id, "-o")
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def only_job(cluster: slurm_service.SlurmCluster, name: str) -> str:
    jobs = jobs_named(cluster, name)
    assert len(jobs) == 1, f"expected one job named {name!r}, Slurm has {jobs}"
    return next(iter(jobs))


def payload_files(cluster: slurm_service.SlurmCluster) -> list[Path]:
    return sorted((cluster.directory / "payloads").iterdir())


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"
