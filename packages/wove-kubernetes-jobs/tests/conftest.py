"""A real (stand-in) Kubernetes API.

No Kubernetes API server can be installed on the test machines, so the tests run against
``tests-integration/k8s_standin.py``: an aiohttp server speaking the ``batch/v1`` Job and
``v1`` Secret/Pod API the official client uses, whose "kubelet" runs each Job's container
command as a local process (the image is ignored; ``python`` is this interpreter). Its module
docstring lists what it does not emulate. One stand-in serves the session; tests that restart
it start their own.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests-integration"))
import backend_services
import k8s_standin

# Workers read the secret from WOVE_SECRET (which the adapter passes through a Secret); the
# environments name the same variable. The stand-in does not hand its own environment to Pods.
os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

__all__ = ["NAMESPACE", "backend_services", "k8s_config", "k8s_standin"]

NAMESPACE = "wove-tests"
#: The image is ignored by the stand-in; it is what a real cluster would pull.
IMAGE = "python:3.12-slim"


def k8s_config(host: str | None, **extra: Any) -> dict[str, Any]:
    """An executor_config for the stand-in at ``host``; ``python`` is this interpreter, which
    has wove-core installed, as the image's ``python`` would."""
    config: dict[str, Any] = {
        "security": "env:WOVE_SECRET",
        "worker_heartbeat_seconds": 0.5,
        "status_interval": 0.25,
        "namespace": NAMESPACE,
        "image": IMAGE,
        "python": sys.executable,
        **extra,
    }
    if host is not None:
        config["host"] = host
    return config


@pytest.fixture(scope="session")
def standin() -> Iterator[k8s_standin.StandIn]:
    """The session's stand-in API server, stopped (with every Pod process) at the end."""
    server = k8s_standin.StandIn.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api(standin: k8s_standin.StandIn) -> Iterator[client.ApiClient]:
    """The official client on the stand-in, for looking at objects the way Kubernetes shows
    them."""
    configuration = client.Configuration()
    configuration.host = standin.url
    api_client = client.ApiClient(configuration)
    yield api_client
    api_client.close()  # type: ignore[no-untyped-call]


def read_job(api: client.ApiClient, name: str) -> client.V1Job | None:
    try:
        return client.BatchV1Api(api).read_namespaced_job(name, NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def read_secret(api: client.ApiClient, name: str) -> client.V1Secret | None:
    try:
        return client.CoreV1Api(api).read_namespaced_secret(name, NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def pods_of(api: client.ApiClient, job_name: str) -> list[client.V1Pod]:
    pods = client.CoreV1Api(api).list_namespaced_pod(
        NAMESPACE, label_selector=f"job-name={job_name}"
    )
    return list(pods.items)
