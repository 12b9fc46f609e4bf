"""The ``kubernetes_jobs`` executor against the stand-in API: what the conformance suite cannot
see from outside -- the Jobs, Secrets and Pods as the official client shows them, Pods deleted
from outside, configuration mistakes. A Pod's process killed, an API server restarted between
weaves and cancelling for real are scenarios of the conformance kit (test_conformance.py)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import wove
import wove.testing
from wove import weave
from wove.testing import configure_executor
from wove_kubernetes_jobs import (
    PAYLOAD_FILE,
    KubernetesJobsExecutor,
    kubernetes_label_value,
    kubernetes_name,
)

from .conftest import (
    NAMESPACE,
    backend_services,
    k8s_config,
    k8s_standin,
    pods_of,
    read_job,
    read_secret,
)

HANG_GUARD = 60.0
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def configure(**environments: dict[str, Any]) -> None:
    configure_executor("kubernetes_jobs", **environments)


def executor_of(name: str) -> KubernetesJobsExecutor:
    executor = wove.testing.executor_of(name)
    assert isinstance(executor, KubernetesJobsExecutor)
    return executor


def answer_in(environment: str, **options: Any) -> int:
    return wove.testing.answer_in(environment, delivery_timeout=HANG_GUARD, **options)


def pid_reporting_blocker(started: Path, release: Path) -> Callable[[], int]:
    """A task body that writes its process id to ``started``, then waits for ``release``."""
    started_at, release_at = str(started), str(release)

    def stuck() -> int:
        with open(started_at + ".tmp", "w") as marker:
            marker.write(str(os.getpid()))
        os.replace(started_at + ".tmp", started_at)  # whole, or not there at all
        deadline = time.monotonic() + 60
        while not os.path.exists(release_at) and time.monotonic() < deadline:
            time.sleep(0.01)
        return os.getpid()

    return stuck


# -- (a) the Pod deleted from outside -----------------------------------------------------------
def test_pod_deleted_mid_task_fails_the_weave_clearly(
    standin: k8s_standin.StandIn, api: client.ApiClient, tmp_path: Path
) -> None:
    """``kubectl delete pod`` ends the only attempt: with backoffLimit 0 Kubernetes marks the
    Job failed, and the next status poll orphans the run, quoting it. (The Pod's process killed
    instead is the conformance kit's killed-worker scenario.)"""
    configure(k8s=k8s_config(standin.url))
    key = f"lost-delete-pod-{secrets.token_hex(3)}"
    started, release = tmp_path / "started", tmp_path / "release"
    body = pid_reporting_blocker(started, release)

    def lose_the_pod() -> None:
        backend_services.wait_until(started.exists, HANG_GUARD, "the task starting")
        (pod,) = pods_of(api, key)
        client.CoreV1Api(api).delete_namespaced_pod(pod.metadata.name, NAMESPACE)

    killer = threading.Thread(target=lose_the_pod)
    killer.start()
    try:
        with (
            pytest.raises(wove.DeliveryOrphanedError) as caught,
            weave(environment="k8s", delivery_timeout=HANG_GUARD) as w,
        ):
            w.do(body, delivery_idempotency_key=key)
    finally:
        killer.join(HANG_GUARD)
        release.touch()
    message = str(caught.value)
    assert "stuck" in message
    if "sent nothing" not in message:  # the status poll, not the silence, noticed first
        assert f"kubernetes_jobs reports job '{key}' failed" in message
        assert "BackoffLimitExceeded" in message
        assert "no pod of it is left" in message
    job = read_job(api, key)
    assert job is not None
    assert job.status.failed == 1
    assert answer_in("k8s") == 42


# -- (b) names, labels and the idempotency key -------------------------------------------------
ODD_KEYS = [
    "Order 7/EU",
    "ünïcødé ключ",
    "-leading.and.trailing-",
    "x" * 200,
    "UPPER_case.key",
    "9-starts-with-a-digit",
]


def _named(name: str, value: int) -> Callable[[], int]:
    def task() -> int:
        return value

    task.__name__ = task.__qualname__ = name
    return task


def test_job_names_and_labels_are_valid_for_odd_idempotency_keys(
    standin: k8s_standin.StandIn, api: client.ApiClient
) -> None:
    """The stand-in refuses invalid names and labels as Kubernetes does (422), so every task
    succeeding proves them valid; the Job is found by the name kubernetes_name gives."""
    configure(k8s=k8s_config(standin.url, ttl_seconds_after_finished=None))
    suffix = secrets.token_hex(3)
    keys = [f"{key} {suffix}" for key in ODD_KEYS]
    with weave(environment="k8s", delivery_timeout=HANG_GUARD) as w:
        for index, key in enumerate(keys):
            w.do(delivery_idempotency_key=key)(_named(f"odd_{index}", index))

    assert [w.result[f"odd_{index}"] for index in range(len(keys))] == list(range(len(keys)))
    names = [kubernetes_name(key) for key in keys]
    assert len(set(names)) == len(names)
    for key, name in zip(keys, names, strict=True):
        assert len(name) <= 63
        assert _DNS_LABEL.fullmatch(name), name
        job = read_job(api, name)
        assert job is not None
        assert job.metadata.annotations["wove.dev/idempotency-key"] == key
        labels = job.metadata.labels
        assert labels["app.kubernetes.io/managed-by"] == "wove"
        assert all(len(value) <= 63 and _LABEL_VALUE.fullmatch(value) for value in labels.values())
        run_id = labels["wove.dev/run-id"]
        listed = client.BatchV1Api(api).list_namespaced_job(
            NAMESPACE, label_selector=f"wove.dev/run-id={run_id}"
        )
        assert [item.metadata.name for item in listed.items] == [name]


def test_job_name_is_the_idempotency_key_and_a_second_copy_is_a_duplicate(
    standin: k8s_standin.StandIn, api: client.ApiClient
) -> None:
    configure(k8s=k8s_config(standin.url))
    key = f"invoice-{secrets.token_hex(4)}"

    assert answer_in("k8s", delivery_idempotency_key=key) == 42

    # The outcome reaches the weave before the worker process exits and the Job completes.
    backend_services.wait_until(
        lambda: read_job(api, key).status.succeeded == 1, HANG_GUARD, "the Job complete"
    )
    job = read_job(api, key)
    assert job is not None
    assert job.spec.ttl_seconds_after_finished == 300
    with pytest.raises(wove.EnvironmentExecutionError, match=f"refused job '{key}' as a duplicate"):
        answer_in("k8s", delivery_idempotency_key=key)


def test_run_id_names_the_job_without_a_key(
    standin: k8s_standin.StandIn, api: client.ApiClient
) -> None:
    configure(k8s=k8s_config(standin.url))
    before = {
        job.metadata.name
        for job in client.BatchV1Api(api)
        .list_namespaced_job(NAMESPACE, label_selector="wove.dev/task=answer")
        .items
    }
    assert answer_in("k8s") == 42
    after = client.BatchV1Api(api).list_namespaced_job(
        NAMESPACE, label_selector="wove.dev/task=answer"
    )
    (new,) = [job for job in after.items if job.metadata.name not in before]
    assert new.metadata.name == new.metadata.labels["wove.dev/run-id"]


def test_name_rules() -> None:
    assert kubernetes_name("invoice-42") == "invoice-42"
    assert kubernetes_name("Order 7/EU").startswith("order-7-eu-")
    assert kubernetes_name("a b") != kubernetes_name("a/b")
    assert kubernetes_name("!!!").startswith("wove-")
    for text in ["x" * 63, "x" * 64, "-x-", "Ünï", "a" * 300]:
        name = kubernetes_name(text)
        assert len(name) <= 63
        assert _DNS_LABEL.fullmatch(name), name
        value = kubernetes_label_value(text)
        assert len(value) <= 63
        assert _LABEL_VALUE.fullmatch(value), value
    assert kubernetes_label_value("My_Task.v2") == "My_Task.v2"


# -- (c) large arguments and the payload modes -------------------------------------------------
def test_a_ten_megabyte_argument_gets_through(standin: k8s_standin.StandIn) -> None:
    """Too large for a Secret: the Secret carries a signed reference and the worker fetches the
    payload from the callback server."""
    configure(k8s=k8s_config(standin.url))
    blob = secrets.token_bytes(10 * 1024 * 1024)

    with weave(environment="k8s", delivery_timeout=HANG_GUARD) as w:

        @w.do
        def digest(payload: bytes = blob) -> str:
            return hashlib.sha256(payload).hexdigest()

    assert w.result.digest == hashlib.sha256(blob).hexdigest()


@pytest.mark.parametrize("mode", ["secret", "fetch"])
def test_payload_modes_put_the_payload_or_a_reference_in_the_secret(
    standin: k8s_standin.StandIn, api: client.ApiClient, mode: str
) -> None:
    configure(k8s=k8s_config(standin.url, payload=mode, ttl_seconds_after_finished=None))
    key = f"payload-{mode}-{secrets.token_hex(3)}"
    text = "wove" * 20_000  # 80 kB: inline in "secret" mode

    with weave(environment="k8s", delivery_timeout=HANG_GUARD) as w:

        @w.do(delivery_idempotency_key=key)
        def length(payload: str = text) -> int:
            return len(payload)

    assert w.result.length == len(text)
    secret = read_secret(api, key)
    assert secret is not None
    payload = base64.b64decode(secret.data["payload"])
    if mode == "secret":
        assert len(payload) > len(text)
    else:
        assert len(payload) < 2048
        assert b"payload_ref" in payload


# -- (d) the Job as documented -----------------------------------------------------------------
def test_the_job_runs_the_documented_command_with_the_secret_from_a_secret(
    standin: k8s_standin.StandIn, api: client.ApiClient
) -> None:
    seen: list[client.V1Job] = []

    def template(job: client.V1Job) -> client.V1Job:
        seen.append(job)
        job.metadata.labels["team"] = "data"
        return job

    configure(
        k8s=k8s_config(
            standin.url,
            ttl_seconds_after_finished=None,
            env={"APP_MODE": "batch"},
            labels={"example.com/owner": "wove-tests"},
            resources={"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}},
            job_template=template,
            callback_token="token-" + secrets.token_hex(8),
        )
    )
    key = f"documented-{secrets.token_hex(3)}"

    with weave(environment="k8s", delivery_timeout=HANG_GUARD) as w:

        @w.do(delivery_idempotency_key=key)
        def environment() -> dict[str, str]:
            return {name: os.environ.get(name, "") for name in ("APP_MODE", "WOVE_SECRET")}

    assert w.result.environment == {"APP_MODE": "batch", "WOVE_SECRET": os.environ["WOVE_SECRET"]}
    assert len(seen) == 1
    job = read_job(api, key)
    assert job is not None
    assert job.metadata.labels["team"] == "data"
    assert job.metadata.labels["example.com/owner"] == "wove-tests"
    assert job.spec.backoff_limit == 0
    pod = job.spec.template.spec
    assert pod.restart_policy == "Never"
    (container,) = pod.containers
    assert container.image == "python:3.12-slim"
    assert container.command == [
        sys.executable,
        "-m",
        "wove.backend_worker",
        "--payload-file",
        PAYLOAD_FILE,
    ]
    assert container.resources.limits == {"memory": "256Mi"}
    plain = {env.name: env.value for env in container.env if env.value is not None}
    assert plain == {"APP_MODE": "batch"}, "a secret travelled as a plain value"
    from_secret = {
        env.name: env.value_from.secret_key_ref.name for env in container.env if env.value_from
    }
    assert from_secret == {"WOVE_SECRET": key, "WOVE_CALLBACK_TOKEN": key}
    (mount,) = container.volume_mounts
    assert PAYLOAD_FILE.startswith(mount.mount_path + "/")
    secret = read_secret(api, key)
    assert secret is not None
    (owner,) = secret.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Job", key, job.metadata.uid)


def test_worker_secret_names_a_secret_of_yours(
    standin: k8s_standin.StandIn, api: client.ApiClient
) -> None:
    shared = f"wove-shared-{secrets.token_hex(3)}"
    client.CoreV1Api(api).create_namespaced_secret(
        NAMESPACE,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=shared),
            string_data={"WOVE_SECRET": os.environ["WOVE_SECRET"]},
        ),
    )
    configure(k8s=k8s_config(standin.url, worker_secret=shared, ttl_seconds_after_finished=None))
    key = f"shared-{secrets.token_hex(3)}"

    assert answer_in("k8s", delivery_idempotency_key=key) == 42

    secret = read_secret(api, key)
    assert secret is not None
    assert set(secret.data) == {"payload"}, "the shared secret was copied into the run's Secret"
    job = read_job(api, key)
    assert job is not None
    refs = {
        env.name: env.value_from.secret_key_ref.name
        for env in job.spec.template.spec.containers[0].env
        if env.value_from
    }
    assert refs["WOVE_SECRET"] == shared


def test_ttl_zero_deletes_the_finished_job_with_its_secret(
    standin: k8s_standin.StandIn, api: client.ApiClient
) -> None:
    configure(k8s=k8s_config(standin.url, ttl_seconds_after_finished=0))
    key = f"ttl-{secrets.token_hex(3)}"

    assert answer_in("k8s", delivery_idempotency_key=key) == 42

    backend_services.wait_until(lambda: read_job(api, key) is None, HANG_GUARD, "Job deleted")
    assert read_secret(api, key) is None


# -- (e) configuration mistakes ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"image": None}, r"image is required: the container image the Jobs run"),
        ({"namespace": "Not_A_Namespace"}, r"namespace must be a Kubernetes namespace name"),
        ({"host": 6443}, r"host must be the API server's http:// or https:// URL"),
        ({"host": "127.0.0.1:6443"}, r"got '127\.0\.0\.1:6443'"),
        ({"context": "prod"}, r"set only one of api_client, host"),
        ({"python": 3}, r"python must be the interpreter command in the image"),
        ({"payload": "inline"}, r"payload must be 'secret' .* or 'fetch'"),
        ({"env": {"WOVE_SECRET": "x"}}, r"env may not set WOVE_SECRET: the adapter passes"),
        ({"env": {"A": 1}}, r"env must be a dict of environment variable names to string"),
        ({"job_template": "patch.yaml"}, r"job_template must be a callable taking the V1Job"),
        ({"ttl_seconds_after_finished": -1}, r"ttl_seconds_after_finished must be an integer"),
        ({"resources": {"cpu": "1"}}, r"resources does not take 'cpu'; it takes claims, limits"),
        ({"max_inline_payload_bytes": 2_000_000}, r"does not fit in a Kubernetes Secret"),
        ({"worker_secret": "Bad Name"}, r"worker_secret must be the name of a Secret"),
    ],
)
def test_configuration_errors_name_the_problem_and_the_fix(
    standin: k8s_standin.StandIn, config: dict[str, Any], message: str
) -> None:
    configure(bad={**k8s_config(standin.url), **config})

    with pytest.raises(wove.InvalidOptionError, match=message):
        answer_in("bad")


def test_api_client_of_the_wrong_type_is_refused() -> None:
    configure(bad=k8s_config(None, api_client="http://127.0.0.1:6443"))

    with pytest.raises(wove.InvalidOptionError, match=r"api_client must be a kubernetes\.client"):
        answer_in("bad")


def test_missing_kubeconfig_names_the_ways_to_connect(tmp_path: Path) -> None:
    configure(bad=k8s_config(None, kubeconfig=str(tmp_path / "nope")))

    with pytest.raises(wove.InvalidOptionError, match=r"no Kubernetes API to talk to .*host="):
        answer_in("bad")


def test_unknown_key_is_refused(standin: k8s_standin.StandIn) -> None:
    configure(bad=k8s_config(standin.url, backoff_limit=3))

    with pytest.raises(wove.UnknownOptionError, match=r"unknown option 'backoff_limit'"):
        answer_in("bad")


def test_unreachable_api_fails_when_the_environment_starts() -> None:
    url = f"http://127.0.0.1:{backend_services.free_port()}"
    configure(gone=k8s_config(url))

    with pytest.raises(ConnectionError, match=r"cannot reach the Kubernetes API at http://127"):
        answer_in("gone")


def test_kubeconfig_and_context_connect(standin: k8s_standin.StandIn, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n"
        f"clusters:\n- name: standin\n  cluster:\n    server: {standin.url}\n"
        "- name: nowhere\n  cluster:\n    server: http://127.0.0.1:9\n"
        "users:\n- name: tester\n  user:\n    token: not-checked\n"
        "contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: tester\n"
        "- name: other\n  context:\n    cluster: nowhere\n    user: tester\n"
    )
    configure(k8s=k8s_config(None, kubeconfig=str(kubeconfig), context="standin"))

    assert answer_in("k8s") == 42


@pytest.fixture
def own_api_client(standin: k8s_standin.StandIn) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    configuration.host = standin.url
    with client.ApiClient(configuration) as api_client:
        yield api_client


def test_an_api_client_of_yours_is_used_and_left_open(own_api_client: client.ApiClient) -> None:
    configure(k8s=k8s_config(None, api_client=own_api_client))

    assert answer_in("k8s") == 42
    assert executor_of("k8s").adapter._api is own_api_client  # type: ignore[attr-defined]
