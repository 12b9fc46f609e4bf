"""Process-wide configuration: ``wove.config()``, ``wove_config.py``, and the order settings apply.

A configuration is immutable once built. ``wove.config()`` builds a new one from the one in
force and what the call names, as wove 2.x did: each setting it names replaces that setting,
named environments merge (a later definition of a name replaces it; ``None`` removes it), and
everything else is kept. A weave that already resolved its settings never sees a half-applied
change.

Environment names resolve, most specific first: the task's ``environment=``, the weave's
``environment=``, ``config(default_environment=)``, then ``"default"``. Settings apply closest to
the task first: task options, weave options, the task's own environment, global defaults, built-ins.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from ._errors import InvalidOptionError, UnknownEnvironmentError
from ._executor import Executor
from ._options import (
    BUILTIN_SETTINGS,
    CONFIG_KEYS,
    DEFAULT_KEYS,
    ENVIRONMENT_KEYS,
    check_names,
    validate_option,
)

__all__ = [
    "CONFIG_FILENAME",
    "DEFAULT_ENVIRONMENT",
    "EnvironmentConfig",
    "WoveConfig",
    "config",
    "current_config",
    "find_config_file",
    "install_config",
    "load_config_file",
    "merge_options",
    "reset_config",
]

CONFIG_FILENAME: Final = "wove_config.py"
DEFAULT_ENVIRONMENT: Final = "default"
LOCAL_EXECUTOR: Final = "local"


@dataclasses.dataclass(frozen=True)
class EnvironmentConfig:
    """One named environment: which executor runs its tasks, and its defaults."""

    name: str
    executor: str | Executor = LOCAL_EXECUTOR
    executor_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def executor_name(self) -> str:
        """The plugin name, or the class name for an executor given as an instance."""
        if isinstance(self.executor, str):
            return self.executor
        return type(self.executor).__name__


@dataclasses.dataclass(frozen=True)
class WoveConfig:
    """The configuration in force. Build one with :func:`config`."""

    environments: Mapping[str, EnvironmentConfig]
    defaults: Mapping[str, Any]
    default_environment: str | None = None
    source: Path | None = None
    generation: int = 0
    #: The validated keywords this configuration was built from (used to rebuild it elsewhere).
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def environment_names(self) -> tuple[str, ...]:
        """Every environment a task may name, the implicit ``"default"`` included."""
        names = tuple(self.environments)
        return names if DEFAULT_ENVIRONMENT in names else (DEFAULT_ENVIRONMENT, *names)

    def resolve_environment_name(
        self, task_environment: str | None = None, weave_environment: str | None = None
    ) -> str:
        """Pick the environment for a task, most specific first, and check it exists."""
        name = task_environment or weave_environment or self.default_environment
        name = name or DEFAULT_ENVIRONMENT
        if name not in self.environments and name != DEFAULT_ENVIRONMENT:
            raise UnknownEnvironmentError(name, self.environment_names)
        return name

    def environment(self, name: str) -> EnvironmentConfig:
        """Return the environment called ``name``; ``"default"`` is local unless configured."""
        found = self.environments.get(name)
        if found is not None:
            return found
        if name == DEFAULT_ENVIRONMENT:
            return _IMPLICIT_DEFAULT
        raise UnknownEnvironmentError(name, self.environment_names)

    def layered_settings(self, environment_name: str) -> dict[str, Any]:
        """Built-ins, overlaid by global defaults, overlaid by the environment's own settings."""
        layered = dict(BUILTIN_SETTINGS)
        layered.update(self.defaults)
        layered.update(self.environment(environment_name).settings)
        return layered


_IMPLICIT_DEFAULT: Final = EnvironmentConfig(name=DEFAULT_ENVIRONMENT)

_lock = threading.Lock()
#: Held by ``config()`` from reading the configuration in force to installing the next, so two
#: threads configuring at once both have their settings kept.
_update_lock = threading.Lock()
_current = WoveConfig(environments=MappingProxyType({}), defaults=MappingProxyType({}))


def current_config() -> WoveConfig:
    """Return the configuration in force (built-ins until :func:`config` is called)."""
    return _current


def reset_config() -> WoveConfig:
    """Return to the built-in configuration; tests call this between cases."""
    return _install(WoveConfig(environments=MappingProxyType({}), defaults=MappingProxyType({})))


def install_config(new: WoveConfig) -> WoveConfig:
    """Make ``new`` the configuration in force (``config()`` builds and installs one)."""
    return _install(new)


def _install(new: WoveConfig) -> WoveConfig:
    global _current
    with _lock:
        _current = dataclasses.replace(new, generation=_current.generation + 1)
        return _current


def _build_environment(name: object, spec: object) -> EnvironmentConfig:
    if not isinstance(name, str) or not name:
        raise InvalidOptionError(f"environment names must be non-empty strings, got {name!r}")
    if not isinstance(spec, Mapping):
        raise InvalidOptionError(
            f"environment {name!r} must be a dict such as {{'executor': 'local'}}, got {spec!r}"
        )
    check_names(spec, ENVIRONMENT_KEYS, f"environment {name!r}")
    executor = spec.get("executor", LOCAL_EXECUTOR)
    if not isinstance(executor, (str, Executor)) or executor == "":
        raise InvalidOptionError(
            f"environment {name!r}: executor must be a plugin name such as 'local' or an "
            f"Executor instance, got {executor!r}"
        )
    executor_config = validate_option("executor_config", spec.get("executor_config")) or {}
    settings = {
        key: validate_option(key, value)
        for key, value in spec.items()
        if key in DEFAULT_KEYS and value is not None
    }
    return EnvironmentConfig(
        name=name,
        executor=executor,
        executor_config=MappingProxyType(executor_config),
        settings=MappingProxyType(settings),
    )


def build_config(options: Mapping[str, Any], source: Path | None = None) -> WoveConfig:
    """Validate a configuration mapping (``config()`` keywords or ``WOVE_CONFIG``)."""
    where = f"WOVE_CONFIG in {source}" if source else "wove.config()"
    check_names(options, CONFIG_KEYS - {"config_file"}, where)
    raw_environments = options.get("environments") or {}
    if not isinstance(raw_environments, Mapping):
        raise InvalidOptionError(
            f"environments must be a dict of name -> environment dict, got {raw_environments!r}"
        )
    environments = {name: _build_environment(name, spec) for name, spec in raw_environments.items()}
    default_environment = validate_option("default_environment", options.get("default_environment"))
    if (
        default_environment is not None
        and default_environment not in environments
        and default_environment != DEFAULT_ENVIRONMENT
    ):
        raise UnknownEnvironmentError(default_environment, environments or (DEFAULT_ENVIRONMENT,))
    defaults = {
        key: validate_option(key, value)
        for key, value in options.items()
        if key in DEFAULT_KEYS and value is not None
    }
    return WoveConfig(
        environments=MappingProxyType(environments),
        defaults=MappingProxyType(defaults),
        default_environment=default_environment,
        source=source,
        options=dict(options),
    )


def merge_options(previous: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Layer the configuration keywords ``given`` over ``previous``.

    Each key replaces the previous value, except ``environments``, which merge by name: a name
    given again is replaced by its new definition, and a name given as ``None`` is removed.
    """
    merged = {**previous, **given}
    environments = given.get("environments")
    earlier = previous.get("environments")
    if isinstance(environments, Mapping):
        combined = dict(earlier) if isinstance(earlier, Mapping) else {}
        for name, spec in environments.items():
            if spec is None:
                combined.pop(name, None)
            else:
                combined[name] = dict(spec) if isinstance(spec, Mapping) else spec
        merged["environments"] = combined
    return merged


def find_config_file(start: Path | None = None) -> Path | None:
    """Return the nearest ``wove_config.py`` in ``start`` (default: cwd) or its parents."""
    directory = (start or Path.cwd()).resolve()
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def load_config_file(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Import ``path`` and return its ``WOVE_CONFIG`` mapping."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {str(file)!r} does not exist")
    spec = importlib.util.spec_from_file_location("_wove_user_config", file)
    if spec is None or spec.loader is None:
        raise InvalidOptionError(f"cannot import config file {str(file)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = getattr(module, "WOVE_CONFIG", None)
    if not isinstance(found, Mapping):
        raise InvalidOptionError(
            f"{file} must define WOVE_CONFIG = {{...}} with the keys wove.config() accepts"
        )
    return found


def config(
    *,
    config_file: str | os.PathLike[str] | None = None,
    default_environment: str | None = None,
    environments: Mapping[str, Mapping[str, Any] | None] | None = None,
    max_workers: int | None = None,
    retries: int | None = None,
    retry_backoff: float | None = None,
    timeout: float | None = None,
    workers: int | None = None,
    limit_per_minute: float | None = None,
    max_pending: int | None = None,
    error_mode: str | None = None,
    background: bool | None = None,
    fork: bool | None = None,
    delivery_timeout: float | None = None,
    delivery_idempotency_key: Any = None,
    delivery_cancel_mode: str | None = None,
    delivery_heartbeat_seconds: float | None = None,
    delivery_max_in_flight: int | None = None,
    delivery_orphan_policy: str | None = None,
    **unknown: Any,
) -> WoveConfig:
    """Update the process-wide configuration with the settings given.

    Each call builds on the configuration in force, as in wove 2.x: a setting it names replaces
    that setting, ``environments`` merge by name (a name defined again is replaced, a name given
    as ``None`` is removed), and everything it does not name is kept.

    With no arguments, apply the nearest ``wove_config.py`` (from the working directory upward),
    or change nothing if there is none. With ``config_file=``, apply that file, then any other
    keywords given. The other keywords (``max_workers``, ``retries``, ``timeout``, ...,
    ``delivery_orphan_policy``) are the execution and delivery defaults for every environment.

    Args:
        config_file: a Python file defining ``WOVE_CONFIG = {...}``.
        default_environment: the environment for tasks and weaves that name none.
        environments: environment name -> ``{"executor": ..., "executor_config": {...}, ...}``,
            or ``None`` to remove that environment.

    Returns:
        The configuration now in force.

    Raises:
        UnknownOptionError: an unknown key, with a "did you mean" hint.
        InvalidOptionError: a value an option cannot take.
        UnknownEnvironmentError: ``default_environment`` names no configured environment.

    Example:
        >>> import wove
        >>> _ = wove.config(environments={"default": {"executor": "local", "max_workers": 16}})
    """
    if unknown:
        check_names(unknown, CONFIG_KEYS, "wove.config()")
    options = {
        key: value
        for key, value in locals().items()
        if key not in ("config_file", "unknown") and value is not None
    }
    file = None if config_file is None else Path(config_file).resolve()
    if file is None and not options:
        file = find_config_file()
        if file is None:
            return _current
    from_file = None if file is None else load_config_file(file)  # user code: run unlocked
    with _update_lock:
        layered: Mapping[str, Any] = _current.options
        if from_file is not None:
            layered = merge_options(layered, from_file)
            built = build_config(layered, source=file)  # checked alone, so errors name the file
        if options:
            built = build_config(merge_options(layered, options), source=file)
        return _install(built)
