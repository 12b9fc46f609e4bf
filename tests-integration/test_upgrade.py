"""Upgrading from wove 2.x: every path a 2.x user takes ends in a working install.

Each test starts from a fresh virtualenv holding the published ``wove==2.0.3`` wheel (downloaded
from the package index at test time) and runs the pip commands a user would, with this
repository's wheels reachable through ``--find-links``. "Working" means what a user checks
first: ``import wove`` gives 3.x, a weave runs, and ``wove plugins list`` lists ``local``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from legacy import ROOT, WEAVE_SCRIPT, make_venv, run

pytestmark = pytest.mark.timeout(900)


class Env:
    """A virtualenv and the commands a user runs in it."""

    def __init__(self, path: Path, wheelhouse: list[Path] | None = None) -> None:
        self.path = path
        self.python = make_venv(path)
        self.find_links = wheelhouse[0].parent if wheelhouse else None
        self.site = next((path / "lib").glob("python3*/site-packages"))

    def pip(self, *args: str | Path) -> str:
        return run(self.python, "-m", "pip", *args, "--disable-pip-version-check")

    def install(self, *requirements: str | Path, reinstall: bool = False) -> str:
        options: list[str | Path] = ["--quiet", "--pre"]
        if self.find_links is not None:
            options += ["--find-links", self.find_links]
        if reinstall:
            options += ["--force-reinstall", "--no-deps"]
        return self.pip("install", *options, *requirements)

    def wove(self, *args: str, check: bool = True) -> str:
        return run(self.path / "bin" / "wove", *args, cwd=self.path, check=check)

    def assert_works(self) -> str:
        """Check that 3.x imports, runs a weave and lists ``local``; return where wove lives."""
        location, doubled = run(self.python, "-c", WEAVE_SCRIPT, cwd=self.path).splitlines()
        assert doubled == "[20, 22, 24]"
        rows = json.loads(self.wove("plugins", "list", "--json"))
        local = next(row for row in rows if row["name"] == "local")
        assert (local["distribution"], local["ok"]) == ("wove-core", True)
        assert "wove-core" in run(self.python, "-m", "wove", "--version", cwd=self.path)
        return location

    def distributions(self) -> dict[str, str]:
        rows = json.loads(self.pip("list", "--format=json"))
        return {row["name"]: row["version"] for row in rows if row["name"].startswith("wove")}


@pytest.fixture
def legacy_env(tmp_path: Path, legacy_wheel: Path, wheelhouse: list[Path]) -> Env:
    """A fresh virtualenv where a 2.x user stands: the published wove 2.0.3 installed."""
    env = Env(tmp_path / "venv", wheelhouse)
    env.pip("install", "--quiet", legacy_wheel)
    assert env.distributions() == {"wove": "2.0.3"}
    return env


def test_upgrading_the_wove_requirement_keeps_a_working_install(legacy_env: Env) -> None:
    legacy_env.install("--upgrade", "wove")

    assert legacy_env.distributions().keys() == {"wove", "wove-core"}
    assert not legacy_env.distributions()["wove"].startswith("2.")
    # pip uninstalled 2.0.3 after installing wove-core: the fallback copy carries on.
    assert "_wove_core_fallback" in legacy_env.assert_works()
    doctor = legacy_env.wove("doctor")
    assert "installation note: wove runs from wove-core's fallback copy" in doctor


def test_removing_the_meta_distribution_afterwards_keeps_wove_core(legacy_env: Env) -> None:
    legacy_env.install("--upgrade", "wove")

    legacy_env.pip("uninstall", "--yes", "wove")

    assert legacy_env.distributions().keys() == {"wove-core"}
    legacy_env.assert_works()


def test_installing_wove_core_beside_wove_2_works_and_says_how_to_tidy_up(legacy_env: Env) -> None:
    legacy_env.install("wove-core")

    location = legacy_env.assert_works()
    assert str(legacy_env.site / "wove" / "__init__.py") == location
    warning = run(legacy_env.path / "bin" / "wove", "--version", check=False)
    assert "wove: warning: wove 2.0.3 is still installed beside wove-core" in warning
    assert "pip uninstall -y wove && pip install --force-reinstall --no-deps wove-core" in warning


def test_removing_wove_2_after_installing_wove_core_keeps_a_working_install(
    legacy_env: Env,
) -> None:
    legacy_env.install("wove-core")

    legacy_env.pip("uninstall", "--yes", "wove")

    assert "_wove_core_fallback" in legacy_env.assert_works()
    # The repair command the doctor names restores the usual layout.
    legacy_env.install("wove-core", reinstall=True)
    assert legacy_env.assert_works() == str(legacy_env.site / "wove" / "__init__.py")
    assert "installation" not in legacy_env.wove("doctor")


def test_adding_a_backend_beside_wove_2_works(legacy_env: Env) -> None:
    legacy_env.install("wove-core", "wove-celery")

    legacy_env.assert_works()
    rows = json.loads(legacy_env.wove("plugins", "list", "--json"))
    assert {row["name"]: row["distribution"] for row in rows}["celery"] == "wove-celery"


def test_a_hollow_package_gets_the_repair_command_not_a_traceback(legacy_env: Env) -> None:
    """The one state no packaging prevents: the fallback removed too (or never processed)."""
    legacy_env.install("wove-core")
    legacy_env.pip("uninstall", "--yes", "wove")
    shutil.rmtree(legacy_env.site / "_wove_core_fallback")

    for command in (
        [legacy_env.path / "bin" / "wove", "plugins", "list"],
        [legacy_env.python, "-m", "wove", "doctor"],
    ):
        output = run(*command, cwd=legacy_env.path, check=False)
        assert "wove: error: the wove package is incomplete" in output, output
        assert "Repair it with: pip install --force-reinstall --no-deps wove-core" in output
        assert "Traceback" not in output

    legacy_env.install("wove-core", reinstall=True)
    legacy_env.assert_works()


# -- installing from a checkout, before the packages are on an index ---------------------------


@pytest.mark.parametrize(
    ("packages", "executors"),
    [(("wove-core",), {"local"}), (("wove-core", "wove-celery"), {"local", "celery"})],
)
def test_one_command_installs_from_a_checkout(
    tmp_path: Path, packages: tuple[str, ...], executors: set[str]
) -> None:
    env = Env(tmp_path / "venv")
    env.install(*(ROOT / "packages" / name for name in packages))

    env.assert_works()
    rows = json.loads(env.wove("plugins", "list", "--json"))
    assert {row["name"] for row in rows} == executors
