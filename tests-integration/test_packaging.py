"""Build every distribution's wheel, install them into a fresh virtualenv, and use them there.

This is how we know the packaging is real: entry points, dependencies between the
distributions, the ``wove`` console script and ``py.typed`` all come from the built wheels,
not from the editable checkout.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from legacy import WEAVE_SCRIPT, make_venv
from legacy import run as _run

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("venv")
    make_venv(env_dir)
    return env_dir


@pytest.fixture(scope="module")
def wheels(wheelhouse: list[Path]) -> list[Path]:
    return wheelhouse


@pytest.fixture(scope="module")
def installed(wheels: list[Path], fresh_venv: Path) -> Path:
    env_dir = fresh_venv
    python = env_dir / "bin" / "python"
    find_links = wheels[0].parent
    meta = next(wheel for wheel in wheels if wheel.name.startswith("wove-"))
    version = meta.name.split("-")[1]
    # Pin the version: a pre-release would otherwise lose to an older release on the index.
    requirement = f"wove[dispatch]=={version}"
    _run(
        python, "-m", "pip", "install", "--quiet", "--pre", "--find-links", find_links, requirement
    )
    return env_dir


def test_every_distribution_builds_a_wheel_with_py_typed(wheels: list[Path]) -> None:
    names = {wheel.name.split("-")[0] for wheel in wheels}
    assert {"wove", "wove_core", "wove_celery"} <= names
    for wheel in wheels:
        if wheel.name.startswith("wove-3") or wheel.name.startswith("wove-0"):
            continue  # the meta-distribution ships no modules
        with zipfile.ZipFile(wheel) as archive:
            members = archive.namelist()
        if any(member.endswith(".py") for member in members):
            assert any(member.endswith("/py.typed") for member in members), wheel.name


def test_wove_core_wheel_carries_a_complete_fallback_copy(wheels: list[Path]) -> None:
    """The copy an old ``wove`` uninstall cannot reach must be the whole package, byte for byte."""
    core = next(wheel for wheel in wheels if wheel.name.startswith("wove_core-"))
    with zipfile.ZipFile(core) as archive:
        regular = {
            name: archive.read(name) for name in archive.namelist() if name.startswith("wove/")
        }
        fallback = {
            name.removeprefix("_wove_core_fallback/"): archive.read(name)
            for name in archive.namelist()
            if name.startswith("_wove_core_fallback/")
        }
        pth = archive.read("_wove_core_fallback.pth").decode()
    assert "wove/__init__.py" in regular
    assert fallback == regular
    assert pth.split() == ["_wove_core_fallback"]


def test_weave_runs_from_the_installed_wheels(installed: Path, tmp_path: Path) -> None:
    output = _run(installed / "bin" / "python", "-c", WEAVE_SCRIPT, cwd=tmp_path)
    location, doubled = output.strip().splitlines()
    assert str(installed) in location, "wove was imported from the checkout, not the wheel"
    assert "site-packages" in location
    assert doubled == "[20, 22, 24]"


def test_plugins_list_from_the_installed_wheels(installed: Path, tmp_path: Path) -> None:
    rows = json.loads(_run(installed / "bin" / "wove", "plugins", "list", "--json", cwd=tmp_path))
    local = next(row for row in rows if row["name"] == "local")
    assert local["distribution"] == "wove-core"
    assert local["kind"] == "local"
    assert local["ok"] is True
    table = _run(installed / "bin" / "wove", "plugins", "list", cwd=tmp_path)
    assert "wove-core" in table


def test_wove_doctor_and_version_from_the_installed_wheels(installed: Path, tmp_path: Path) -> None:
    assert "wove-core" in _run(installed / "bin" / "wove", "--version", cwd=tmp_path)
    _run(installed / "bin" / "wove", "doctor", cwd=tmp_path)


def test_dispatch_extra_brings_cloudpickle_without_importing_it(
    installed: Path, tmp_path: Path
) -> None:
    script = "import sys, wove; print('cloudpickle' in sys.modules); import cloudpickle"
    assert _run(installed / "bin" / "python", "-c", script, cwd=tmp_path).strip() == "False"


NO_DISPATCH_SCRIPT = """
import wove
from wove import Executor, MissingDispatchFeatureError, weave

started = []


class Elsewhere(Executor):
    kind = "process"

    async def start(self, environment_name, environment_config, run_config):
        started.append(environment_name)

    async def send(self, frame):
        raise AssertionError("nothing may be submitted")

    async def recv(self):
        raise AssertionError("nothing may be received")

    async def stop(self):
        pass


wove.config(environments={"far": {"executor": Elsewhere()}})
try:
    with weave() as w:
        @w.do(environment="far")
        def task():
            return 1
except MissingDispatchFeatureError as error:
    print(error)
print("started:", started)
"""


@pytest.fixture(scope="module")
def core_only(wheels: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with wove-core alone, without the dispatch extra."""
    env_dir = tmp_path_factory.mktemp("core-only")
    make_venv(env_dir)
    python = env_dir / "bin" / "python"
    version = next(w for w in wheels if w.name.startswith("wove_core-")).name.split("-")[1]
    find_links = wheels[0].parent
    requirement = f"wove-core=={version}"
    _run(
        python, "-m", "pip", "install", "--quiet", "--pre", "--find-links", find_links, requirement
    )
    return env_dir


def test_remote_environment_without_dispatch_fails_before_anything_is_submitted(
    core_only: Path, tmp_path: Path
) -> None:
    python = core_only / "bin" / "python"
    assert (
        _run(python, "-c", "import importlib.util as u; print(u.find_spec('cloudpickle'))").strip()
        == "None"
    )
    output = _run(python, "-c", NO_DISPATCH_SCRIPT, cwd=tmp_path)
    assert 'pip install "wove-core[dispatch]"' in output
    assert "environment 'far'" in output
    assert "started: []" in output
