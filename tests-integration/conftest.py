"""Cross-package tests: real wheels, real virtualenvs, real services."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Tests here import their helper modules by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from legacy import download_legacy_wheel


@pytest.fixture(scope="session")
def legacy_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The published wove 2.0.3 wheel, downloaded from the package index once per session."""
    return download_legacy_wheel(tmp_path_factory.mktemp("legacy-wheel"))
