"""The public exceptions (``wove._errors``): hierarchy, built-in bases and messages."""

from __future__ import annotations

import pytest

import wove
from wove import (
    DeliveryOrphanedError,
    DeliveryTimeoutError,
    DependencyCycleError,
    EnvironmentExecutionError,
    InvalidOptionError,
    MissingDispatchFeatureError,
    MissingExecutorPluginError,
    PluginError,
    ReservedNameError,
    TaskCancelledError,
    TaskSignatureError,
    UnknownEnvironmentError,
    UnknownOptionError,
    UnresolvedSignatureError,
    UpstreamTaskError,
    WeaveUsageError,
    WoveError,
)
from wove._errors import DuplicatePluginError, install_line

#: DESIGN §2: the names ``wove`` must export.
DESIGN_PUBLIC_NAMES = [
    "weave",
    "Weave",
    "WoveResult",
    "config",
    "merge",
    "flatten",
    "fold",
    "batch",
    "undict",
    "redict",
    "denone",
    "sync_to_async",
    "Executor",
    "MissingDispatchFeatureError",
    "DeliveryTimeoutError",
    "DeliveryOrphanedError",
    "EnvironmentExecutionError",
    "UnresolvedSignatureError",
]


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (UnresolvedSignatureError, NameError),
        (UnknownEnvironmentError, NameError),
        (DependencyCycleError, RuntimeError),
        (ReservedNameError, NameError),
        (TaskSignatureError, TypeError),
        (InvalidOptionError, ValueError),
        (UnknownOptionError, TypeError),
        (WeaveUsageError, RuntimeError),
        (UpstreamTaskError, RuntimeError),
        (TaskCancelledError, KeyError),
        (EnvironmentExecutionError, RuntimeError),
        (DeliveryTimeoutError, TimeoutError),
        (DeliveryTimeoutError, RuntimeError),
        (DeliveryOrphanedError, RuntimeError),
        (MissingExecutorPluginError, LookupError),
        (MissingDispatchFeatureError, ImportError),
        (MissingDispatchFeatureError, RuntimeError),
        (PluginError, RuntimeError),
        (DuplicatePluginError, PluginError),
    ],
)
def test_every_error_is_a_wove_error_and_subclasses_the_nearest_builtin(
    error: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(error, WoveError)
    assert issubclass(error, builtin)


@pytest.mark.parametrize("name", DESIGN_PUBLIC_NAMES)
def test_design_names_are_public(name: str) -> None:
    assert name in wove.__all__
    assert getattr(wove, name) is not None


def test_public_names_show_the_public_module() -> None:
    for name in wove.__all__:
        public = getattr(wove, name)
        module = getattr(public, "__module__", "wove")
        assert not module.startswith("wove._"), f"{name} shows {module}"


def test_version_is_read_from_the_distribution() -> None:
    assert wove.__version__ == "3.0.0a1"  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        wove.nope  # type: ignore[attr-defined]  # noqa: B018


def test_install_line_uses_the_distribution_name() -> None:
    assert install_line("celery") == "pip install wove-celery"
    assert install_line("kubernetes_jobs") == "pip install wove-kubernetes-jobs"


def test_unresolved_signature_message_lists_what_is_available_and_what_to_do() -> None:
    error = UnresolvedSignatureError("report", "usr", ["user", "orders"])

    assert str(error) == (
        "task 'report' asks for 'usr', which is neither a task nor injected data; available: "
        "'user', 'orders'. Declare a task named 'usr', pass it as data with weave(usr=...), "
        "or give the parameter a default."
    )
    assert "available: (none)" in str(UnresolvedSignatureError("a", "b", []))


def test_unknown_environment_message_names_the_configured_ones() -> None:
    error = UnknownEnvironmentError("gpu", ["default", "batch"])

    assert str(error) == (
        "unknown environment 'gpu'; configured: 'default', 'batch'. "
        "Add it with wove.config(environments={...})."
    )
    assert error.environment == "gpu"


def test_cycle_message_names_the_cycle() -> None:
    assert "a -> b -> a" in str(DependencyCycleError(["a", "b", "a"]))


def test_upstream_error_keeps_the_original_failure() -> None:
    original = ValueError("boom")
    error = UpstreamTaskError("child", "parent", original)

    assert error.upstream is original
    assert error.__cause__ is original
    assert str(error) == (
        "task 'child' did not run because its dependency 'parent' did not complete; "
        "the failure upstream was ValueError: boom"
    )


def test_task_cancelled_message_is_a_sentence_not_a_quoted_key() -> None:
    error = TaskCancelledError("slow")

    assert str(error).startswith("task 'slow' has no result: it was cancelled")
    assert error.task == "slow"


def test_environment_execution_error_carries_the_remote_traceback() -> None:
    error = EnvironmentExecutionError(
        "remote task failed",
        kind="app.Boom",
        remote_traceback="Traceback...\n  boom\n",
        retryable=False,
        source="worker",
    )

    assert str(error) == "remote task failed\n\nRemote traceback:\nTraceback...\n  boom"
    assert (error.kind, error.retryable, error.source) == ("app.Boom", False, "worker")
    assert str(EnvironmentExecutionError("plain")) == "plain"


def test_missing_plugin_message_has_the_exact_install_line() -> None:
    error = MissingExecutorPluginError("aws_batch", "jobs", ["local"])

    assert str(error).endswith("Install it with: pip install wove-aws-batch")
    assert "environment 'jobs' uses executor 'aws_batch'" in str(error)
    assert "(installed: 'local')" in str(error)


def test_missing_dispatch_message_has_the_install_line() -> None:
    error = MissingDispatchFeatureError("weave(fork=True)")

    assert str(error).startswith("weave(fork=True) needs the dispatch serializer")
    assert 'pip install "wove-core[dispatch]"' in str(error)


def test_duplicate_plugin_message_names_both_distributions() -> None:
    error = DuplicatePluginError("celery", "wove-celery", "acme-celery")

    assert "'wove-celery' and 'acme-celery'" in str(error)
    assert error.distributions == ("wove-celery", "acme-celery")
