"""The executor conformance suite, run against the in-process ``local`` executor."""

from __future__ import annotations

from typing import Any

import pytest

from wove.testing import ExecutorConformance


class TestLocalConformance(ExecutorConformance):
    @pytest.fixture
    def environment(self) -> dict[str, Any]:
        return {"executor": "local"}
