"""Fresh process-wide state for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wove._config import reset_config
from wove._environments import reset_environments


@pytest.fixture(autouse=True)
def fresh_configuration() -> Iterator[None]:
    reset_config()
    reset_environments()
    yield
    reset_config()
    reset_environments()
