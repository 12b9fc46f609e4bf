"""The ``kubernetes_jobs`` plugin: its entry point, its metadata, its public names, and what
importing it costs."""

from __future__ import annotations

import pytest

import wove_kubernetes_jobs
from wove import Executor
from wove.backends import BackendExecutor
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_kubernetes_jobs import KUBERNETES_JOBS_CONFIG_KEYS, KubernetesJobsExecutor


def test_loading_gives_the_kubernetes_jobs_executor() -> None:
    executor_class = get_registry().executor_class("kubernetes_jobs", "default")

    assert executor_class is KubernetesJobsExecutor
    assert issubclass(KubernetesJobsExecutor, BackendExecutor)
    assert issubclass(KubernetesJobsExecutor, Executor)
    assert KubernetesJobsExecutor.kind == "backend"
    assert not KubernetesJobsExecutor().runs_in_process


def test_executor_accepts_the_adapter_keys_and_the_shared_ones() -> None:
    keys = KubernetesJobsExecutor.config_keys
    assert keys is not None
    assert {
        "namespace",
        "image",
        "kubeconfig",
        "context",
        "api_client",
        "host",
        "resources",
        "service_account",
        "env",
        "labels",
        "job_template",
        "ttl_seconds_after_finished",
        "python",
        "payload",
        "worker_secret",
    } == KUBERNETES_JOBS_CONFIG_KEYS
    assert KUBERNETES_JOBS_CONFIG_KEYS | {"security", "callback_url", "status_interval"} <= keys


def test_public_names() -> None:
    assert wove_kubernetes_jobs.__all__ == [
        "KUBERNETES_JOBS_CONFIG_KEYS",
        "PAYLOAD_FILE",
        "KubernetesJobsAdapter",
        "KubernetesJobsExecutor",
        "kubernetes_label_value",
        "kubernetes_name",
    ]
    assert all(getattr(wove_kubernetes_jobs, name) for name in wove_kubernetes_jobs.__all__)
    assert wove_kubernetes_jobs.PAYLOAD_FILE == "/var/run/wove/payload/payload"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_kubernetes_jobs.Nope


class TestKubernetesJobsPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "kubernetes_jobs"
    distribution = "wove-kubernetes-jobs"
    kind = "backend"
    requires = ("kubernetes", "cloudpickle", "aiohttp")
    backend_modules = ("kubernetes", "wove_kubernetes_jobs._adapter")
