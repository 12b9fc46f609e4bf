"""Plugin discovery: entry points, metadata, broken and duplicate plugins, strict mode.

Nothing happens on ``import wove``. The first call to :func:`get_registry` reads the
``wove.executors`` entry points, imports each plugin module (cheap by contract: backends load
only through the ``load`` callable a plugin registers) and calls its hooks one plugin at a time,
so a failure is pinned on the plugin that caused it. The result is kept for the process.

The rules:

* A plugin whose module cannot be imported, whose hook raises, or that breaks a registration rule
  (an entry-point name that differs from the executor name it registers, an unknown kind, ...)
  is *broken*: logged and listed by ``wove plugins list``, never fatal -- unless
  ``WOVE_STRICT_PLUGINS=1``, which turns it into a :class:`~wove._errors.PluginError`.
* One executor name offered by two distributions is always a
  :class:`~wove._errors.DuplicatePluginError` naming both.
* Listing plugins and checking their requirements never imports a backend: required modules are
  located with :func:`importlib.util.find_spec`. An executor class is loaded the first time the
  engine asks for it, and cached.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import pluggy

from ._errors import DuplicatePluginError, MissingExecutorPluginError, PluginError, install_line
from ._executor import EXECUTOR_KINDS, Executor
from ._hooks import PROJECT_NAME, WoveHookSpecs

if TYPE_CHECKING:
    import argparse

    from ._config import EnvironmentConfig

__all__ = [
    "ENTRY_POINT_GROUP",
    "STRICT_ENV_VAR",
    "PluginInfo",
    "PluginCommand",
    "PluginDiagnostic",
    "Registry",
    "get_registry",
    "reset_registry",
    "is_strict",
    "is_module_available",
]

ENTRY_POINT_GROUP: Final = "wove.executors"
STRICT_ENV_VAR: Final = "WOVE_STRICT_PLUGINS"
_TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})
_UNKNOWN_DISTRIBUTION: Final = "<unknown distribution>"

logger = logging.getLogger(__name__)


def is_module_available(module: str) -> bool:
    """Tell whether the top-level package of ``module`` can be imported, without importing it."""
    top = module.partition(".")[0]
    if top in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """What one plugin offers, as ``wove plugins list`` shows it.

    Attributes:
        name: the executor name (for a plugin broken before registering, its entry-point name).
        distribution: the distribution that ships the plugin.
        version: that distribution's version.
        kind: ``"local"``, ``"process"``, ``"network"`` or ``"backend"``; empty when unknown.
        requires: modules the executor imports when it loads (checked by top-level name).
        install: the pip command that installs the plugin and its requirements.
        description: one line from the plugin.
        error: why the plugin is broken; ``None`` when it is not.
    """

    name: str
    distribution: str
    version: str
    kind: str
    requires: tuple[str, ...] = ()
    install: str = ""
    description: str = ""
    error: str | None = None

    @property
    def is_broken(self) -> bool:
        """Whether the plugin failed to load or broke a registration rule."""
        return self.error is not None

    def missing_modules(self) -> tuple[str, ...]:
        """Return the required modules that cannot be imported (found without importing them)."""
        return tuple(module for module in self.requires if not is_module_available(module))


@dataclasses.dataclass(frozen=True)
class PluginCommand:
    """A ``wove worker <name>`` command contributed by a plugin."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    distribution: str


@dataclasses.dataclass(frozen=True)
class PluginDiagnostic:
    """A ``wove doctor`` check from a plugin; with ``executor=None`` it checks every environment."""

    name: str
    check: Callable[[EnvironmentConfig], Iterable[str]]
    executor: str | None
    distribution: str

    def applies_to(self, environment: EnvironmentConfig) -> bool:
        """Whether this check runs for ``environment``."""
        return self.executor is None or self.executor == environment.executor_name


@dataclasses.dataclass(frozen=True)
class _ExecutorEntry:
    info: PluginInfo
    load: Callable[[], type[Executor]]


@dataclasses.dataclass(frozen=True)
class _Source:
    """Where a plugin came from, for messages and metadata."""

    distribution: str
    version: str
    label: str
    #: The executor name the plugin must register (its entry-point name), if any.
    expected_name: str | None

    def describe(self) -> str:
        return f"{self.label} from distribution {self.distribution!r}"

    def install_line(self, executor_name: str) -> str:
        """The pip command for this plugin: its own distribution when one is known."""
        if self.distribution.startswith("<"):
            return install_line(executor_name)
        return f"pip install {self.distribution}"


@dataclasses.dataclass
class _Offers:
    """What one plugin's hooks passed to their ``register`` callbacks, not yet checked."""

    executors: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    commands: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    diagnostics: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def register_executor(
        self,
        *,
        name: str,
        kind: str,
        load: Callable[[], type[Executor]],
        requires: Sequence[str] = (),
        description: str = "",
    ) -> None:
        self.executors.append(
            {
                "name": name,
                "kind": kind,
                "load": load,
                "requires": requires,
                "description": description,
            }
        )

    def register_command(
        self,
        *,
        name: str,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int],
    ) -> None:
        self.commands.append({"name": name, "help": help, "configure": configure, "run": run})

    def register_diagnostic(
        self,
        *,
        name: str,
        check: Callable[[EnvironmentConfig], Iterable[str]],
        executor: str | None = None,
    ) -> None:
        self.diagnostics.append({"name": name, "check": check, "executor": executor})


@dataclasses.dataclass
class _Owned:
    """Everything one plugin added, so it can be unregistered."""

    plugin: object
    executors: list[str] = dataclasses.field(default_factory=list)
    commands: list[str] = dataclasses.field(default_factory=list)
    diagnostics: list[PluginDiagnostic] = dataclasses.field(default_factory=list)
    broken: str | None = None


class _BrokenPluginError(Exception):
    """A plugin broke a registration rule; the message says which."""


class Registry:
    """The executors, worker commands and diagnostics that installed plugins offer.

    Get the process-wide one with :func:`get_registry`; build one directly only in tests.

    Args:
        strict: raise :class:`PluginError` for a broken plugin instead of recording it.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self._strict = strict
        self._lock = threading.RLock()
        self._pm = pluggy.PluginManager(PROJECT_NAME)
        self._pm.add_hookspecs(WoveHookSpecs)
        self._executors: dict[str, _ExecutorEntry] = {}
        self._broken: dict[str, PluginInfo] = {}
        self._commands: dict[str, PluginCommand] = {}
        self._diagnostics: list[PluginDiagnostic] = []
        self._classes: dict[str, type[Executor]] = {}
        self._owned: dict[int, _Owned] = {}

    # -- discovery -------------------------------------------------------------------------

    def discover(self) -> None:
        """Load every plugin in the ``wove.executors`` entry-point group.

        Raises:
            DuplicatePluginError: two distributions use the same entry-point name.
            PluginError: a plugin is broken and strict mode is on.
        """
        entry_points = sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
            key=lambda ep: (ep.name, _distribution_of(ep)[0]),
        )
        # Duplicates are checked before any plugin is imported, so a broken one is still named.
        owners: dict[str, str] = {}
        unique: list[importlib.metadata.EntryPoint] = []
        for ep in entry_points:
            distribution = _distribution_of(ep)[0]
            owner = owners.get(ep.name)
            if owner is None:
                owners[ep.name] = distribution
                unique.append(ep)
            elif owner != distribution:
                raise DuplicatePluginError(ep.name, owner, distribution)
        with self._lock:
            for ep in unique:
                self._load_entry_point(ep)

    def register_plugin(
        self,
        plugin: object,
        *,
        distribution: str = "<in-memory>",
        version: str = "",
        name: str | None = None,
    ) -> None:
        """Register a plugin object directly, as if an entry point had named it.

        Used by tests and by applications that ship a plugin without packaging it. The same
        rules apply as for discovered plugins.

        Args:
            plugin: a module, class or instance with ``@hookimpl`` functions.
            distribution: reported as the plugin's distribution.
            version: reported as the distribution's version.
            name: the executor name the plugin must register, like an entry-point name.

        Raises:
            DuplicatePluginError: an executor name is already offered by another distribution.
            PluginError: the plugin is broken and strict mode is on.
        """
        label = (
            f"in-memory plugin {name!r} ({plugin!r})" if name else f"in-memory plugin {plugin!r}"
        )
        with self._lock:
            self._add(plugin, _Source(distribution, version, label, name))

    def unregister_plugin(self, plugin: object) -> None:
        """Remove a plugin added with :meth:`register_plugin`, and everything it registered."""
        with self._lock:
            owned = self._owned.pop(id(plugin), None)
            if owned is None:
                raise ValueError(f"{plugin!r} is not registered with this plugin registry")
            for name in owned.executors:
                del self._executors[name]
                self._classes.pop(name, None)
            for command in owned.commands:
                del self._commands[command]
            self._diagnostics = [d for d in self._diagnostics if d not in owned.diagnostics]
            if owned.broken is not None:
                self._broken.pop(owned.broken, None)
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
        distribution, version = _distribution_of(ep)
        source = _Source(distribution, version, f"entry point {ep.name} = {ep.value}", ep.name)
        try:
            plugin = ep.load()
        except Exception as exc:
            self._record_broken(None, source, f"cannot import {ep.value!r}: {_oneline(exc)}", exc)
            return
        self._add(plugin, source)

    def _add(self, plugin: object, source: _Source) -> None:
        if self._pm.is_registered(plugin):
            self._record_broken(
                None,
                source,
                f"the same plugin object is already registered as {self._pm.get_name(plugin)!r}",
                None,
            )
            return
        key = f"{source.distribution}:{source.expected_name or f'{plugin!r}@{id(plugin):x}'}"
        try:
            self._pm.register(plugin, name=key)
        except Exception as exc:  # pluggy names the hook and signature it rejects
            self._record_broken(plugin, source, _oneline(exc), exc)
            return
        offers = _Offers()
        try:
            self._pm.check_pending()
            for hook, register in (
                ("register_executors", offers.register_executor),
                ("register_commands", offers.register_command),
                ("register_diagnostics", offers.register_diagnostic),
            ):
                others = [other for other in self._pm.get_plugins() if other is not plugin]
                try:
                    self._pm.subset_hook_caller(hook, remove_plugins=others)(register=register)
                except Exception as exc:
                    raise _BrokenPluginError(f"{hook} raised {_oneline(exc)}") from exc
            entries = self._check_executors(offers.executors, source)
            commands = self._check_commands(offers.commands, source)
            diagnostics = _check_diagnostics(offers.diagnostics, source)
        except Exception as exc:
            self._pm.unregister(plugin)
            error = str(exc) if isinstance(exc, _BrokenPluginError) else _oneline(exc)
            offered = [
                offer["name"] for offer in offers.executors if isinstance(offer["name"], str)
            ]
            self._record_broken(plugin, source, error, exc, offered[0] if offered else None)
            return
        for entry in entries:
            clash = self.plugin(entry.info.name)
            if clash is not None:
                self._pm.unregister(plugin)
                raise DuplicatePluginError(entry.info.name, clash.distribution, source.distribution)
        owned = _Owned(plugin)
        for entry in entries:
            self._executors[entry.info.name] = entry
            owned.executors.append(entry.info.name)
        for command in commands:
            self._commands[command.name] = command
            owned.commands.append(command.name)
        self._diagnostics.extend(diagnostics)
        owned.diagnostics.extend(diagnostics)
        self._owned[id(plugin)] = owned

    def _record_broken(
        self,
        plugin: object | None,
        source: _Source,
        error: str,
        cause: BaseException | None,
        offered_name: str | None = None,
    ) -> None:
        name = source.expected_name or offered_name or source.label
        if self._strict:
            raise PluginError(
                f"the Wove {source.describe()} is broken: {error}. Fix or uninstall "
                f"{source.distribution!r}, or unset {STRICT_ENV_VAR} to skip broken plugins."
            ) from cause
        logger.warning(
            "skipping a broken Wove plugin, %s: %s (set %s=1 to make this an error)",
            source.describe(),
            error,
            STRICT_ENV_VAR,
        )
        self._broken[name] = PluginInfo(
            name=name,
            distribution=source.distribution,
            version=source.version,
            kind="",
            install=source.install_line(name),
            error=error,
        )
        if plugin is not None:
            self._owned[id(plugin)] = _Owned(plugin, broken=name)

    def _check_executors(
        self, offers: list[dict[str, Any]], source: _Source
    ) -> list[_ExecutorEntry]:
        entries: list[_ExecutorEntry] = []
        for offer in offers:
            name, kind, load = offer["name"], offer["kind"], offer["load"]
            requires, description = offer["requires"], offer["description"]
            if not isinstance(name, str) or not name:
                raise _BrokenPluginError(f"executor names must be non-empty strings, got {name!r}")
            expected = source.expected_name
            if expected is not None and name != expected:
                raise _BrokenPluginError(
                    f"entry point {expected!r} registers executor {name!r}; the entry-point "
                    f"name must be the executor name, so rename one of them"
                )
            if any(entry.info.name == name for entry in entries):
                raise _BrokenPluginError(f"executor {name!r} is registered twice")
            if kind not in EXECUTOR_KINDS:
                raise _BrokenPluginError(
                    f"executor {name!r} has kind {kind!r}; use one of "
                    f"{', '.join(repr(k) for k in EXECUTOR_KINDS)}"
                )
            if not callable(load):
                raise _BrokenPluginError(
                    f"executor {name!r}: load must be a callable returning the executor class, "
                    f"got {load!r}"
                )
            if isinstance(requires, str) or not all(
                isinstance(module, str) and module for module in requires
            ):
                raise _BrokenPluginError(
                    f"executor {name!r}: requires must be a sequence of module names such as "
                    f"('celery',), got {requires!r}"
                )
            if not isinstance(description, str):
                raise _BrokenPluginError(
                    f"executor {name!r}: description must be a string, got {description!r}"
                )
            info = PluginInfo(
                name=name,
                distribution=source.distribution,
                version=source.version,
                kind=kind,
                requires=tuple(requires),
                install=source.install_line(name),
                description=description,
            )
            entries.append(_ExecutorEntry(info, load))
        if source.expected_name is not None and not entries:
            raise _BrokenPluginError(
                f"entry point {source.expected_name!r} registers no executor; its "
                f"register_executors hook must call register(name={source.expected_name!r}, ...)"
            )
        return entries

    def _check_commands(self, offers: list[dict[str, Any]], source: _Source) -> list[PluginCommand]:
        commands: list[PluginCommand] = []
        for offer in offers:
            name = offer["name"]
            if not isinstance(name, str) or not name or name.split() != [name]:
                raise _BrokenPluginError(
                    f"command names must be single words such as 'http', got {name!r}"
                )
            if not callable(offer["configure"]) or not callable(offer["run"]):
                raise _BrokenPluginError(f"command {name!r}: configure and run must be callables")
            taken = self._commands.get(name)
            if taken is not None or any(command.name == name for command in commands):
                owner = taken.distribution if taken else source.distribution
                raise _BrokenPluginError(
                    f"command 'wove worker {name}' is already provided by {owner!r}"
                )
            commands.append(PluginCommand(distribution=source.distribution, **offer))
        return commands

    # -- queries ---------------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        """Return every plugin, working or broken, sorted by name."""
        with self._lock:
            found = [entry.info for entry in self._executors.values()]
            found.extend(self._broken.values())
        return sorted(found, key=lambda info: (info.name, info.distribution))

    def broken(self) -> list[PluginInfo]:
        """Return the broken plugins, sorted by name."""
        return [info for info in self.plugins() if info.is_broken]

    def plugin(self, name: str) -> PluginInfo | None:
        """Return the plugin offering executor ``name`` (possibly broken), or ``None``."""
        with self._lock:
            entry = self._executors.get(name)
            return entry.info if entry is not None else self._broken.get(name)

    def executor_names(self) -> list[str]:
        """Return the names of the executors that working plugins offer, sorted."""
        with self._lock:
            return sorted(self._executors)

    def commands(self) -> list[PluginCommand]:
        """Return the ``wove worker`` commands plugins contribute, sorted by name."""
        with self._lock:
            return sorted(self._commands.values(), key=lambda command: command.name)

    def diagnostics(self) -> list[PluginDiagnostic]:
        """Return the ``wove doctor`` checks plugins contribute, sorted by name."""
        with self._lock:
            return sorted(self._diagnostics, key=lambda d: (d.name, d.distribution))

    def executor_class(self, name: str, environment: str) -> type[Executor]:
        """Return the executor class for ``name``, loading it (and its backend) on first use.

        Args:
            name: the executor name, as written in the environment's ``executor``.
            environment: the environment that asks, for error messages.

        Returns:
            The :class:`~wove.Executor` subclass the plugin's ``load`` returned; cached.

        Raises:
            MissingExecutorPluginError: no installed plugin offers ``name``.
            PluginError: the plugin is broken, its ``load`` failed, or it returned something
                other than an ``Executor`` subclass of the registered kind.
        """
        with self._lock:
            cached = self._classes.get(name)
            if cached is not None:
                return cached
            entry = self._entry(name, environment)
            info = entry.info
            try:
                loaded: object = entry.load()
            except Exception as exc:
                hint = ""
                if isinstance(exc, ImportError):
                    hint = f" Install what it needs with: {info.install}"
                raise PluginError(
                    f"executor {name!r} from {info.distribution!r} failed to load for "
                    f"environment {environment!r}: {_oneline(exc)}.{hint}"
                ) from exc
            if not (isinstance(loaded, type) and issubclass(loaded, Executor)):
                raise PluginError(
                    f"executor {name!r} from {info.distribution!r}: its load() returned "
                    f"{loaded!r}, which is not a subclass of wove.Executor. The plugin must "
                    "return its executor class."
                )
            if loaded.kind != info.kind:
                raise PluginError(
                    f"executor {name!r} from {info.distribution!r} is registered with kind "
                    f"{info.kind!r} but {loaded.__qualname__}.kind is {loaded.kind!r}; the "
                    "plugin must register the kind its class declares."
                )
            self._classes[name] = loaded
            return loaded

    def check_requirements(self, name: str, environment: str | None = None) -> None:
        """Check that the modules executor ``name`` requires can be imported, without importing.

        Args:
            name: the executor name.
            environment: the environment that asks, for error messages.

        Raises:
            MissingExecutorPluginError: no installed plugin offers ``name``.
            PluginError: the plugin is broken, or a required module is missing; the message
                names the modules and the ``pip install`` line that brings them.
        """
        with self._lock:
            info = self._entry(name, environment or "(not given)").info
        missing = info.missing_modules()
        if missing:
            modules = ", ".join(repr(module) for module in missing)
            needed = "module" if len(missing) == 1 else "modules"
            where = f"environment {environment!r} uses executor" if environment else "executor"
            raise PluginError(
                f"{where} {name!r} (from {info.distribution!r}), which needs the {needed} "
                f"{modules}; it cannot be imported. Install it with: {info.install}"
            )

    def _entry(self, name: str, environment: str) -> _ExecutorEntry:
        entry = self._executors.get(name)
        if entry is not None:
            return entry
        broken = self._broken.get(name)
        if broken is not None:
            raise PluginError(
                f"environment {environment!r} uses executor {name!r}, but its plugin from "
                f"distribution {broken.distribution!r} is broken: {broken.error}. Fix or "
                f"reinstall it ({broken.install} --force-reinstall); 'wove plugins list' shows "
                "every plugin."
            )
        raise MissingExecutorPluginError(name, environment, sorted(self._executors))


def _check_diagnostics(offers: list[dict[str, Any]], source: _Source) -> list[PluginDiagnostic]:
    diagnostics: list[PluginDiagnostic] = []
    for offer in offers:
        name, check, executor = offer["name"], offer["check"], offer["executor"]
        if not isinstance(name, str) or not name:
            raise _BrokenPluginError(f"diagnostic names must be non-empty strings, got {name!r}")
        if not callable(check):
            raise _BrokenPluginError(f"diagnostic {name!r}: check must be callable, got {check!r}")
        if executor is not None and not isinstance(executor, str):
            raise _BrokenPluginError(
                f"diagnostic {name!r}: executor must be an executor name or None, got {executor!r}"
            )
        diagnostics.append(PluginDiagnostic(name, check, executor, source.distribution))
    return diagnostics


def _distribution_of(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:
        return _UNKNOWN_DISTRIBUTION, ""
    return dist.name, dist.version


def _oneline(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_lock = threading.RLock()
_registry: Registry | None = None
_discovering = False


def is_strict() -> bool:
    """Whether ``WOVE_STRICT_PLUGINS`` asks for broken plugins to be errors."""
    return os.environ.get(STRICT_ENV_VAR, "").strip().lower() in _TRUE_WORDS


def get_registry() -> Registry:
    """Return the process-wide plugin registry, discovering plugins on the first call.

    Returns:
        The registry; the same object until :func:`reset_registry`.

    Raises:
        DuplicatePluginError: two distributions offer the same executor name.
        PluginError: a plugin is broken and ``WOVE_STRICT_PLUGINS=1``.
    """
    global _registry, _discovering
    registry = _registry
    if registry is not None:
        return registry
    with _lock:
        if _registry is not None:
            return _registry
        if _discovering:
            raise PluginError(
                "the plugin registry was requested while plugins are being discovered; a plugin "
                "module must not use the registry when it is imported"
            )
        _discovering = True
        try:
            registry = Registry(strict=is_strict())
            registry.discover()
        finally:
            _discovering = False
        _registry = registry
        return registry


def reset_registry() -> None:
    """Forget the discovered plugins; the next :func:`get_registry` discovers again (for tests)."""
    global _registry
    with _lock:
        _registry = None
