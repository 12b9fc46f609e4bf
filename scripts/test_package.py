"""Run one distribution's tests in a virtualenv that holds only what that distribution declares.

The workspace environment installs every package at once, which hides a dependency a package
uses but never declared (it is there because a neighbour declared it). Here each suite gets a
fresh environment with:

* the distribution itself, editable, with every extra it declares;
* the other distributions of this repository it depends on (wove-core, always), editable;
* its ``test`` dependency group (PEP 735, in its own ``pyproject.toml``): the test tools and
  whatever its tests need to start their services.

Usage::

    python scripts/test_package.py celery [pytest arguments...]
    python scripts/test_package.py core -k merge

The environments live in ``build/test-envs/`` and are rebuilt on every run (uv installs from its
cache, so a rebuild takes seconds), so nothing left from an earlier run can hide a missing
dependency. uv comes from the workspace environment or ``PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ROOT / "packages"
ENVS = ROOT / "build" / "test-envs"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _pyproject(package: Path) -> dict[str, Any]:
    return tomllib.loads((package / "pyproject.toml").read_text())


def _repository_distributions() -> dict[str, Path]:
    """Every distribution in packages/, by its normalized name."""
    found: dict[str, Path] = {}
    for package in sorted(PACKAGES.iterdir()):
        if (package / "pyproject.toml").exists():
            name = _pyproject(package)["project"]["name"]
            found[_normalize(str(name))] = package
    return found


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise SystemExit(f"cannot read the requirement {requirement!r}")
    return _normalize(match.group(1))


def _local_closure(package: Path, local: dict[str, Path]) -> list[Path]:
    """``package`` and every repository distribution it needs, dependencies first."""
    ordered: list[Path] = []

    def visit(current: Path) -> None:
        if current in ordered:
            return
        project = _pyproject(current)["project"]
        requirements = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            requirements += extra
        for requirement in requirements:
            dependency = local.get(_requirement_name(requirement))
            if dependency is not None and dependency != current:
                visit(dependency)
        ordered.append(current)

    visit(package)
    return ordered


def _editable(package: Path) -> str:
    extras = list(_pyproject(package)["project"].get("optional-dependencies", {}))
    return f"{package}[{','.join(extras)}]" if extras else str(package)


def _uv() -> list[str]:
    try:
        import uv
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            raise SystemExit(
                "uv is needed: pip install uv (the workspace environment has it)"
            ) from None
        return [found]
    return [uv.find_uv_bin()]


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    name, pytest_args = argv[0], argv[1:]
    package = PACKAGES / f"wove-{name}"
    if not (package / "pyproject.toml").exists():
        known = sorted(p.name.removeprefix("wove-") for p in PACKAGES.glob("wove-*"))
        print(f"no package packages/wove-{name}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    groups = _pyproject(package).get("dependency-groups", {})
    test_group = groups.get("test") if isinstance(groups, dict) else None
    if not test_group:
        print(
            f"packages/wove-{name}/pyproject.toml has no [dependency-groups] test", file=sys.stderr
        )
        return 2
    uv = _uv()
    env_dir = ENVS / f"wove-{name}"
    python = env_dir / "bin" / "python"
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(
        [*uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(env_dir)],
        check=True,
        env=environ,
    )
    install = [*uv, "pip", "install", "--quiet", "--python", str(python)]
    for member in _local_closure(package, _repository_distributions()):
        install += ["--editable", _editable(member)]
    subprocess.run([*install, *test_group], check=True, env=environ, cwd=ROOT)
    tests = package / "tests"
    print(f"== wove-{name}: tests in an environment with only what it declares", flush=True)
    return subprocess.run(
        [str(python), "-m", "pytest", str(tests), *pytest_args], env=environ, cwd=ROOT
    ).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
