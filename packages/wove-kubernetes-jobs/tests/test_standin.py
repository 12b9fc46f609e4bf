"""The stand-in API server's contract, pinned with the official ``kubernetes`` client alone (no
Wove): what the adapter relies on must behave as Kubernetes does, or the other tests prove
nothing. See ``tests-integration/k8s_standin.py`` for what it does not emulate."""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .conftest import backend_services, k8s_standin

WAIT = 30.0
NAMESPACE = "standin-contract"


@pytest.fixture
def batch(api: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def python_job(name: str, code: str, **spec: Any) -> client.V1Job:
    container = client.V1Container(
        name="main", image="ignored:latest", command=[sys.executable, "-c", code]
    )
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, labels={"suite": "standin"}),
        spec=client.V1JobSpec(
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(restart_policy="Never", containers=[container])
            ),
            **spec,
        ),
    )


def finished(batch: client.BatchV1Api, name: str) -> client.V1Job:
    def done() -> bool:
        status = batch.read_namespaced_job_status(name, NAMESPACE).status
        return bool(status and status.conditions)

    backend_services.wait_until(done, WAIT, f"Job {name} finishing")
    job: client.V1Job = batch.read_namespaced_job_status(name, NAMESPACE)
    return job


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def test_discovery_and_version(api: client.ApiClient) -> None:
    assert client.VersionApi(api).get_code().git_version == k8s_standin.GIT_VERSION
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(api).get_api_versions().groups
    assert [group.name for group in groups] == ["batch"]
    resources = client.BatchV1Api(api).get_api_resources().resources
    assert {resource.name for resource in resources} == {"jobs", "jobs/status"}


def test_job_lifecycle(batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    name = unique("ok")
    created = batch.create_namespaced_job(NAMESPACE, python_job(name, "print('hi')"))
    assert created.kind == "Job"
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    assert created.spec.backoff_limit == 6  # the API's default

    job = finished(batch, name)
    assert job.status.succeeded == 1
    assert job.status.active is None
    assert job.status.start_time is not None
    assert job.status.completion_time is not None
    assert [c.type for c in job.status.conditions] == ["Complete"]
    assert int(job.metadata.resource_version) > int(created.metadata.resource_version)
    assert batch.read_namespaced_job(name, NAMESPACE).metadata.uid == created.metadata.uid

    listed = batch.list_namespaced_job(NAMESPACE, label_selector="suite=standin")
    assert listed.kind == "JobList"
    assert name in [item.metadata.name for item in listed.items]
    assert batch.list_namespaced_job(NAMESPACE, label_selector="suite!=standin").items == []

    (pod,) = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert pod.metadata.owner_references[0].uid == created.metadata.uid

    # Clients up to 36 deserialize the answer as a V1Status; 37 returns the plain dict.
    status = batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")
    if not isinstance(status, dict):
        status = {"kind": status.kind, "status": status.status}
    assert (status["kind"], status["status"]) == ("Status", "Success")
    with pytest.raises(ApiException) as missing:
        batch.read_namespaced_job(name, NAMESPACE)
    assert missing.value.status == 404
    assert core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items == []


def test_failure_honours_backoff_limit_zero(batch: client.BatchV1Api) -> None:
    name = unique("fails")
    batch.create_namespaced_job(NAMESPACE, python_job(name, "raise SystemExit(3)", backoff_limit=0))
    job = finished(batch, name)
    assert job.status.failed == 1
    (condition,) = job.status.conditions
    assert (condition.type, condition.reason) == ("Failed", "BackoffLimitExceeded")


def test_backoff_limit_retries_with_a_new_pod(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    name = unique("retries")
    batch.create_namespaced_job(NAMESPACE, python_job(name, "raise SystemExit(1)", backoff_limit=1))
    job = finished(batch, name)
    assert job.status.failed == 2
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
    assert sorted(pod.status.phase for pod in pods) == ["Failed", "Failed"]


def test_active_deadline_kills_the_pod(batch: client.BatchV1Api) -> None:
    name = unique("deadline")
    batch.create_namespaced_job(
        NAMESPACE,
        python_job(name, "import time; time.sleep(60)", backoff_limit=0, active_deadline_seconds=1),
    )
    job = finished(batch, name)
    assert job.status.conditions[0].reason == "DeadlineExceeded"


def test_deleting_the_pod_fails_the_job(batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    name = unique("podgone")
    batch.create_namespaced_job(
        NAMESPACE, python_job(name, "import time; time.sleep(60)", backoff_limit=0)
    )

    def running() -> bool:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
        return bool(pods) and pods[0].status.phase == "Running"

    backend_services.wait_until(running, WAIT, "the Pod running")
    (pod,) = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
    assert core.read_namespaced_pod(pod.metadata.name, NAMESPACE).status.phase == "Running"
    deleted = core.delete_namespaced_pod(pod.metadata.name, NAMESPACE)
    assert deleted.metadata.deletion_timestamp is not None
    job = finished(batch, name)
    assert job.status.failed == 1
    assert job.status.conditions[0].reason == "BackoffLimitExceeded"


def test_ttl_deletes_the_finished_job(batch: client.BatchV1Api) -> None:
    name = unique("ttl")
    batch.create_namespaced_job(NAMESPACE, python_job(name, "pass", ttl_seconds_after_finished=0))

    def gone() -> bool:
        try:
            batch.read_namespaced_job(name, NAMESPACE)
        except ApiException as error:
            return error.status == 404
        return False

    backend_services.wait_until(gone, WAIT, "the Job deleted by its TTL")


@pytest.fixture
def secret_name(core: client.CoreV1Api) -> Iterator[str]:
    name = unique("secret")
    yield name
    with contextlib.suppress(ApiException):  # deleted by the test already
        core.delete_namespaced_secret(name, NAMESPACE)


def test_secrets_env_and_volumes_reach_the_process(
    batch: client.BatchV1Api, core: client.CoreV1Api, secret_name: str
) -> None:
    secret = core.create_namespaced_secret(
        NAMESPACE,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=secret_name),
            string_data={"token": "from-env", "file": "from-volume"},
        ),
    )
    assert secret.data == {"token": "ZnJvbS1lbnY=", "file": "ZnJvbS12b2x1bWU="}
    assert secret.string_data is None
    assert core.read_namespaced_secret(secret_name, NAMESPACE).metadata.uid == secret.metadata.uid
    code = (
        "import os, sys; "
        "ok = os.environ['TOKEN'] == 'from-env' and open(sys.argv[1]).read() == 'from-volume'; "
        "ok = ok and 'WOVE_SECRET' not in os.environ; raise SystemExit(0 if ok else 1)"
    )
    job = python_job(unique("secrets"), code, backoff_limit=0)
    container = job.spec.template.spec.containers[0]
    container.args = ["/etc/app/file"]
    container.env = [
        client.V1EnvVar(
            name="TOKEN",
            value_from=client.V1EnvVarSource(
                secret_key_ref=client.V1SecretKeySelector(name=secret_name, key="token")
            ),
        )
    ]
    container.volume_mounts = [client.V1VolumeMount(name="app", mount_path="/etc/app")]
    job.spec.template.spec.volumes = [
        client.V1Volume(name="app", secret=client.V1SecretVolumeSource(secret_name=secret_name))
    ]
    created = batch.create_namespaced_job(NAMESPACE, job)
    assert finished(batch, created.metadata.name).status.succeeded == 1

    # Owned by the Job through a patch, the Secret goes with it.
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": created.metadata.name}
    owner["uid"] = created.metadata.uid
    core.patch_namespaced_secret(secret_name, NAMESPACE, {"metadata": {"ownerReferences": [owner]}})
    batch.delete_namespaced_job(created.metadata.name, NAMESPACE, propagation_policy="Background")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_secret(secret_name, NAMESPACE)
    assert gone.value.status == 404


def test_errors_are_status_objects(batch: client.BatchV1Api) -> None:
    name = unique("twice")
    batch.create_namespaced_job(NAMESPACE, python_job(name, "pass"))
    with pytest.raises(ApiException) as duplicate:
        batch.create_namespaced_job(NAMESPACE, python_job(name, "pass"))
    assert duplicate.value.status == 409
    assert '"reason": "AlreadyExists"' in duplicate.value.body
    with pytest.raises(ApiException) as invalid:
        batch.create_namespaced_job(NAMESPACE, python_job("Not_Valid", "pass"))
    assert invalid.value.status == 422
    bad_label = python_job(unique("label"), "pass")
    bad_label.metadata.labels = {"key": "has spaces"}
    with pytest.raises(ApiException) as label:
        batch.create_namespaced_job(NAMESPACE, bad_label)
    assert label.value.status == 422
    with pytest.raises(ApiException) as missing:
        batch.delete_namespaced_job(unique("never"), NAMESPACE)
    assert missing.value.status == 404
    assert '"kind": "Status"' in missing.value.body
