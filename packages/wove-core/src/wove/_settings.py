"""Typed executor settings: how an executor declares its ``executor_config``, and the one
function that checks an environment's ``executor_config`` against that declaration.

An executor declares its keys once, as a subclass of :class:`ExecutorSettings` (a msgspec
``Struct``): one typed field per key, with its default, and its documentation, range and
wording in ``Annotated[..., setting(...)]``. From that one declaration come the checks
(:func:`validate_executor_config`), the typed settings the executor reads, the keys ``wove
doctor`` accepts (:func:`setting_keys`) and the options table of the executor's docs page
(:func:`setting_fields`)::

    class PigeonSettings(ExecutorSettings, kw_only=True):
        loft: Annotated[str, setting("the loft's address", min_length=1)]
        birds: Annotated[int, setting("pigeons flying at once", ge=1)] = 4
        patience: Annotated[Seconds, setting("how long to wait for a bird", gt=0)] = 30.0

    settings = validate_executor_config(
        PigeonSettings, {"loft": "roof"}, environment="mail", executor="pigeon"
    )
    settings.birds  # 4

Every message names the key, the environment and the executor, shows the bad value with
``!r`` and says what the key takes. A key set to ``None`` counts as not set, unless its type
admits ``None``. Durations (:data:`Seconds`) are a number of seconds or a
:class:`datetime.timedelta` everywhere; secrets are ``"env:NAME"`` (or the ``security`` dict)
everywhere, read by :func:`secret_variable` and :func:`~wove.plugins.security_from_config`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal, TypeVar, Union

import msgspec

from ._errors import InvalidOptionError
from ._options import check_names, suggest
from ._security import Security, security_from_config

__all__ = [
    "ExecutorSettings",
    "FilePath",
    "Seconds",
    "SecuritySetting",
    "SettingField",
    "check_settings",
    "config_location",
    "given_options",
    "parse_duration",
    "setting",
    "setting_fields",
    "setting_keys",
    "validate_executor_config",
]

S = TypeVar("S", bound=msgspec.Struct)

#: Keys of ``msgspec.Meta.extra`` that Wove reads; nothing else in ``extra`` is touched.
_EXPECT: Final = "wove.expect"
_DEFAULT: Final = "wove.default"
_PARSE: Final = "wove.parse"
_RESERVED: Final = "wove.reserved"
_KEYS: Final = "wove.keys"
_UNIT: Final = "wove.unit"

#: Reads a raw value before its type is checked: ``parse(value, key, where)``.
Parse = Callable[[Any, str, str], Any]


class ExecutorSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The base of every executor's settings declaration: it declares no keys.

    Subclass it (or :class:`wove.backends.BackendSettings` for a backend adapter,
    :class:`wove.network.NetworkExecutorSettings` for a network executor) with one field per
    ``executor_config`` key, passing ``kw_only=True`` (so a required key may follow one with
    a default). A field without a default is required. Name the declaration on the executor
    as ``settings_class`` (on the adapter, for a backend), and Wove derives the accepted keys
    from it.
    """


def setting(
    description: str = "",
    *,
    expect: str | None = None,
    default: str | None = None,
    reserved: Mapping[str, str] | None = None,
    keys: collections.abc.Collection[str] | None = None,
    parse: Parse | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
) -> msgspec.Meta:
    """Document and constrain one key of a settings declaration, in ``Annotated[type, ...]``.

    Args:
        description: what the key does, for the docs table and for "is required" messages.
        expect: what the key takes, as the end of "``KEY must be ...``"; derived from the type
            and the constraints when not given.
        default: how the docs table shows the default, when the value itself would not say it
            (``"min(4, CPUs)"``).
        reserved: for a dict value (or a nested declaration), keys it may not hold, each with
            the reason and what to do instead.
        keys: for a dict value, the only keys it may hold.
        parse: reads the raw value before its type is checked, ``parse(value, key, where)``;
            it returns the value to check, or raises :class:`InvalidOptionError` itself.
        gt: a number must be greater than this.
        ge: a number must be at least this.
        lt: a number must be less than this.
        le: a number must be at most this.
        min_length: the shortest a string, list or dict may be.
        max_length: the longest a string, list or dict may be.
        pattern: a regular expression a string must match (``re.search``).

    Returns:
        The ``msgspec.Meta`` to put in ``Annotated``.

    Example:
        >>> from typing import Annotated
        >>> class QueueSettings(ExecutorSettings):
        ...     queue: Annotated[str, setting("the queue workers read", min_length=1)] = "wove"
    """
    extra: dict[str, Any] = {}
    if expect is not None:
        extra[_EXPECT] = expect
    if default is not None:
        extra[_DEFAULT] = default
    if reserved is not None:
        extra[_RESERVED] = dict(reserved)
    if keys is not None:
        extra[_KEYS] = frozenset(keys)
    if parse is not None:
        extra[_PARSE] = parse
    given: dict[str, Any] = {
        "description": description or None,
        "gt": gt,
        "ge": ge,
        "lt": lt,
        "le": le,
        "min_length": min_length,
        "max_length": max_length,
        "pattern": pattern,
        "extra": extra or None,
    }
    meta: msgspec.Meta = msgspec.Meta(
        **{name: value for name, value in given.items() if value is not None}
    )
    return meta


def parse_duration(
    value: Any, *, key: str, where: str, gt: float | None = None, ge: float | None = None
) -> float:
    """Read a duration: a number of seconds or a :class:`datetime.timedelta`, as seconds.

    Declarations use :data:`Seconds`, which reads durations this way; this is for durations
    inside a dict an executor passes on (such as a client library's timeout arguments).

    Raises:
        InvalidOptionError: ``value`` is neither, or is out of ``gt``/``ge``.
    """
    seconds = _seconds_from_timedelta(value, key, where)
    if (
        isinstance(seconds, (int, float))
        and not isinstance(seconds, bool)
        and (gt is None or seconds > gt)
        and (ge is None or seconds >= ge)
    ):
        return float(seconds)
    phrase = _number_phrase("seconds", gt=gt, ge=ge, lt=None, le=None)
    expect = f"a datetime.timedelta or {phrase}"
    raise InvalidOptionError(f"{where}: {key} must be {expect}, got {value!r}")


def _seconds_from_timedelta(value: Any, key: str, where: str) -> Any:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return value


def _parse_security(value: Any, key: str, where: str) -> Security | None:
    # ``None`` never gets here; whether a missing secret is allowed depends on the endpoint.
    return security_from_config(value, where=where, loopback=True)


#: A duration: a number of seconds or a :class:`datetime.timedelta`, read as seconds (a float).
Seconds = Annotated[float, msgspec.Meta(extra={_PARSE: _seconds_from_timedelta, _UNIT: "seconds"})]
#: A path: a string or an :class:`os.PathLike`.
FilePath = Annotated[str | os.PathLike[str], msgspec.Meta(extra={_EXPECT: "a path"})]
#: The ``security`` setting: ``"env:NAME"``, a dict with ``secret`` or ``secret_env`` (and
#: ``key``, ``clock_skew_seconds``) or a :class:`Security`; read as a :class:`Security`.
SecuritySetting = Annotated[
    Security,
    msgspec.Meta(
        extra={
            _EXPECT: "'env:NAME' (a secret of at least 16 bytes in environment variable NAME) "
            "or a dict with secret or secret_env",
            _PARSE: _parse_security,
        }
    ),
]


def config_location(environment: str, executor: str) -> str:
    """How every message about an environment's ``executor_config`` begins.

    Example:
        >>> config_location("gpu", "kubernetes_jobs")
        "executor_config of environment 'gpu' (executor 'kubernetes_jobs')"
    """
    return f"executor_config of environment {environment!r} (executor {executor!r})"


def validate_executor_config(
    settings_class: type[S],
    config: Mapping[str, Any],
    *,
    environment: str,
    executor: str,
    extra_keys: collections.abc.Collection[str] = (),
) -> S:
    """Check an environment's ``executor_config`` against a declaration; return the settings.

    Args:
        settings_class: the declaration, a subclass of :class:`ExecutorSettings`.
        config: the environment's ``executor_config``.
        environment: the environment's name, for messages.
        executor: the executor's name, for messages.
        extra_keys: keys the declaration does not hold but the caller reads itself; they are
            accepted and left out of the settings.

    Returns:
        An instance of ``settings_class`` holding every key, its default where not given.

    Raises:
        UnknownOptionError: a key the declaration does not hold ("did you mean" included).
        InvalidOptionError: a required key is missing, or a value has the wrong type or is out
            of range.
    """
    where = config_location(environment, executor)
    return check_settings(settings_class, config, where=where, extra_keys=extra_keys)


def given_options(settings: msgspec.Struct) -> dict[str, Any]:
    """The keys of a (nested) declaration that hold a value other than ``None``, by their
    ``executor_config`` names: options to pass on to a client library as keyword arguments.

    Example:
        >>> class Enqueue(ExecutorSettings, kw_only=True):
        ...     priority: int | None = None
        ...     ttl: int | None = None
        >>> given_options(Enqueue(ttl=60))
        {'ttl': 60}
    """
    return {
        field.encode_name: getattr(settings, field.name)
        for field in msgspec.structs.fields(settings)
        if getattr(settings, field.name) is not None
    }


def setting_keys(settings_class: type[msgspec.Struct]) -> frozenset[str]:
    """The ``executor_config`` keys a declaration accepts."""
    return frozenset(field.encode_name for field in msgspec.structs.fields(settings_class))


@dataclasses.dataclass(frozen=True)
class SettingField:
    """One key of a declaration, as its docs table shows it.

    Attributes:
        key: the ``executor_config`` key.
        expect: what it takes ("a positive integer").
        default: its default as Markdown ("``8``", "none", "**required**").
        description: what it does (Markdown: code in backticks).
        required: whether an environment must set it.
        declared_by: the class that first declared it (a core base class for shared keys).
    """

    key: str
    expect: str
    default: str
    description: str
    required: bool
    declared_by: type


def setting_fields(settings_class: type[ExecutorSettings]) -> tuple[SettingField, ...]:
    """The keys of a declaration for a docs table: its own keys first, in the order it
    declares them, then each base's keys in the base's order; a key declared again (with
    another default or bound) is described by its latest declaration, in the base's place."""
    hints = _hints(settings_class)
    fields = {field.name: field for field in msgspec.structs.fields(settings_class)}
    first: dict[str, type] = {}
    for klass in settings_class.__mro__:
        for name in vars(klass).get("__annotations__", {}):
            if name in fields:
                first[name] = klass  # the last one seen is the base-most declaration
    order = [
        name
        for klass in settings_class.__mro__
        for name in vars(klass).get("__annotations__", {})
        if first.get(name) is klass
    ]
    rows = []
    for name in order:
        field = fields[name]
        metas = _metas(hints[name])
        required = _is_required(field)
        rows.append(
            SettingField(
                key=field.encode_name,
                expect=_expect(hints[name], with_none=_none_is_a_choice(field)),
                default="**required**" if required else _default_text(field, metas),
                description=" ".join(m.description for m in metas if m.description),
                required=required,
                declared_by=first[name],
            )
        )
    return tuple(rows)


# -- checking ----------------------------------------------------------------------------------


class _Mismatch(Exception):
    """A value that does not fit a type (internal: turned into a message at the key)."""


_NONE: Final = type(None)


def check_settings(
    settings_class: type[S],
    config: Mapping[str, Any],
    *,
    where: str,
    path: str = "",
    extra_keys: collections.abc.Collection[str] = (),
) -> S:
    """:func:`validate_executor_config` with the messages' beginning given as ``where``, and
    ``path`` naming a nested declaration's key (``"submit_options"``)."""
    hints = _hints(settings_class)
    fields = msgspec.structs.fields(settings_class)
    by_key = {field.encode_name: field for field in fields}
    known = set(by_key) | set(extra_keys)
    if not path:
        check_names(config, known, where)
    else:
        for key in config:
            if key not in known:
                listed = ", ".join(sorted(known))
                raise InvalidOptionError(
                    f"{where}: {path} does not take {key!r}; it takes {listed}."
                    f"{suggest(str(key), known)}"
                )
    values: dict[str, Any] = {}
    for key, field in by_key.items():
        value = config.get(key)
        tp = hints[field.name]
        shown = f"{path}[{key!r}]" if path else key
        if value is None and not _admits_none(tp):
            if _is_required(field):
                raise InvalidOptionError(_required_message(where, shown, tp))
            continue
        if key not in config:
            continue
        try:
            values[field.name] = _convert(value, tp, shown, where)
        except _Mismatch:
            if _is_required(field):
                message = _required_message(where, shown, tp)
                raise InvalidOptionError(f"{message}, got {value!r}") from None
            raise InvalidOptionError(
                f"{where}: {shown} must be {_expect(tp, with_none=_none_is_a_choice(field))}, "
                f"got {value!r}"
            ) from None
    return settings_class(**values)


def _required_message(where: str, key: str, tp: Any) -> str:
    description = _strip(" ".join(m.description for m in _metas(tp) if m.description))
    what = f": {description}" if description else ""
    return f"{where}: {key} is required{what}; {key} must be {_expect(tp)}"


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    """``value`` as ``tp`` takes it, or :class:`_Mismatch`; parse hooks may raise themselves."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        metas = [item for item in extras if isinstance(item, msgspec.Meta)]
        for meta in metas:
            parse = (meta.extra or {}).get(_PARSE)
            if parse is not None:
                value = parse(value, key, where)
            if isinstance(value, Mapping):
                _check_keys(value, meta, key, where)
        value = _convert(value, base, key, where)
        for meta in metas:
            _constrain(value, meta)
        return value
    if tp is Any or tp is object:
        return value
    if tp is None or tp is _NONE:
        if value is None:
            return None
        raise _Mismatch
    if origin is Union or origin is types.UnionType:
        for member in typing.get_args(tp):
            try:
                return _convert(value, member, key, where)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        for choice in typing.get_args(tp):
            if type(value) is type(choice) and value == choice:
                return value
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin in (list, tuple, collections.abc.Sequence) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _Mismatch
        arguments = typing.get_args(tp)
        item = arguments[0] if arguments else Any
        items = [_convert(element, item, key, where) for element in value]
        return tuple(items) if (origin or tp) is tuple else items
    if origin in (dict, collections.abc.Mapping) or tp in (dict, collections.abc.Mapping):
        if not isinstance(value, Mapping):
            raise _Mismatch
        arguments = typing.get_args(tp) or (Any, Any)
        return {
            _convert(name, arguments[0], key, where): _convert(item, arguments[1], key, where)
            for name, item in value.items()
        }
    if origin is collections.abc.Callable or tp is collections.abc.Callable:
        if callable(value):
            return value
        raise _Mismatch
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return check_settings(tp, value, where=where, path=key)
        raise _Mismatch
    # A class, or a generic one such as os.PathLike[str]; a collection whose items would go
    # unchecked (set[int]) is not taken.
    target = tp if isinstance(tp, type) else origin
    if isinstance(target, type) and (
        target is tp or target.__module__ not in ("builtins", "collections.abc")
    ):
        if isinstance(value, target):
            return value
        raise _Mismatch
    raise TypeError(f"a settings declaration cannot check values of type {tp!r}")


def _check_keys(value: Mapping[Any, Any], meta: msgspec.Meta, key: str, where: str) -> None:
    """Reserved and allowed keys of a dict value, checked before anything inside it."""
    extra = meta.extra or {}
    reserved: Mapping[str, str] = extra.get(_RESERVED, {})
    for name in value:
        if name in reserved:
            raise InvalidOptionError(f"{where}: {key} may not set {name}: {reserved[name]}")
    allowed: frozenset[str] | None = extra.get(_KEYS)
    if allowed is not None:
        for name in value:
            if name not in allowed:
                listed = ", ".join(sorted(allowed))
                raise InvalidOptionError(
                    f"{where}: {key} does not take {name!r}; it takes {listed}."
                    f"{suggest(str(name), allowed)}"
                )


def _constrain(value: Any, meta: msgspec.Meta) -> None:
    if value is None:
        return
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (
            (meta.gt is not None and not value > meta.gt)
            or (meta.ge is not None and not value >= meta.ge)
            or (meta.lt is not None and not value < meta.lt)
            or (meta.le is not None and not value <= meta.le)
        )
    ):
        raise _Mismatch
    if isinstance(value, (str, list, tuple, dict)) and (
        (meta.min_length is not None and len(value) < meta.min_length)
        or (meta.max_length is not None and len(value) > meta.max_length)
    ):
        raise _Mismatch
    if isinstance(value, str) and meta.pattern is not None and not re.search(meta.pattern, value):
        raise _Mismatch


# -- reading a declaration ---------------------------------------------------------------------


def _hints(settings_class: type) -> dict[str, Any]:
    return typing.get_type_hints(settings_class, include_extras=True)


def _metas(tp: Any) -> list[msgspec.Meta]:
    """The ``msgspec.Meta`` of ``tp``'s outer ``Annotated`` (``Optional`` looked through)."""
    if typing.get_origin(tp) is Annotated:
        base, *extras = typing.get_args(tp)
        return [*_metas(base), *(item for item in extras if isinstance(item, msgspec.Meta))]
    if typing.get_origin(tp) in (Union, types.UnionType):
        found: list[msgspec.Meta] = []
        for member in typing.get_args(tp):
            if member is not _NONE and typing.get_origin(member) is Annotated:
                found.extend(_metas(member))
        return found
    return []


def _admits_none(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _admits_none(typing.get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return any(_admits_none(member) for member in typing.get_args(tp))
    return tp is Any or tp is object or tp is None or tp is _NONE


def _is_required(field: msgspec.structs.FieldInfo) -> bool:
    return field.default is msgspec.NODEFAULT and field.default_factory is msgspec.NODEFAULT


def _default_of(field: msgspec.structs.FieldInfo) -> Any:
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return None if field.default is msgspec.NODEFAULT else field.default


def _strip(text: str) -> str:
    """Docs markup left out of messages."""
    return text.replace("`", "")


def _none_is_a_choice(field: msgspec.structs.FieldInfo) -> bool:
    """Whether setting a key to ``None`` differs from leaving it out: its default is another
    value (``ping_interval=None``: no pings). Otherwise messages do not offer ``None``."""
    return not _is_required(field) and _default_of(field) is not None


def _expect(tp: Any, *, with_none: bool = True) -> str:
    """What a value of ``tp`` is, for "must be ..." and the docs table."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        metas = [item for item in extras if isinstance(item, msgspec.Meta)]
        for meta in reversed(metas):
            if _EXPECT in (meta.extra or {}):
                return str((meta.extra or {})[_EXPECT])
        return _expect_constrained(base, metas, with_none=with_none)
    return _expect_constrained(tp, [], with_none=with_none)


def _expect_constrained(tp: Any, metas: list[msgspec.Meta], *, with_none: bool = True) -> str:
    def bound(name: str) -> Any:
        found = [getattr(meta, name) for meta in metas if getattr(meta, name) is not None]
        return found[-1] if found else None

    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        inner = [item for item in extras if isinstance(item, msgspec.Meta)]
        for meta in reversed(inner):
            if _EXPECT in (meta.extra or {}) and not any(_has_bounds(m) for m in metas):
                return str((meta.extra or {})[_EXPECT])
        return _expect_constrained(base, [*inner, *metas])
    if origin is Union or origin is types.UnionType:
        members = [member for member in typing.get_args(tp) if member is not _NONE]
        phrases = list(dict.fromkeys(_expect_constrained(member, metas) for member in members))
        text = " or ".join(phrases)
        admits_none = len(members) < len(typing.get_args(tp))
        return f"{text} or None" if admits_none and with_none else text
    numbers = {name: bound(name) for name in ("gt", "ge", "lt", "le")}
    unit = next((str((m.extra or {})[_UNIT]) for m in metas if _UNIT in (m.extra or {})), None)
    if tp is float and unit == "seconds":
        return "a datetime.timedelta or " + _number_phrase("seconds", **numbers)
    if tp is float:
        return _number_phrase("number", **numbers)
    if tp is int:
        return _number_phrase("integer", **numbers)
    if tp is bool:
        return "True or False"
    if tp is str:
        pattern = bound("pattern")
        if pattern is not None:
            return f"a string matching {pattern!r}"
        return "a non-empty string" if (bound("min_length") or 0) >= 1 else "a string"
    if tp is Any or tp is object:
        return "any value"
    if tp is None or tp is _NONE:
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(tp))
    if origin in (list, tuple, collections.abc.Sequence) or tp in (list, tuple):
        arguments = typing.get_args(tp)
        item = arguments[0] if arguments else Any
        empty = "a non-empty list" if (bound("min_length") or 0) >= 1 else "a list"
        return empty if item is Any else f"{empty} of {_plural(item)}"
    if origin in (dict, collections.abc.Mapping) or tp in (dict, collections.abc.Mapping):
        arguments = typing.get_args(tp)
        if not arguments or arguments[1] is Any:
            return "a dict"
        return f"a dict of {_plural(arguments[1])}"
    if origin is collections.abc.Callable or tp is collections.abc.Callable:
        return "a callable"
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        keys = ", ".join(sorted(field.encode_name for field in msgspec.structs.fields(tp)))
        return f"a dict with keys {keys}"
    target = tp if isinstance(tp, type) else origin
    if isinstance(target, type):
        name = f"{target.__module__}.{target.__qualname__}".removeprefix("builtins.")
        return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"
    return repr(tp)


def _has_bounds(meta: msgspec.Meta) -> bool:
    return any(getattr(meta, name) is not None for name in ("gt", "ge", "lt", "le"))


def _number_phrase(
    noun: str, *, gt: float | None, ge: float | None, lt: float | None, le: float | None
) -> str:
    """``a positive integer``, ``a number of seconds >= 0``, ``an integer from 0 to 9``."""
    label = {"seconds": "number of seconds", "number": "number", "integer": "integer"}[noun]
    if lt is None and le is None and (gt == 0 or (noun == "integer" and ge == 1)):
        return f"a positive {label}"
    article = "an" if label[0] in "aeiou" else "a"
    if ge is not None and le is not None and gt is None and lt is None:
        return f"{article} {label} from {ge:g} to {le:g}"
    bounds = [
        f"{sign} {value:g}"
        for sign, value in ((">", gt), (">=", ge), ("<", lt), ("<=", le))
        if value is not None
    ]
    return " ".join([f"{article} {label}", " and ".join(bounds)]).rstrip()


def _plural(tp: Any) -> str:
    base = typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp
    return {str: "strings", int: "integers", float: "numbers", bool: "booleans"}.get(base, "values")


def _default_text(field: msgspec.structs.FieldInfo, metas: list[msgspec.Meta]) -> str:
    for meta in reversed(metas):
        if _DEFAULT in (meta.extra or {}):
            return str((meta.extra or {})[_DEFAULT])
    value = _default_of(field)
    if value is None:
        return "none"
    if isinstance(value, msgspec.Struct):
        value = {}
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"
