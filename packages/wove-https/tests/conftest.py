"""``wove worker https`` run as a real process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The worker-service helpers are wove-http's test code, which is not installed: import them from
# the checkout rather than keep a second copy here.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "wove-http" / "tests"))

from worker_services import Service, issue_certificates, tls_service


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate."""
    return issue_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_service(certificates: dict[str, str]) -> Iterator[Service]:
    service = tls_service(certificates, name="https")
    yield service
    service.close()
