"""The http executor through real weaves against a real ``wove worker http`` process: the
configuration it accepts and refuses, TLS, and what it does with a service that refuses.

The ``https`` executor and ``wove worker https`` are wove-https's, and tested there."""

from __future__ import annotations

import os
from typing import Any

import pytest

import wove
from wove import InvalidOptionError, UnknownOptionError
from wove_http import HttpExecutor

from .worker_services import SECRET_VARIABLE, Service, tls_service


def _configure(executor_config: dict[str, Any]) -> None:
    wove.config(environments={"remote": {"executor": "http", "executor_config": executor_config}})


def _run_one() -> int:
    with wove.weave(environment="remote", delivery_timeout=30) as w:

        @w.do
        def where() -> int:
            return os.getpid()

    pid: int = w.result.where
    return pid


def test_tasks_run_in_the_service_process(http_service: Service):
    _configure({"url": http_service.url, "security": f"env:{SECRET_VARIABLE}"})

    assert _run_one() == http_service.process.pid


def test_many_weaves_reuse_the_environment(http_service: Service):
    _configure({"url": http_service.url, "security": f"env:{SECRET_VARIABLE}"})

    pids = {_run_one() for _ in range(5)}

    assert pids == {http_service.process.pid}


def test_non_loopback_http_endpoint_is_refused_at_start():
    _configure({"url": "http://example.invalid:8700", "security": f"env:{SECRET_VARIABLE}"})

    with pytest.raises(ValueError, match="not a loopback address"):
        _run_one()


def test_non_loopback_endpoint_without_security_is_refused_at_start():
    _configure({"url": "https://example.invalid:8700"})

    with pytest.raises(ValueError, match="security"):
        _run_one()


def test_missing_url_is_an_error_naming_the_key():
    _configure({"security": f"env:{SECRET_VARIABLE}"})

    with pytest.raises(InvalidOptionError, match="url is required"):
        _run_one()


def test_unknown_key_is_an_error():
    _configure({"url": "http://127.0.0.1:9", "timeuot": 3})

    with pytest.raises(UnknownOptionError, match=r"timeuot.*Did you mean 'read_timeout'"):
        _run_one()


def test_wrong_secret_fails_the_task_with_the_services_refusal(
    http_service: Service, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("WOVE_OTHER_SECRET", "00" * 32)
    _configure({"url": http_service.url, "security": "env:WOVE_OTHER_SECRET"})

    with pytest.raises(wove.EnvironmentExecutionError, match="refused the run \\(401\\)"):
        _run_one()


def test_tls_with_a_private_ca(https_service: Service, certificates: dict[str, str]):
    _configure(
        {
            "url": https_service.url,
            "security": f"env:{SECRET_VARIABLE}",
            "ca_file": certificates["ca"],
        }
    )

    assert _run_one() == https_service.process.pid


def test_mutual_tls(certificates: dict[str, str]):
    service = tls_service(certificates, "--tls-client-ca", certificates["ca"])
    try:
        with_cert = {
            "url": service.url,
            "security": f"env:{SECRET_VARIABLE}",
            "ca_file": certificates["ca"],
            "cert_file": certificates["client"],
        }
        _configure(with_cert)
        assert _run_one() == service.process.pid

        without = {key: value for key, value in with_cert.items() if key != "cert_file"}
        _configure(without)
        # The service refuses the handshake; the run fails instead of running.
        with pytest.raises(wove.WoveError):
            _run_one()
    finally:
        service.close()


def test_executor_config_keys_are_declared():
    assert {"url", "headers", "read_timeout", "security", "ca_file", "insecure"} <= (
        HttpExecutor.config_keys or set()
    )
