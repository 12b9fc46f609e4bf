"""The https executor through real weaves against a real ``wove worker https`` process: it
refuses a plain ``http://`` url and runs over TLS with a private CA."""

from __future__ import annotations

import os
from typing import Any

import pytest

import wove
from worker_services import SECRET_VARIABLE, Service  # wove-http's; see conftest.py


def _configure(executor_config: dict[str, Any]) -> None:
    wove.config(environments={"remote": {"executor": "https", "executor_config": executor_config}})


def _run_one() -> int:
    with wove.weave(environment="remote", delivery_timeout=30) as w:

        @w.do
        def where() -> int:
            return os.getpid()

    pid: int = w.result.where
    return pid


def test_https_executor_requires_an_https_url():
    _configure({"url": "http://127.0.0.1:9"})

    with pytest.raises(ValueError, match="https:// url"):
        _run_one()


def test_https_executor_against_the_https_service(
    https_service: Service, certificates: dict[str, str]
):
    _configure(
        {
            "url": https_service.url.replace("127.0.0.1", "localhost"),
            "security": f"env:{SECRET_VARIABLE}",
            "ca_file": certificates["ca"],
        }
    )

    assert _run_one() == https_service.process.pid
