"""Worker services run as real processes (see :mod:`worker_services`, which wove-https's
tests share)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .worker_services import SECRET_VARIABLE, Service, issue_certificates, tls_service


@pytest.fixture(scope="module")
def http_service() -> Iterator[Service]:
    service = Service(["--security", f"env:{SECRET_VARIABLE}"])
    yield service
    service.close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate."""
    return issue_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_service(certificates: dict[str, str]) -> Iterator[Service]:
    """``wove worker http`` serving TLS (``wove worker https`` is wove-https's)."""
    service = tls_service(certificates)
    yield service
    service.close()
