"""Check that every executor distribution in packages/ has the shape the project promises.

Each ``packages/wove-<name>`` (other than wove-core and the meta-distribution) must have a
hatchling pyproject with its ``wove.executors`` entry point, a README, ``src/wove_<name>/``
with ``__init__.py``, ``plugin.py`` and ``py.typed``, a ``tests/`` folder, a ``test`` dependency
group (what ``scripts/test_package.py`` installs for its suite), and an extra named after it in
``packages/wove``. No distribution may depend, directly or not, on one that depends back on it:
a cycle would stop ``pip install ./packages/<name>`` from working without a package index.
No file under an executor distribution's ``src/`` or ``tests/`` may use a private module of
wove-core (``wove._config``, ``wove.testing._bodies``, ...) or of another distribution
(``wove_http._cli`` in wove-https): plugins are built on the public SDK (docs/sdk.md), and the
check reads the text, so an import inside a string a test runs counts too.
Prints every problem and exits non-zero if there is one.
"""

from __future__ import annotations

import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_EXECUTORS = {"wove", "wove-core"}
#: A dotted path into a private module of wove-core: ``wove._config``, ``wove.testing._bodies``.
PRIVATE_CORE = re.compile(r"\bwove(?:\.[A-Za-z]\w*)*\._\w*")
#: ``from wove import _config`` / ``from wove.testing import _bodies``.
PRIVATE_CORE_FROM = re.compile(r"\bfrom\s+(wove(?:\.[A-Za-z]\w*)*)\s+import\s+\(?\s*(_\w+)")
#: A dotted path into a private module of an executor distribution: ``wove_http._cli``.
PRIVATE_PLUGIN = re.compile(r"\b(wove_[A-Za-z0-9]\w*)\._\w*")


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
    if not pyproject.get("dependency-groups", {}).get("test"):
        found.append("missing [dependency-groups] test (what its tests need)")
    if executor not in meta_extras:
        found.append(f"packages/wove has no extra {executor!r}")
    found += private_imports(package, module)
    return [f"{package.name}: {problem}" for problem in found]


def private_imports(package: Path, own_module: str) -> list[str]:
    """Every use of a private module of wove-core, or of another distribution, in ``src/`` and
    ``tests/`` of ``package`` (whose own import name is ``own_module``)."""
    found: list[str] = []
    for folder in ("src", "tests"):
        for path in sorted((package / folder).rglob("*.py")):
            where = path.relative_to(package)
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                names = [match.group(0) for match in PRIVATE_CORE.finditer(line)]
                names += [".".join(match.groups()) for match in PRIVATE_CORE_FROM.finditer(line)]
                names += [
                    match.group(0)
                    for match in PRIVATE_PLUGIN.finditer(line)
                    if match.group(1) != own_module
                ]
                found += [
                    f"{where}:{number}: uses the private module {name}; import its public "
                    "name instead (the plugin SDK is listed in docs/sdk.md)"
                    for name in names
                ]
    return found


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def dependency_cycles() -> list[str]:
    """Name every repository distribution that can reach itself through its dependencies.

    The meta-distribution's extras are not dependencies of anything, so they are followed too:
    a package that required ``wove`` would close a loop through them.
    """
    graph: dict[str, set[str]] = {}
    for package in (ROOT / "packages").iterdir():
        if not (package / "pyproject.toml").exists():
            continue
        project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
        requirements = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            requirements += extra
        graph[project["name"]] = {_requirement_name(r) for r in requirements}
    local = set(graph)
    found: list[str] = []
    for start in sorted(graph):
        seen: set[str] = set()
        stack = [name for name in graph[start] if name in local]
        while stack:
            name = stack.pop()
            if name == start:
                found.append(f"{start}: depends on itself through other packages here (a cycle)")
                break
            if name not in seen:
                seen.add(name)
                stack.extend(n for n in graph[name] if n in local)
    return found


def main() -> int:
    meta = tomllib.loads((ROOT / "packages" / "wove" / "pyproject.toml").read_text())
    extras = meta["project"].get("optional-dependencies", {})
    packages = sorted(p for p in (ROOT / "packages").iterdir() if p.name not in NOT_EXECUTORS)
    problems = [problem for package in packages for problem in problems_of(package, extras)]
    problems += dependency_cycles()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"layout: {len(packages)} executor distributions checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
