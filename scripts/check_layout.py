"""Check that every executor distribution in packages/ has the shape the project promises.

Each ``packages/wove-<name>`` (other than wove-core and the meta-distribution) must have a
hatchling pyproject with its ``wove.executors`` entry point, a README, ``src/wove_<name>/``
with ``__init__.py``, ``plugin.py`` and ``py.typed``, a ``tests/`` folder, and an extra named
after it in ``packages/wove``. Prints every problem and exits non-zero if there is one.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_EXECUTORS = {"wove", "wove-core"}


def problems_of(package: Path, meta_extras: dict[str, list[str]]) -> list[str]:
    executor = package.name.removeprefix("wove-").replace("-", "_")
    module = f"wove_{executor}"
    found: list[str] = []
    pyproject = tomllib.loads((package / "pyproject.toml").read_text())
    if pyproject.get("build-system", {}).get("build-backend") != "hatchling.build":
        found.append("build backend is not hatchling")
    entry_points = pyproject.get("project", {}).get("entry-points", {}).get("wove.executors", {})
    if entry_points.get(executor) != f"{module}.plugin":
        found.append(f'missing entry point wove.executors: {executor} = "{module}.plugin"')
    for required in (
        "README.md",
        f"src/{module}/__init__.py",
        f"src/{module}/plugin.py",
        f"src/{module}/py.typed",
        "tests",
    ):
        if not (package / required).exists():
            found.append(f"missing {required}")
    if executor not in meta_extras:
        found.append(f"packages/wove has no extra {executor!r}")
    return [f"{package.name}: {problem}" for problem in found]


def main() -> int:
    meta = tomllib.loads((ROOT / "packages" / "wove" / "pyproject.toml").read_text())
    extras = meta["project"].get("optional-dependencies", {})
    packages = sorted(p for p in (ROOT / "packages").iterdir() if p.name not in NOT_EXECUTORS)
    problems = [problem for package in packages for problem in problems_of(package, extras)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"layout: {len(packages)} executor distributions checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
