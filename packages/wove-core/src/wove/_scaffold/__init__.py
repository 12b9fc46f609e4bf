"""``wove plugins new``: write a new executor plugin distribution from the templates beside this
module.

The templates live in ``templates/``: ``common/`` holds the files every kind shares, and
``backend/``, ``network/`` and ``process/`` the files of one kind (a file there replaces the
common file of the same path). A template is rendered with :class:`string.Template`, so a
placeholder reads ``${name}`` and a literal dollar sign ``$$``; a path segment ``__package__``
becomes the import package. Templates end in ``.tmpl`` so no tool mistakes them for code.

Only the standard library is used here: wove-core depends on pluggy and msgspec alone.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
import string
import sys
from collections.abc import Iterator, Mapping
from importlib.resources import files
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Final, Literal, get_args

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = ["KINDS", "MAX_NAME_LENGTH", "ScaffoldKind", "Scaffold", "check_name", "create_plugin"]

ScaffoldKind = Literal["backend", "network", "process"]
KINDS: Final[tuple[ScaffoldKind, ...]] = get_args(ScaffoldKind)

#: Longer names would push lines of the generated code past the 100 columns its ruff allows.
MAX_NAME_LENGTH: Final = 32
_NAME: Final = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
_SUFFIX: Final = ".tmpl"
_PACKAGE_SEGMENT: Final = "__package__"

#: What each kind needs from wove-core beyond pluggy and msgspec: the ``dispatch`` serializer
#: (cloudpickle) carries tasks out of the process; backends also run the callback server.
_CORE_EXTRAS: Final[Mapping[ScaffoldKind, tuple[str, ...]]] = {
    "backend": ("callback", "dispatch"),
    "network": ("dispatch",),
    "process": ("dispatch",),
}
#: The ``test`` dependency group's tools, beside ``wove-core[testing]`` (the kits).
_TEST_TOOLS: Final = ("pytest>=8.0", "pytest-timeout>=2.3")
_DESCRIPTIONS: Final[Mapping[ScaffoldKind, str]] = {
    "backend": "A Wove executor that hands each task to a task system as one job.",
    "network": "A Wove executor that runs tasks on a worker service over the network.",
    "process": "A Wove executor that runs tasks in a pool of local worker processes.",
}


@dataclasses.dataclass(frozen=True)
class Scaffold:
    """What ``wove plugins new`` wrote.

    Attributes:
        name: the executor name (and entry-point name), with underscores.
        distribution: the distribution name, ``wove-<name>`` with hyphens.
        package: the import package, ``wove_<name>``.
        kind: ``backend``, ``network`` or ``process``.
        root: the folder the distribution was written to.
        files: the files written, relative to ``root``, in the order they were written.
        test_requirements: what the package's tests need besides the package (its ``test``
            dependency group).
    """

    name: str
    distribution: str
    package: str
    kind: ScaffoldKind
    root: Path
    files: tuple[PurePosixPath, ...]
    test_requirements: tuple[str, ...]


def check_name(name: str) -> str:
    """Check a ``NAME`` given to ``wove plugins new``; return the executor name it gives.

    ``pigeon-post`` and ``pigeon_post`` both give the executor ``pigeon_post``, the distribution
    ``wove-pigeon-post`` and the package ``wove_pigeon_post``.

    Raises:
        ValueError: the name cannot be used, with what to use instead.
    """
    example = "such as 'pigeon' or 'pigeon-post'"
    if not name:
        raise ValueError(f"NAME must not be empty; give the executor a name, {example}")
    if name.lower() != name and _NAME.fullmatch(name.lower()):
        raise ValueError(
            f"NAME must be lowercase, got {name!r}; use {name.lower()!r} (distribution names are "
            "case-insensitive, and executor names are written in lowercase)"
        )
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"NAME must start with a letter and hold only lowercase letters, digits and single "
            f"'-' or '_' between them, {example}; got {name!r}"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"NAME is {len(name)} characters long, more than {MAX_NAME_LENGTH}; choose a "
            f"shorter one, got {name!r}"
        )
    executor = name.replace("-", "_")
    if executor == "wove" or executor.startswith("wove_"):
        shorter = name[5:] or "pigeon"
        raise ValueError(
            f"NAME is the executor name, without the 'wove-' prefix its distribution gets: "
            f"for wove-{shorter}, run 'wove plugins new {shorter}' (got {name!r})"
        )
    if executor == "core":
        raise ValueError(
            "NAME 'core' would make the distribution wove-core, which is Wove itself; "
            "choose another name"
        )
    for entry_point in importlib.metadata.entry_points(group="wove.executors", name=executor):
        owner = entry_point.dist.name if entry_point.dist is not None else "an unknown distribution"
        raise ValueError(
            f"executor name {executor!r} is already registered by {owner!r}, installed here; "
            "two distributions that register one name break each other. Choose another NAME"
        )
    return executor


def create_plugin(name: str, *, kind: str, parent: Path) -> Scaffold:
    """Write the distribution ``wove-<name>`` of an executor of ``kind`` into ``parent``.

    Args:
        name: the executor name, checked by :func:`check_name`.
        kind: ``backend``, ``network`` or ``process``.
        parent: the folder to create ``wove-<name>/`` in; created if missing.

    Returns:
        What was written.

    Raises:
        ValueError: the name or the kind cannot be used.
        FileExistsError: ``parent/wove-<name>`` exists already; nothing was written.
        OSError: a file could not be written.
    """
    executor = check_name(name)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    scaffold_kind: ScaffoldKind = kind  # narrowed by the check just above
    distribution = "wove-" + executor.replace("_", "-")
    package = f"wove_{executor}"
    root = parent / distribution
    if root.exists() or root.is_symlink():
        raise FileExistsError(
            f"{root} already exists, and 'wove plugins new' never overwrites anything. Remove "
            "it, or create the plugin elsewhere with --directory DIR"
        )
    values = _values(executor, distribution, package, scaffold_kind)
    rendered = [
        (_output_path(relative, package), _render(template, relative, values))
        for relative, template in _templates(scaffold_kind)
    ]
    parent.mkdir(parents=True, exist_ok=True)
    root.mkdir()  # fails if another process created it since the check above
    for relative, text in rendered:
        target = root.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return Scaffold(
        name=executor,
        distribution=distribution,
        package=package,
        kind=scaffold_kind,
        root=root,
        files=tuple(relative for relative, _ in rendered),
        test_requirements=_test_requirements(),
    )


def _test_requirements() -> tuple[str, ...]:
    return (f"wove-core[testing]>={_core_version()}", *_TEST_TOOLS)


def _values(executor: str, distribution: str, package: str, kind: ScaffoldKind) -> dict[str, str]:
    version = _core_version()
    extras = ",".join(_CORE_EXTRAS[kind])
    return {
        "name": executor,
        "distribution": distribution,
        "package": package,
        "cls": "".join(part.capitalize() for part in executor.split("_")),
        "kind": kind,
        "executor_module": "_adapter" if kind == "backend" else "_executor",
        "description": _DESCRIPTIONS[kind],
        "core_version": version,
        "core_requirement": f"wove-core[{extras}]>={version}",
        "test_install": " ".join(f'"{requirement}"' for requirement in _test_requirements()),
        "test_group": "".join(f'  "{requirement}",\n' for requirement in _test_requirements()),
        "secret_env": f"WOVE_{executor.upper()}_TEST_SECRET",
    }


def _core_version() -> str:
    try:
        return importlib.metadata.version("wove-core")
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(
            "wove-core is not installed (its version is the new plugin's lower bound); install "
            "it, e.g. pip install -e packages/wove-core, and run the command again"
        ) from None


def _templates(kind: ScaffoldKind) -> list[tuple[PurePosixPath, Traversable]]:
    """Every template for ``kind``: the common ones, replaced or added to by the kind's own."""
    base = files(__name__).joinpath("templates")
    chosen: dict[PurePosixPath, Traversable] = {}
    for folder in ("common", kind):
        for relative, template in _walk(base.joinpath(folder), PurePosixPath()):
            chosen[relative] = template
    return sorted(chosen.items(), key=lambda item: str(item[0]))


def _walk(
    folder: Traversable, prefix: PurePosixPath
) -> Iterator[tuple[PurePosixPath, Traversable]]:
    for entry in folder.iterdir():
        if entry.is_dir():
            if entry.name != "__pycache__":
                yield from _walk(entry, prefix / entry.name)
        elif entry.name.endswith(_SUFFIX):
            yield prefix / entry.name, entry


def _output_path(relative: PurePosixPath, package: str) -> PurePosixPath:
    parts = [package if part == _PACKAGE_SEGMENT else part for part in relative.parts]
    parts[-1] = parts[-1].removesuffix(_SUFFIX)
    return PurePosixPath(*parts)


def _render(template: Traversable, relative: PurePosixPath, values: Mapping[str, str]) -> str:
    text = template.read_text(encoding="utf-8")
    try:
        return string.Template(text).substitute(values)
    except (KeyError, ValueError) as error:  # a bug in a template shipped with wove-core
        raise RuntimeError(f"the scaffold template {relative} is broken: {error!r}") from error
