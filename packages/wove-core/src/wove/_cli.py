"""The ``wove`` command: listing plugins, checking a configuration, running plugin worker services.

Built on argparse, because wove-core depends only on pluggy and msgspec. :func:`main` returns the
exit status instead of exiting, so tests and other programs can call it::

    wove --version
    wove plugins list [--json]        every executor plugin, its kind and whether its deps import
    wove plugins new NAME --kind K    write a new executor plugin distribution, wove-NAME
    wove doctor [--config PATH]       check each configured environment; exit 1 on any problem
    wove worker <service> ...         worker services contributed by plugins (register_commands)

Exit status: 0 when all is well, 1 when a check found problems, 2 for a usage or configuration
error. Listing plugins never imports a backend library; ``wove doctor`` loads the executor class
of each configured environment, which does.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, TypedDict

from ._config import (
    CONFIG_FILENAME,
    EnvironmentConfig,
    WoveConfig,
    build_config,
    find_config_file,
    load_config_file,
)
from ._errors import PluginError, install_line
from ._executor import Executor
from ._install import REINSTALL_COMMAND, installation_problems
from ._options import suggest
from ._registry import PluginCommand, PluginInfo, Registry, get_registry
from ._scaffold import KINDS as SCAFFOLD_KINDS
from ._scaffold import create_plugin
from ._security import unset_secret_variables

__all__ = ["main", "build_parser"]

EXIT_OK: Final = 0
EXIT_PROBLEMS: Final = 1
EXIT_USAGE: Final = 2

_Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wove`` command with ``argv`` (default: ``sys.argv[1:]``) and return its status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        # Plugins are discovered only for ``wove worker``; other commands ask when they need them.
        commands = get_registry().commands() if arguments[:1] == ["worker"] else []
        unknown = _unknown_worker_command(arguments, commands)
        if unknown is not None:
            _error(unknown)
            return EXIT_USAGE
        parser = build_parser(commands)
        try:
            args = parser.parse_args(arguments)
        except SystemExit as exit_:  # argparse exits on --help and on usage errors
            return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
        if args.version:
            print(f"wove-core {_version()}")
            return EXIT_OK
        handler: _Handler | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return EXIT_USAGE
        return handler(args)
    except PluginError as exc:
        _error(str(exc))
        return EXIT_PROBLEMS


def build_parser(commands: Sequence[PluginCommand] = ()) -> argparse.ArgumentParser:
    """Build the argument parser, with ``commands`` as the ``wove worker`` services."""
    parser = argparse.ArgumentParser(
        prog="wove",
        description="Inline task orchestration: inspect plugins, check configuration, run workers.",
    )
    parser.add_argument("--version", action="store_true", help="print the wove-core version")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    plugins = sub.add_parser("plugins", help="inspect installed executor plugins")
    plugins.set_defaults(handler=_plugins_list, json=False)
    plugins_sub = plugins.add_subparsers(title="commands", metavar="COMMAND")
    listing = plugins_sub.add_parser(
        "list",
        help="list executor plugins and whether their dependencies are importable",
        description="List executor plugins without importing any backend library.",
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list of plugins")
    listing.set_defaults(handler=_plugins_list)
    new = plugins_sub.add_parser(
        "new",
        help="write a new executor plugin distribution, ready to test",
        description=(
            "Write the distribution wove-NAME (import package wove_NAME, executor NAME): a "
            "pyproject.toml with the entry point, a working executor of the given kind, tests "
            "that run Wove's conformance kits against it, a README and a docs page. Nothing "
            "existing is overwritten."
        ),
    )
    new.add_argument(
        "name",
        metavar="NAME",
        help="the executor name: lowercase letters, digits, '-' or '_', such as 'pigeon'",
    )
    new.add_argument(
        "--kind",
        required=True,
        choices=SCAFFOLD_KINDS,
        help=(
            "backend: jobs in a task system you run (the skeleton starts a process per job); "
            "network: a client of a worker service the package provides (wove worker NAME); "
            "process: a pool of worker processes over pipes"
        ),
    )
    new.add_argument(
        "--directory",
        metavar="DIR",
        default=".",
        help="where to create the wove-NAME folder (default: the current directory)",
    )
    new.set_defaults(handler=_plugins_new)

    doctor = sub.add_parser(
        "doctor",
        help="check the configuration and every environment's executor",
        description=(
            "Load the configuration and check each environment: its executor plugin is "
            "installed and working, its required modules import, its executor_config keys are "
            "accepted, and the plugins' own diagnostics pass. Exits 1 if anything is wrong."
        ),
    )
    doctor.add_argument(
        "--config",
        metavar="PATH",
        help=f"configuration file (default: the nearest {CONFIG_FILENAME} upward from here)",
    )
    doctor.set_defaults(handler=_doctor)

    worker = sub.add_parser(
        "worker",
        help="run a worker service that a plugin provides",
        description="Run a worker service. Executor plugins add services here.",
    )
    worker_sub = worker.add_subparsers(title="services", metavar="SERVICE")
    for command in commands:
        service = worker_sub.add_parser(command.name, help=command.help, description=command.help)
        try:
            command.configure(service)
        except Exception as exc:
            raise PluginError(
                f"the 'wove worker {command.name}' command from {command.distribution!r} could "
                f"not set up its arguments: {type(exc).__name__}: {exc}"
            ) from exc
        service.set_defaults(handler=command.run)
    worker.set_defaults(handler=_worker_help(worker, commands))
    return parser


# -- wove plugins list -----------------------------------------------------------------------


def _plugins_list(args: argparse.Namespace) -> int:
    infos = get_registry().plugins()
    rows = [_plugin_row(info) for info in infos]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(
            "No Wove executor plugins are installed, not even wove-core's built-in 'local', so "
            f"wove-core's installation is incomplete. Repair it with: {REINSTALL_COMMAND}"
        )
        return EXIT_PROBLEMS
    table: list[tuple[str, ...]] = [("NAME", "DISTRIBUTION", "VERSION", "KIND", "DEPS", "STATUS")]
    for row in rows:
        if row["error"] is not None:
            deps, status = "-", f"broken: {row['error']}"
        else:
            deps = f"missing: {', '.join(row['missing'])}" if row["missing"] else "ok"
            status = "ok"
        cells = (row["name"], row["distribution"], row["version"], row["kind"], deps, status)
        table.append(tuple(cell or "-" for cell in cells))
    print(_format_table(table))
    fixes = [row for row in rows if not row["ok"]]
    if fixes:
        print()
        for row in fixes:
            print(f"{row['name']}: {row['install']}")
    return EXIT_OK


class _PluginRow(TypedDict):
    """One plugin as ``wove plugins list --json`` prints it."""

    name: str
    distribution: str
    version: str
    kind: str
    requires: list[str]
    missing: list[str]
    ok: bool
    install: str
    error: str | None


def _plugin_row(info: PluginInfo) -> _PluginRow:
    missing = list(info.missing_modules())
    return {
        "name": info.name,
        "distribution": info.distribution,
        "version": info.version,
        "kind": info.kind,
        "requires": list(info.requires),
        "missing": missing,
        "ok": not info.is_broken and not missing,
        "install": info.install,
        "error": info.error,
    }


def _format_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


# -- wove plugins new ------------------------------------------------------------------------


def _plugins_new(args: argparse.Namespace) -> int:
    try:
        created = create_plugin(args.name, kind=args.kind, parent=Path(args.directory))
    except (ValueError, OSError) as exc:  # a bad NAME, an existing folder, a failed write
        _error(f"plugins new: {exc}")
        return EXIT_USAGE
    print(
        f"Created {created.distribution} in {created.root}: a {created.kind} executor plugin "
        f"(executor {created.name!r}, import package {created.package})."
    )
    for path in created.files:
        print(f"  {path}")
    test_tools = " ".join(shlex.quote(requirement) for requirement in created.test_requirements)
    print(
        "\nNext, in that folder: install it with its test tools, and run its tests (they pass "
        "as created):\n"
        f"  python -m pip install -e . {test_tools}\n"
        "  python -m pytest\n"
        'Then replace each part marked "YOUR SYSTEM" with your own system; docs/index.md walks '
        "through it."
    )
    return EXIT_OK


# -- wove doctor -----------------------------------------------------------------------------


def _doctor(args: argparse.Namespace) -> int:
    try:
        config = _load_config(args.config)
    except Exception as exc:  # the user's file runs here, so any error is a configuration error
        _error(f"cannot load the configuration: {type(exc).__name__}: {exc}")
        return EXIT_USAGE
    if config.source is not None:
        print(f"configuration: {config.source}")
    else:
        print(f"configuration: built-in defaults (no {CONFIG_FILENAME} in {Path.cwd()} or above)")
    total = 0
    for installation in installation_problems():
        total += installation.level != "note"
        print(f"installation {installation.level}: {installation}")
    registry = get_registry()
    working = [info.name for info in registry.plugins() if not info.is_broken]
    print(f"plugins: {', '.join(working) or '(none)'}")
    for info in registry.broken():
        print(f"note: plugin {info.name!r} from {info.distribution!r} is broken: {info.error}")
    for name in config.environment_names:
        environment = config.environment(name)
        summary, problems = _check_environment(environment, registry)
        total += len(problems)
        if problems:
            count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
            print(f"environment {name!r}: {count} ({summary})")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"environment {name!r}: ok ({summary})")
    if total:
        print(f"{total} problem{'s' if total > 1 else ''} found")
        return EXIT_PROBLEMS
    print("no problems found")
    return EXIT_OK


def _load_config(path: str | None) -> WoveConfig:
    file = Path(path).resolve() if path is not None else find_config_file()
    if file is None:
        return build_config({})
    return build_config(load_config_file(file), source=file)


def _check_environment(environment: EnvironmentConfig, registry: Registry) -> tuple[str, list[str]]:
    """Return a one-line summary of the environment's executor and the problems found."""
    problems: list[str] = []
    executor = environment.executor
    executor_class: type[Executor] | None = None
    if isinstance(executor, Executor):
        executor_class = type(executor)
        summary = f"executor instance of {executor_class.__qualname__}"
    else:
        summary = f"executor {executor!r}"
        info = registry.plugin(executor)
        if info is None:
            problems.append(
                f"no installed plugin provides executor {executor!r}. "
                f"Install it with: {install_line(executor)}"
            )
        elif info.is_broken:
            problems.append(
                f"the plugin for executor {executor!r} from {info.distribution!r} is broken: "
                f"{info.error}"
            )
        else:
            summary = f"executor {executor!r} from {info.distribution} {info.version}".rstrip()
            try:
                registry.check_requirements(executor, environment.name)
                executor_class = registry.executor_class(executor, environment.name)
            except PluginError as exc:
                problems.append(str(exc))
    if executor_class is not None and executor_class.config_keys is not None:
        accepted = executor_class.config_keys
        for key in sorted(set(environment.executor_config) - accepted):
            listed = ", ".join(sorted(accepted)) or "(none)"
            problems.append(
                f"executor_config key {key!r} is not accepted by {environment.executor_name!r}."
                f"{suggest(key, accepted)} Accepted keys: {listed}."
            )
    for variable in unset_secret_variables(environment.executor_config.get("security")):
        problems.append(
            f"security reads the secret from environment variable {variable!r}, which is not "
            f"set here; export {variable}=<the shared secret> before running the weave"
        )
    for diagnostic in registry.diagnostics():
        if not diagnostic.applies_to(environment):
            continue
        try:
            found = [str(problem) for problem in diagnostic.check(environment)]
        except Exception as exc:  # a failing check is reported as a problem, not a crash
            found = [f"the check itself failed: {type(exc).__name__}: {exc}"]
        problems.extend(f"{diagnostic.name} ({diagnostic.distribution}): {p}" for p in found)
    return summary, problems


# -- wove worker -----------------------------------------------------------------------------


def _worker_help(parser: argparse.ArgumentParser, commands: Sequence[PluginCommand]) -> _Handler:
    def show(args: argparse.Namespace) -> int:
        if not commands:
            _error(
                "no installed plugin provides a worker service. Executor plugins with a worker "
                f"side add one; for example: {install_line('http')}"
            )
        else:
            parser.print_help()
        return EXIT_USAGE

    return show


def _unknown_worker_command(
    arguments: Sequence[str], commands: Sequence[PluginCommand]
) -> str | None:
    if arguments[:1] != ["worker"] or len(arguments) < 2 or arguments[1].startswith("-"):
        return None
    name = arguments[1]
    if any(command.name == name for command in commands):
        return None
    available = ", ".join(repr(command.name) for command in commands) or "(none)"
    return (
        f"no installed plugin provides 'wove worker {name}' (available: {available}). Worker "
        f"services come with executor plugins; if {name!r} is one: {install_line(name)}"
    )


# -- helpers ---------------------------------------------------------------------------------


def _version() -> str:
    try:
        return importlib.metadata.version("wove-core")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown: wove-core is not installed)"


def _error(message: str) -> None:
    print(f"wove: {message}", file=sys.stderr)
