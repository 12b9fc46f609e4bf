"""STYLE.md "Imports point left only": the import statements of every module in ``src/wove``.

Every ``import`` counts, wherever it sits: at module level, inside a function, or under
``TYPE_CHECKING`` (a ``TYPE_CHECKING`` import does not fix a real cycle).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import wove

#: STYLE.md's order, left (imported by everything) to right (imports everything). Modules STYLE.md
#: does not list sit where their imports put them: ``_result``, ``_threads`` and ``_transforms``
#: need only ``_errors``; ``_execution`` needs ``_options``; ``_hooks`` (the hook markers and
#: specs) is imported by ``_registry``; the workers sit beside ``_registry``; ``_report`` reads
#: ``_scheduler``; ``_fork`` belongs to ``_weave``. The SDK modules sit at the end with
#: ``__init__``: ``plugins``, ``backends``, ``network`` and ``worker`` re-export what private
#: modules define, and ``testing`` holds the kits, built on everything before it; ``helpers`` and
#: ``errors`` only re-export names under the module paths wove 2.x used.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_errors", "_install"),
    (
        "_frames",
        "_security",
        "_options",
        "_settings",
        "_serializer",
        "_result",
        "_threads",
        "_transforms",
    ),
    ("_fork",),
    ("_config", "_executor", "_delivery", "_callback_server", "_hooks", "_execution"),
    (
        "_registry",
        "_local",
        "_environments",
        "_network",
        "integrations",
        "integrations.worker",
        "integrations._reporter",
        "stdio_worker",
        "backend_worker",
    ),
    ("_graph", "_scheduler", "_report", "_backend"),
    ("_weave", "_merge"),
    (
        "__init__",
        "__main__",
        "_cli",
        "_scaffold",
        "_fork_child",
        "plugins",
        "backends",
        "network",
        "worker",
        "testing",
        "helpers",
        "errors",
    ),
)

#: Executors, workers and the callback server must never reach these, even indirectly.
ENGINE_ONLY = ("_weave", "_scheduler")
BOUNDARY_MODULES = (
    "_executor",
    "_callback_server",
    "integrations.worker",
    "integrations._reporter",
    "_backend",
    "stdio_worker",
    "backend_worker",
)


def source_root() -> Path:
    beside_tests = Path(__file__).resolve().parents[1] / "src" / "wove"
    return beside_tests if beside_tests.is_dir() else Path(wove.__file__).resolve().parent


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def discover_modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _package_of(module: str, path: Path) -> list[str]:
    parts = [] if module == "__init__" else module.split(".")
    return parts if path.name == "__init__.py" else parts[:-1]


def _resolve(base: list[str], names: list[str], known: set[str]) -> Iterator[str]:
    """``from <base> import <names>``: a name that is a submodule is that module."""
    for name in names:
        candidate = ".".join([*base, name])
        if candidate in known:
            yield candidate
        else:
            yield ".".join(base) or "__init__"


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The wove modules that ``module`` imports anywhere in its source."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "wove":
                    found.add("__init__")
                elif alias.name.startswith("wove."):
                    found.add(alias.name.removeprefix("wove."))
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level == 0:
                if node.module == "wove":
                    found.update(_resolve([], names, known))
                elif node.module and node.module.startswith("wove."):
                    base = node.module.removeprefix("wove.").split(".")
                    found.update(_resolve(base, names, known))
                continue
            package = _package_of(module, path)
            if node.level - 1 > len(package):
                raise AssertionError(f"{module}: relative import above the wove package")
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                base = [*base, *node.module.split(".")]
            found.update(_resolve(base, names, known))
    found.discard(module)
    return found


def layer_of(module: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        for placed in layer:
            if module == placed or module.startswith(placed + "."):
                return index
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = discover_modules(source_root())
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def test_the_parser_sees_the_engine_modules(graph: dict[str, set[str]]) -> None:
    assert {"_errors", "_weave", "_scheduler", "__init__"} <= graph.keys()
    assert "_graph" in graph["_scheduler"]
    assert "_weave" in graph["__init__"]
    assert {"_config", "_weave"} <= graph["_fork_child"]
    assert "_weave" not in graph["_fork"]


def test_every_module_has_a_place_in_the_layers(graph: dict[str, set[str]]) -> None:
    unplaced = sorted(name for name in graph if layer_of(name) is None)

    assert not unplaced, f"place these modules in LAYERS of {Path(__file__).name}: {unplaced}"


def test_imports_point_left_only(graph: dict[str, set[str]]) -> None:
    wrong = []
    for module, targets in sorted(graph.items()):
        here = layer_of(module)
        for target in sorted(targets):
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                wrong.append(f"{module} (layer {here}) imports {target} (layer {there})")

    assert not wrong, "imports that point right:\n" + "\n".join(wrong)


def test_imports_name_modules_that_exist(graph: dict[str, set[str]]) -> None:
    missing = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if target not in graph
    )

    assert not missing


def _reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module reachable from ``start``, each with the module it was reached from."""
    came_from = {start: ""}
    stack = [start]
    while stack:
        current = stack.pop()
        for target in sorted(graph.get(current, ())):
            if target not in came_from:
                came_from[target] = current
                stack.append(target)
    return came_from


def _path(came_from: dict[str, str], end: str) -> str:
    steps = [end]
    while came_from[steps[-1]]:
        steps.append(came_from[steps[-1]])
    return " -> ".join(reversed(steps))


def test_executors_workers_and_callback_server_never_import_the_engine(
    graph: dict[str, set[str]],
) -> None:
    present = [name for name in BOUNDARY_MODULES if name in graph]
    assert "_executor" in present

    wrong = []
    for module in present:
        reached = _reachable(graph, module)
        wrong += [_path(reached, engine) for engine in ENGINE_ONLY if engine in reached]

    assert not wrong, "\n".join(wrong)


def test_there_are_no_import_cycles(graph: dict[str, set[str]]) -> None:
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)

    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_import_wove_leaves_the_dispatch_serializer_out() -> None:
    code = "import sys, wove; print(sorted({'cloudpickle', 'wove._fork'} & set(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )

    assert completed.stdout.strip() == "[]"
