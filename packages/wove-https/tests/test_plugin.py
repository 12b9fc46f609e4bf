"""The ``https`` plugin: its entry point, metadata, and that it is wove-http's executor with TLS
required (its transport is tested in wove-http, whose TLS conformance class covers it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

import wove
import wove_https
from wove.plugins import get_registry
from wove.testing import PluginConformance
from wove_http import HttpExecutor
from wove_https import HttpsExecutor


def test_the_executor_is_the_http_one_with_tls_required():
    executor_class = get_registry().executor_class("https", "default")

    assert executor_class is HttpsExecutor
    assert issubclass(HttpsExecutor, HttpExecutor)
    assert HttpsExecutor.require_tls
    assert HttpsExecutor.config_keys == HttpExecutor.config_keys
    assert wove_https.__all__ == ["HttpsExecutor"]


def test_https_worker_command_is_registered():
    assert "https" in [command.name for command in get_registry().commands()]


def test_plain_http_url_is_refused_at_start():
    wove.config(
        environments={
            "tls": {"executor": "https", "executor_config": {"url": "http://127.0.0.1:9"}}
        }
    )

    with (
        pytest.raises(ValueError, match="needs an https:// url"),
        wove.weave(environment="tls") as w,
    ):

        @w.do
        def never() -> None:
            pass


def test_a_weave_through_wove_worker_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1", "localhost")
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    authority.cert_pem.write_to_path(str(ca))
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    monkeypatch.setenv("WOVE_HTTPS_TEST_SECRET", "https-test-secret-" + "x" * 32)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "wove", "worker", "https", "--bind", "127.0.0.1:0"),
            "--security",
            "env:WOVE_HTTPS_TEST_SECRET",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("wove worker https listening on https://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        wove.config(
            environments={
                "tls": {
                    "executor": "https",
                    "executor_config": {
                        "url": url,
                        "security": "env:WOVE_HTTPS_TEST_SECRET",
                        "ca_file": str(ca),
                    },
                }
            }
        )
        with wove.weave(environment="tls", delivery_timeout=30) as w:

            @w.do
            def where() -> int:
                return os.getpid()

        assert w.result.where == process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()


class TestHttpsPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "https"
    distribution = "wove-https"
    kind = "network"
    requires = ("httpx", "cloudpickle")
    backend_modules = ("httpx", "uvicorn")
