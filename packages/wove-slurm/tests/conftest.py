"""Fresh process-wide state for every test, and a real single-node Slurm cluster.

The cluster is munged, slurmctld and one slurmd on 127.0.0.1, started once per session by
``tests-integration/slurm_service.py`` (each daemon a :class:`backend_services.WorkerProcess`,
stopped by its PID). Environments name its configuration with ``slurm_conf``; the jobs
inherit ``WOVE_SECRET`` from this process through ``sbatch`` (Slurm's default
``--export=ALL``).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wove._config import reset_config
from wove._environments import reset_environments

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services
import slurm_service

# Jobs inherit the secret from this process's environment; environments name it.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

__all__ = ["backend_services", "slurm_environment", "slurm_service"]


@pytest.fixture(autouse=True)
def fresh_configuration() -> Iterator[None]:
    reset_config()
    reset_environments()
    yield
    reset_config()
    reset_environments()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[slurm_service.SlurmCluster]:
    """The session's cluster; the restart test restarts it and waits until it is back."""
    cluster = slurm_service.SlurmCluster().start()
    (cluster.directory / "payloads").mkdir(mode=0o700)
    (cluster.directory / "logs").mkdir()
    yield cluster
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
