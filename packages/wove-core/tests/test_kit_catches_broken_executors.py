"""The conformance kits can fail: each defect of a deliberately broken executor or plugin is
caught by a named check, and a working executor and plugin pass the same checks.

The kits run as a plugin author runs them: kit_suites.py subclasses them for the executors of
broken_executors.py and the plugins of broken_plugins/ (installed as throwaway distributions),
and one pytest process runs the checks picked below. Each test here reads its outcomes.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from wove.testing._plugin import CORE_PACKAGES

SUITES: Path = Path(__file__).with_name("kit_suites.py")
PLUGINS: Path = Path(__file__).with_name("broken_plugins")

#: The throwaway distributions: name -> (entry point, its packages in broken_plugins/).
DISTRIBUTIONS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "wove-finch": ("finch = wove_finch.plugin", ("wove_finch", "finchlib")),
    "wove-pigeon": ("pigeon = wove_pigeon.plugin", ("wove_pigeon", "pigeonlib")),
}

TERMINAL = "test_each_run_reaches_exactly_one_terminal_state"
ONCE = "test_each_task_body_runs_exactly_once"
CANCEL = "test_sibling_failure_cancels_running_tasks[best_effort]"
FORGED = "test_forged_frames_never_run"
REPLAY = "test_replayed_frame_runs_once"
RESULTS = "test_sync_tasks_return_results"
DISCOVERY = "test_discovery_imports_no_backend"
PLUGIN_MODULE = "test_plugin_module_imports_nothing_beyond_its_package"
PLUGIN_CHECKS = (
    "test_entry_point_names_the_plugin_module",
    "test_registry_lists_the_plugin_with_its_metadata",
    "test_loading_gives_an_executor_of_the_declared_kind",
    PLUGIN_MODULE,
    DISCOVERY,
)

#: The checks each suite class of kit_suites.py runs.
PICKED: Mapping[str, tuple[str, ...]] = {
    "TestPipe": (TERMINAL, ONCE, CANCEL, FORGED, REPLAY),
    "TestLossy": (TERMINAL, RESULTS),
    "TestTwice": (TERMINAL, ONCE, RESULTS),
    "TestDeaf": (CANCEL, RESULTS),
    "TestUnsigned": (FORGED, RESULTS),
    "TestFinchPlugin": PLUGIN_CHECKS,
    "TestPigeonPlugin": PLUGIN_CHECKS,
    "TestPigeonPluginDeclaringNothing": (DISCOVERY,),
}


@dataclass(frozen=True)
class Outcome:
    """How one check ended, and what it reported when it failed."""

    status: str
    report: str = ""


def install_distributions(site: Path) -> None:
    """Write each throwaway distribution (its packages and a dist-info) into ``site``."""
    for name, (entry_point, packages) in DISTRIBUTIONS.items():
        dist_info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (dist_info / "entry_points.txt").write_text(f"[wove.executors]\n{entry_point}\n")
        for package in packages:
            shutil.copytree(PLUGINS / package, site / package)


def read_junit(report: Path) -> dict[tuple[str, str], Outcome]:
    """The outcome of every check in a JUnit XML report, by (class, check)."""
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        suite = case.get("classname", "").rpartition(".")[2]
        status, text = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed"}.get(child.tag, child.tag)
                text = f"{child.get('message', '')}\n{child.text or ''}"
        outcomes[suite, case.get("name", "")] = Outcome(status, text)
    return outcomes


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> dict[tuple[str, str], Outcome]:
    """Run every picked check in one fresh pytest process; its outcomes by (class, check)."""
    site = tmp_path_factory.mktemp("site")
    install_distributions(site)
    report = site.parent / "kit-suites.xml"
    picked = [f"{SUITES}::{suite}::{check}" for suite, checks in PICKED.items() for check in checks]
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    arguments = ["-p", "no:cacheprovider", "-q", f"--junitxml={report}", *picked]
    if pytestconfig.inipath is not None:
        arguments = ["-c", str(pytestconfig.inipath), *arguments]
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--rootdir", str(pytestconfig.rootpath), *arguments],
        cwd=pytestconfig.rootpath,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=100,
    )
    assert report.exists(), completed.stdout + completed.stderr
    found = read_junit(report)
    missing = [(suite, check) for suite in PICKED for check in PICKED[suite]]
    missing = [key for key in missing if key not in found]
    assert not missing, f"checks that did not run: {missing}\n{completed.stdout}"
    return found


def assert_caught(
    outcomes: Mapping[tuple[str, str], Outcome],
    suite: str,
    caught_by: Mapping[str, str],
) -> None:
    """The checks in ``caught_by`` failed, each saying what matches its pattern; the other
    checks picked for ``suite`` passed."""
    for check in PICKED[suite]:
        outcome = outcomes[suite, check]
        if check in caught_by:
            assert outcome.status == "failed", f"{suite}: {check} did not catch the defect"
            assert re.search(caught_by[check], outcome.report), outcome.report
        else:
            assert outcome.status == "passed", (
                f"{suite}: {check} {outcome.status}\n{outcome.report}"
            )


# -- the executor kits ------------------------------------------------------------------------


def test_working_executor_passes_the_checks_that_catch_the_broken_ones(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    assert_caught(outcomes, "TestPipe", caught_by={})


def test_dropped_result_is_caught_by_the_terminal_state_check(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    assert_caught(
        outcomes,
        "TestLossy",
        caught_by={TERMINAL: r"run '[^']+' of task 'large' never reached a terminal state"},
    )


def test_double_delivery_is_caught_by_the_terminal_state_and_run_once_checks(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    assert_caught(
        outcomes,
        "TestTwice",
        caught_by={
            TERMINAL: r"of task 'returns' reached 2 terminal states \(task_result, task_result\)",
            ONCE: r"task bodies ran more than once: \['asingle', 'mapped 0',",
        },
    )


def test_ignored_cancel_is_caught_by_the_sibling_failure_check(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    assert_caught(
        outcomes,
        "TestDeaf",
        caught_by={CANCEL: r"the cancelled async run kept running"},
    )


def test_unsigned_frames_are_caught_by_the_forged_frames_check(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    assert_caught(
        outcomes,
        "TestUnsigned",
        caught_by={FORGED: r"forged frames were executed: \['unsigned'\]"},
    )


# -- the plugin kit ---------------------------------------------------------------------------


def test_plugin_packaged_right_passes_the_plugin_checks(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    assert_caught(outcomes, "TestFinchPlugin", caught_by={})


def test_backend_imported_at_discovery_is_caught_by_the_discovery_check(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    # Importing the plugin module stays cheap (that check passes); its hook is what imports.
    assert_caught(
        outcomes,
        "TestPigeonPlugin",
        caught_by={DISCOVERY: r"discovering plugin 'pigeon' imported \['pigeonlib'\]"},
    )


def test_discovery_check_needs_no_declared_backend_modules(
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    assert_caught(
        outcomes,
        "TestPigeonPluginDeclaringNothing",
        caught_by={DISCOVERY: r"discovering plugin 'pigeon' imported \['pigeonlib'\]"},
    )


def test_discovery_check_allows_wove_core_and_exactly_its_dependencies() -> None:
    requirements = importlib.metadata.requires("wove-core") or []
    dependencies = {
        re.split(r"[^A-Za-z0-9_.-]", requirement, maxsplit=1)[0].lower()
        for requirement in requirements
        if "extra ==" not in requirement
    }
    assert {"wove", *dependencies} == CORE_PACKAGES
