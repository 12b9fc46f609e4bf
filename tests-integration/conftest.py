"""Cross-package tests: real wheels, real virtualenvs, real services."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Tests here import their helper modules by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from legacy import LEGACY_VERSION, build_wheels, download_legacy_wheel, make_venv, run


@pytest.fixture(scope="session")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``python`` of a virtualenv with pip, for building and downloading wheels."""
    return make_venv(tmp_path_factory.mktemp("builder"))


@pytest.fixture(scope="session")
def legacy_wheel(tmp_path_factory: pytest.TempPathFactory, builder: Path) -> Path:
    """The published wove 2.0.3 wheel, downloaded from the package index once per session."""
    return download_legacy_wheel(tmp_path_factory.mktemp("legacy-wheel"), builder)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, builder: Path) -> list[Path]:
    """Every distribution of this repository built as a wheel, once per session."""
    return build_wheels(tmp_path_factory.mktemp("wheelhouse"), builder)


@pytest.fixture(scope="session")
def legacy_python(tmp_path_factory: pytest.TempPathFactory, legacy_wheel: Path) -> Path:
    """The ``python`` of a virtualenv with the published wove 2.0.3 and its ``dispatch`` extra."""
    python = make_venv(tmp_path_factory.mktemp("legacy-venv"))
    run(python, "-m", "pip", "install", "--quiet", f"{legacy_wheel}[dispatch]")
    assert run(python, "-c", "import wove; print(wove.__version__)").strip() == LEGACY_VERSION
    return python
