"""The option schema for tasks, weaves, environments and the global configuration.

Every option has exactly one validator here, so ``@w.do``, ``weave()``, ``merge()`` and
``wove.config()`` accept and reject the same values with the same messages. Unknown names are
rejected with a "did you mean" hint instead of being kept silently.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, Literal

from ._errors import InvalidOptionError, UnknownOptionError

__all__ = [
    "BUILTIN_SETTINGS",
    "CONFIG_KEYS",
    "ENVIRONMENT_KEYS",
    "MAPPED_ONLY_OPTIONS",
    "TASK_OPTIONS",
    "WEAVE_OPTIONS",
    "DELIVERY_OPTIONS",
    "ErrorMode",
    "TaskSettings",
    "check_names",
    "suggest",
    "validate_option",
    "validate_options",
]

ErrorMode = Literal["raise", "return"]

CANCEL_MODES: Final = ("best_effort", "require_ack")
ORPHAN_POLICIES: Final = ("fail", "cancel", "requeue", "detach")
ERROR_MODES: Final = ("raise", "return")


def _fail(name: str, value: object, expected: str) -> InvalidOptionError:
    return InvalidOptionError(f"{name} must be {expected}, got {value!r}")


def _non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(name, value, "an integer >= 0")
    return value


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(name, value, "an integer >= 1")
    return value


def _positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise _fail(name, value, "a number of seconds > 0")
    return float(value)


def _non_negative_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _fail(name, value, "a number >= 0")
    return float(value)


def _rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise _fail(name, value, "a number of starts per minute > 0")
    return float(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(name, value, "True or False")
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(name: str, value: object) -> str:
        if value not in choices:
            listed = ", ".join(repr(choice) for choice in choices)
            raise _fail(name, value, f"one of {listed}")
        return str(value)

    return check


def _name(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(name, value, "a non-empty string")
    return value


def _callable(name: str, value: object) -> object:
    if not callable(value):
        raise _fail(name, value, "a callable")
    return value


def _anything(name: str, value: object) -> object:
    return value


def _executor_config(name: str, value: object) -> object:
    if not isinstance(value, Mapping):
        raise _fail(name, value, "a dict")
    return dict(value)


_Validator = Callable[[str, Any], Any]

_VALIDATORS: Final[dict[str, _Validator]] = {
    "retries": _non_negative_int,
    "retry_backoff": _non_negative_number,
    "timeout": _positive_number,
    "workers": _positive_int,
    "limit_per_minute": _rate,
    "environment": _name,
    "max_workers": _positive_int,
    "max_pending": _positive_int,
    "error_mode": _choice(ERROR_MODES),
    "background": _flag,
    "fork": _flag,
    "debug": _flag,
    "on_done": _callable,
    "delivery_timeout": _positive_number,
    "delivery_idempotency_key": _anything,
    "delivery_cancel_mode": _choice(CANCEL_MODES),
    "delivery_heartbeat_seconds": _positive_number,
    "delivery_max_in_flight": _positive_int,
    "delivery_orphan_policy": _choice(ORPHAN_POLICIES),
    "default_environment": _name,
    "executor_config": _executor_config,
}

DELIVERY_OPTIONS: Final = frozenset(
    {
        "delivery_timeout",
        "delivery_idempotency_key",
        "delivery_cancel_mode",
        "delivery_heartbeat_seconds",
        "delivery_max_in_flight",
        "delivery_orphan_policy",
    }
)
#: Options of ``@w.do``, ``Weave.do`` and ``merge``.
TASK_OPTIONS: Final = frozenset(
    {"retries", "retry_backoff", "timeout", "workers", "limit_per_minute", "environment"}
    | DELIVERY_OPTIONS
)
#: Options only mapped tasks can use; as environment or global defaults they skip plain tasks.
MAPPED_ONLY_OPTIONS: Final = frozenset({"workers", "limit_per_minute", "max_pending"})
#: Options of ``weave()``. Delivery options given here are defaults for the weave's tasks.
WEAVE_OPTIONS: Final = (
    frozenset(
        {"environment", "error_mode", "debug", "background", "fork", "on_done"}
        | {"max_workers", "max_pending"}
    )
    | DELIVERY_OPTIONS
)
#: Execution and delivery defaults an environment or the global configuration may set.
DEFAULT_KEYS: Final = (
    frozenset(
        {"max_workers", "retries", "retry_backoff", "timeout", "workers", "limit_per_minute"}
        | {"max_pending", "error_mode", "background", "fork"}
    )
    | DELIVERY_OPTIONS
)
ENVIRONMENT_KEYS: Final = DEFAULT_KEYS | {"executor", "executor_config"}
CONFIG_KEYS: Final = DEFAULT_KEYS | {"default_environment", "environments", "config_file"}

#: What applies when nothing else sets a value.
BUILTIN_SETTINGS: Final[Mapping[str, Any]] = {
    "max_workers": 64,
    "retries": 0,
    "retry_backoff": 0.0,
    "timeout": None,
    "workers": None,
    "limit_per_minute": None,
    "max_pending": None,
    "error_mode": "raise",
    "background": False,
    "fork": False,
    "delivery_timeout": None,
    "delivery_idempotency_key": None,
    "delivery_cancel_mode": "best_effort",
    "delivery_heartbeat_seconds": None,
    "delivery_max_in_flight": None,
    "delivery_orphan_policy": "fail",
}


def suggest(name: str, known: Collection[str]) -> str:
    """Return a " Did you mean ...?" hint for a misspelt ``name``, or an empty string."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_names(names: Collection[str], known: Collection[str], where: str) -> None:
    """Raise :class:`UnknownOptionError` for the first name in ``names`` not in ``known``."""
    for name in names:
        if name not in known:
            listed = (
                f"Known options: {', '.join(sorted(known))}." if known else "It takes no options."
            )
            raise UnknownOptionError(
                f"{where} got an unknown option {name!r}.{suggest(name, known)} {listed}"
            )


def validate_option(name: str, value: Any) -> Any:
    """Return ``value`` normalized for option ``name``; ``None`` always means "not set"."""
    if value is None:
        return None
    return _VALIDATORS[name](name, value)


def validate_options(
    options: Mapping[str, Any], known: Collection[str], where: str
) -> dict[str, Any]:
    """Check names and values; return only the options that are set."""
    check_names(options, known, where)
    return {
        name: validate_option(name, value) for name, value in options.items() if value is not None
    }


@dataclasses.dataclass(frozen=True, slots=True)
class TaskSettings:
    """Everything that governs how one task runs, after every layer of settings is applied."""

    environment: str
    max_workers: int = 64
    retries: int = 0
    retry_backoff: float = 0.0
    timeout: float | None = None
    workers: int | None = None
    limit_per_minute: float | None = None
    max_pending: int | None = None
    delivery_timeout: float | None = None
    delivery_idempotency_key: Any = None
    delivery_cancel_mode: str = "best_effort"
    delivery_heartbeat_seconds: float | None = None
    delivery_max_in_flight: int | None = None
    delivery_orphan_policy: str = "fail"


TASK_SETTING_FIELDS: Final = tuple(
    field.name for field in dataclasses.fields(TaskSettings) if field.name != "environment"
)
