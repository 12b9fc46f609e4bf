"""``wove plugins new`` end to end, for each kind of executor.

The ``wove`` command of the built wove-core wheel scaffolds a plugin; a fresh virtualenv gets
that wheel, the scaffolded distribution and its ``test`` dependency group, and nothing else of
this repository; the scaffold's own tests pass there as created, and ``wove plugins list``
shows it with its distribution. The generated code is checked with ruff (with its own
settings, also for the longest name allowed) and mypy --strict. One virtualenv per kind.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from legacy import make_venv, run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The backend suite starts a process per job; on a busy machine that takes minutes.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.slow]

KINDS = ("backend", "network", "process")
#: The backend scenarios whose hooks the scaffold implements, and the ones it leaves to the
#: author (its stand-in backend has no server to restart and never holds a job queued), which
#: the kit then does not collect.
SCENARIOS_RUN = (
    "test_worker_killed_mid_task_fails_the_weave_as_orphaned",
    "test_running_job_cancelled_by_a_failing_sibling_stops",
)
SCENARIOS_LEFT_OUT = (
    "test_backend_restarted_between_weaves_reconnects",
    "test_queued_job_cancelled_by_a_failing_sibling_never_runs",
)
#: wove._scaffold.MAX_NAME_LENGTH: the generated code must stay lint-clean up to it.
LONGEST_NAME = "p" * 32


@pytest.fixture(scope="module")
def core_wheel(wheelhouse: list[Path]) -> Path:
    return next(wheel for wheel in wheelhouse if wheel.name.startswith("wove_core-"))


def install(python: Path, *requirements: str | Path) -> None:
    """Install into the virtualenv of ``python``: with uv when the workspace has it, else pip."""
    try:
        import uv
    except ImportError:
        run(python, "-m", "pip", "install", "--quiet", *requirements)
    else:
        run(uv.find_uv_bin(), "pip", "install", "--quiet", "--python", python, *requirements)


def dependency_group(package: Path) -> list[str]:
    """The ``test`` dependency group of a pyproject.toml (pip reads groups only from 25.1)."""
    pyproject = tomllib.loads((package / "pyproject.toml").read_text())
    group: list[str] = pyproject["dependency-groups"]["test"]
    return group


def lint(package: Path, python: Path) -> None:
    """ruff with the package's own settings; mypy --strict against the virtualenv of ``python``."""
    for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        checked = subprocess.run(
            [sys.executable, "-m", *command], cwd=package, capture_output=True, text=True
        )
        assert checked.returncode == 0, f"{' '.join(command)} in {package}:\n{checked.stdout}"
    typed = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", str(python), "--no-incremental"],
        cwd=package,
        capture_output=True,
        text=True,
    )
    assert typed.returncode == 0, f"mypy in {package}:\n{typed.stdout}{typed.stderr}"


@pytest.mark.parametrize("kind", KINDS)
def test_a_scaffolded_plugin_passes_its_own_tests_and_is_listed(
    kind: str, core_wheel: Path, tmp_path: Path
) -> None:
    python = make_venv(tmp_path / "venv")
    install(python, core_wheel)
    wove = python.parent / "wove"
    name = f"scaffold_{kind}"
    created = run(wove, "plugins", "new", name, "--kind", kind, "--directory", tmp_path / "made")
    package = tmp_path / "made" / f"wove-scaffold-{kind}"
    assert f"Created wove-scaffold-{kind} in {package}" in created

    # The wheel again by path, so wove-core (and its extras) come from this build.
    install(python, core_wheel, package, *dependency_group(package))
    tests = run(python, "-m", "pytest", "-p", "no:cacheprovider", cwd=package)
    summary = tests.strip().splitlines()[-1]
    counts = {word: int(count) for count, word in re.findall(r"(\d+) ([a-z]+)", summary)}
    assert set(counts) == {"passed"}, tests  # nothing failed, and nothing was skipped
    assert counts["passed"] > 20, tests
    if kind == "backend":
        collected = run(python, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q", cwd=package)
        assert all(f"::{test}" in collected for test in SCENARIOS_RUN), collected
        assert not any(f"::{test}" in collected for test in SCENARIOS_LEFT_OUT), collected

    rows = json.loads(run(wove, "plugins", "list", "--json", cwd=tmp_path))
    [row] = [row for row in rows if row["name"] == name]
    assert row["distribution"] == f"wove-scaffold-{kind}"
    assert row["version"] == "0.1.0"
    assert row["kind"] == kind
    assert row["ok"] is True, row

    lint(package, python)
    run(wove, "plugins", "new", LONGEST_NAME, "--kind", kind, "--directory", tmp_path / "long")
    lint(tmp_path / "long" / f"wove-{LONGEST_NAME}", python)
