"""The real wove 2.x release fetched from the package index, this repository's wheels, virtualenvs.

Upgrade tests start from what a 2.x user really has installed, so they use the published wheel,
never a copy kept in this repository. Tests import these helpers; the fixtures that call them
live in ``conftest.py``.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

__all__ = [
    "LEGACY_VERSION",
    "ROOT",
    "WEAVE_SCRIPT",
    "build_wheels",
    "clean_environ",
    "download_legacy_wheel",
    "make_venv",
    "run",
]

ROOT = Path(__file__).resolve().parents[1]

#: A weave that a user would run first: injected data, a mapped async task. It prints where
#: ``wove`` was imported from, then the mapped results (``[20, 22, 24]``).
WEAVE_SCRIPT = """
import wove
from wove import weave

with weave(base=10) as w:
    @w.do
    def numbers(base):
        return [base + i for i in range(3)]

    @w.do("numbers")
    async def doubled(n):
        return 2 * n

print(wove.__file__)
print(w.result.doubled)
"""


#: The last 2.x release: the one 2.x users upgrade from.
LEGACY_VERSION = "2.0.3"


def clean_environ() -> dict[str, str]:
    """The current environment without what would make a child see the workspace's packages."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }


def run(*args: str | Path, cwd: Path | None = None, check: bool = True) -> str:
    """Run a command and return its stdout; with ``check``, a failure shows both streams."""
    completed = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean_environ(),
        check=False,
    )
    if check:
        assert completed.returncode == 0, (
            f"{' '.join(map(str, args))} failed ({completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return completed.stdout + (completed.stderr if not check else "")


def make_venv(path: Path) -> Path:
    """Create a virtualenv with pip at ``path`` and return its ``python``."""
    venv.EnvBuilder(with_pip=True).create(path)
    return path / "bin" / "python"


def build_wheels(destination: Path, builder: Path) -> list[Path]:
    """Build every ``packages/*`` distribution's wheel; return them.

    With uv (the workspace environment has it) the isolated build environments come from its
    cache; otherwise ``builder``'s pip builds them.
    """
    packages = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())
    try:
        import uv
    except ImportError:
        uv = None
    for package in packages:
        if uv is not None:
            run(uv.find_uv_bin(), "build", "--quiet", "--wheel", "--out-dir", destination, package)
        else:
            run(builder, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", destination, package)
    built = sorted(destination.glob("*.whl"))
    assert len(built) == len(packages), built
    return built


def download_legacy_wheel(destination: Path, builder: Path) -> Path:
    """Download the published ``wove==2.0.3`` wheel with ``builder``'s pip into ``destination``."""
    run(
        builder,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        destination,
        f"wove=={LEGACY_VERSION}",
    )
    (wheel,) = destination.glob(f"wove-{LEGACY_VERSION}-*.whl")
    return wheel
