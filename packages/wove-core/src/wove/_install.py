"""Whether the installed ``wove`` package is whole, and the one command that repairs it.

wove 2.x was a single distribution named ``wove`` that owned the ``wove`` import package; since
3.0 wove-core owns it. pip uninstalls a distribution by the file list it recorded, so removing
wove 2.x after wove-core was installed deletes files that wove-core now owns. wove-core's wheel
guards against that with a second copy of the package that no old release recorded (see
``hatch_build.py`` in the wove-core sources), which keeps every upgrade path working. What that
cannot prevent is reported here, by the ``wove`` command, ``python -m wove`` and ``wove doctor``:

* the package is a hollow namespace (its ``__init__.py`` is gone and there is no fallback copy,
  as in a ``pip install --target`` folder that the old uninstall reached) -- fatal;
* wove 2.x is still installed beside wove-core, so its leftover modules sit in the package and
  ``pip show wove`` reports the old release;
* the package runs from the fallback copy: everything works, and a reinstall restores the usual
  layout.

This module imports only the standard library, so it works however broken the package is.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "FALLBACK_DIRECTORY",
    "REINSTALL_COMMAND",
    "InstallationProblem",
    "installation_problems",
]

FALLBACK_DIRECTORY: Final = "_wove_core_fallback"
REINSTALL_COMMAND: Final = "pip install --force-reinstall --no-deps wove-core"
REMOVE_LEGACY_COMMAND: Final = f"pip uninstall -y wove && {REINSTALL_COMMAND}"


@dataclasses.dataclass(frozen=True)
class InstallationProblem:
    """Something wrong with how ``wove`` is installed.

    Attributes:
        summary: what is wrong, in one sentence.
        command: the one shell line that repairs it.
        level: ``"error"``: Wove cannot run until it is repaired; ``"warning"``: it runs, but the
            environment is inconsistent (the ``wove`` command says so every time);
            ``"note"``: it runs as it should, and only ``wove doctor`` mentions it.
    """

    summary: str
    command: str
    level: Literal["error", "warning", "note"]

    def __str__(self) -> str:
        return f"{self.summary} Repair it with: {self.command}"


def installation_problems() -> list[InstallationProblem]:
    """Check the imported ``wove`` package and the installed distributions; most serious first."""
    package = sys.modules.get(__package__ or "wove")
    location = getattr(package, "__file__", None)
    problems: list[InstallationProblem] = []
    if location is None:
        problems.append(
            InstallationProblem(
                "the wove package is incomplete: its __init__.py is missing, most likely "
                "because uninstalling wove 2.x removed files that wove-core now owns.",
                REINSTALL_COMMAND,
                "error",
            )
        )
    legacy = _legacy_wove_version()
    if legacy is not None:
        problems.append(
            InstallationProblem(
                f"wove {legacy} is still installed beside wove-core, so its old modules are "
                "left in the wove package and 'pip show wove' reports the old release.",
                REMOVE_LEGACY_COMMAND,
                "warning",
            )
        )
    elif location is not None and FALLBACK_DIRECTORY in Path(location).parts:
        problems.append(
            InstallationProblem(
                "wove runs from wove-core's fallback copy, because uninstalling wove 2.x "
                "removed files of the regular copy; everything works, and a reinstall "
                "restores the usual layout.",
                REINSTALL_COMMAND,
                "note",
            )
        )
    return problems


def _legacy_wove_version() -> str | None:
    """The version of an installed ``wove`` distribution older than 3, if there is one."""
    try:
        version = importlib.metadata.version("wove")
    except importlib.metadata.PackageNotFoundError:
        return None
    major = version.partition(".")[0]
    return version if major.isdigit() and int(major) < 3 else None
