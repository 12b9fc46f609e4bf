"""``weave()`` and ``Weave``: declaring tasks in a block and running them when it ends.

``with weave() as w:`` collects tasks declared with ``@w.do``; leaving the block builds the
plan and runs it (on a reused loop for sync blocks, on the running loop for ``async with``).
``background=True`` runs it in a thread and ``fork=True`` in a new process; both call
``on_done(result)``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
import logging
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar, overload

from ._config import WoveConfig, current_config
from ._environments import ResolvedEnvironment, resolve_environment
from ._errors import InvalidOptionError, ReservedNameError, UnknownOptionError, WeaveUsageError
from ._graph import (
    ALL_DATA,
    NOT_MAPPED,
    ExecutionPlan,
    TaskSpec,
    build_plan,
    is_coroutine_function,
)
from ._options import (
    CONFIG_KEYS,
    DEFAULT_KEYS,
    DELIVERY_OPTIONS,
    MAPPED_ONLY_OPTIONS,
    TASK_OPTIONS,
    TASK_SETTING_FIELDS,
    WEAVE_OPTIONS,
    TaskSettings,
    validate_option,
    validate_options,
)
from ._result import RESERVED_NAMES, WoveResult
from ._scheduler import WeaveRun
from ._threads import active_pool, ensure_no_running_loop, get_thread_pool, run_sync

__all__ = ["Weave", "WeaveBlock", "weave"]

logger = logging.getLogger("wove")

F = TypeVar("F", bound=Callable[..., Any])

_TASK_MARKER: Final = "__wove_task__"

#: Set while ``weave()`` instantiates a ``Weave`` subclass it was given.
_instantiating: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "wove_instantiating", default=False
)

#: Why each reserved name cannot be a task or injected data.
_RESERVED_REASONS: Final = {
    "final": "w.result.final is the result of the last task declared",
    "cancelled": "w.result.cancelled is the set of tasks that did not finish",
    ALL_DATA: "a task parameter named 'data' receives all injected values as a dict",
}


@dataclasses.dataclass(frozen=True)
class _Declared:
    """What ``Weave.do`` attaches to a method: its map source and options."""

    map_source: Any
    options: Mapping[str, Any]


def _split_decorator_argument(argument: Any) -> tuple[Callable[..., Any] | None, Any]:
    """``@w.do`` / ``@w.do()`` / ``@w.do("name")`` / ``@w.do(items)`` -> (func, map source)."""
    if argument is None:
        return None, NOT_MAPPED
    if callable(argument) and not isinstance(argument, (str, bytes)):
        return argument, NOT_MAPPED
    if isinstance(argument, bytes):
        raise InvalidOptionError(
            f"@w.do({argument!r}): map over a task by its name as str, or pass an iterable"
        )
    if not isinstance(argument, str) and not isinstance(argument, Iterable):
        raise InvalidOptionError(
            f"@w.do({argument!r}): expected a task name to map over, an iterable of items, or "
            "nothing at all"
        )
    return None, argument


def _check_task_options(options: Mapping[str, Any], mapped: bool, where: str) -> dict[str, Any]:
    if not options:
        return {}
    checked = validate_options(options, TASK_OPTIONS, where)
    if not mapped:
        misplaced = sorted(MAPPED_ONLY_OPTIONS & checked.keys())
        if misplaced:
            raise InvalidOptionError(
                f"{where}: {', '.join(misplaced)} only apply to mapped tasks, such as "
                "@w.do(items) or @w.do('upstream_task')"
            )
    return checked


class Weave:
    """Base class for reusable weaves whose tasks are methods.

    Decorate methods with ``@Weave.do`` (same arguments as ``@w.do``), then run the class with
    ``weave(MyWeave)``. Inline ``@w.do`` functions with the same name replace a method; options
    they leave unset are inherited from it.

    Example:
        >>> class Greeting(Weave):
        ...     @Weave.do
        ...     def name(self):
        ...         return "Ada"
        ...     @Weave.do
        ...     def message(self, name):
        ...         return f"Hello, {name}"
        >>> with weave(Greeting) as w:
        ...     pass
        >>> w.result.final
        'Hello, Ada'

    A subclass is run by ``weave()``, not instantiated by hand: ``Greeting()`` raises
    ``TypeError``, as in wove 2.x. A subclass that defines its own ``__init__`` (to take
    arguments) may be instantiated, and the instance passed to ``weave()``.
    """

    def __init__(self) -> None:
        if not _instantiating.get() and type(self).__init__ is Weave.__init__:
            name = type(self).__name__
            raise TypeError(
                f"{name}() cannot be instantiated directly: a Weave subclass is run by passing "
                f"the class to weave(), as in 'with weave({name}) as w:' (or 'async with')"
            )

    @staticmethod
    def do(argument: Any = None, /, **options: Any) -> Any:
        """Mark a method as a task; takes the same arguments as ``@w.do``."""
        func, map_source = _split_decorator_argument(argument)

        def mark(method: F) -> F:
            checked = _check_task_options(
                options, map_source is not NOT_MAPPED, f"@Weave.do on {method.__name__!r}"
            )
            setattr(method, _TASK_MARKER, _Declared(map_source, checked))
            return method

        return mark(func) if func is not None else mark


def _class_tasks(instance: Weave) -> list[tuple[str, Callable[..., Any], _Declared]]:
    """Methods marked with ``Weave.do``, base classes first, in definition order."""
    found: dict[str, tuple[Callable[..., Any], _Declared]] = {}
    for klass in reversed(type(instance).__mro__):
        for name, attribute in vars(klass).items():
            declared = getattr(attribute, _TASK_MARKER, None)
            if isinstance(declared, _Declared):
                found[name] = (types.MethodType(attribute, instance), declared)
            elif name in found:
                del found[name]  # a subclass replaced the task with a plain attribute
    return [(name, func, declared) for name, (func, declared) in found.items()]


def _instantiate(template: type[Any]) -> Any:
    token = _instantiating.set(True)
    try:
        return template()
    finally:
        _instantiating.reset(token)


class WeaveBlock:
    """The object bound by ``with weave() as w``: declare tasks with :meth:`do`, then read
    :attr:`result` after the block."""

    def __init__(
        self, template: type[Weave] | Weave | None, options: dict[str, Any], data: dict[str, Any]
    ) -> None:
        self._config: WoveConfig = current_config()
        self._options = options
        self._data = data
        self._environment = self._config.resolve_environment_name(None, options.get("environment"))
        scoped = self._config.layered_settings(self._environment)
        scoped.update(options)
        self._error_mode: str = scoped["error_mode"]
        self._max_workers: int = scoped["max_workers"]
        self._background: bool = scoped["background"] or scoped["fork"]
        self._fork: bool = scoped["fork"]
        self._debug: bool = options.get("debug", False)
        self._on_done: Callable[[WoveResult], Any] | None = options.get("on_done")
        self._specs: dict[str, TaskSpec] = {}
        self._task_environments: dict[str, str] = {}
        self._settings_cache: dict[tuple[str, bool], TaskSettings] = {}
        self._layered_cache: dict[str, dict[str, Any]] = {}
        self._entered = False
        self._thread: threading.Thread | None = None
        self.result = WoveResult(self._error_mode)
        #: The plan, available once the block has ended (``None`` before).
        self.execution_plan: ExecutionPlan | None = None
        if template is not None:
            instance = _instantiate(template) if isinstance(template, type) else template
            if not isinstance(instance, Weave):
                raise TypeError(
                    f"weave() takes a Weave subclass or instance as its only positional "
                    f"argument, got {template!r}"
                )
            for name, func, declared in _class_tasks(instance):
                self._declare(name, func, declared.map_source, dict(declared.options))

    # -- declaring ----------------------------------------------------------------------------
    @overload
    def do(self, argument: F, /) -> F: ...

    @overload
    def do(self, argument: Any = None, /, **options: Any) -> Callable[[F], F]: ...

    def do(self, argument: Any = None, /, **options: Any) -> Any:
        """Declare a task; the function's name is the task's name.

        Args:
            argument: nothing (``@w.do``/``@w.do()``), the name of a task or data to map over,
                or an iterable of items to map over.
            **options: ``retries``, ``retry_backoff``, ``timeout``, ``workers``,
                ``limit_per_minute``, ``environment`` and the ``delivery_*`` options.

        Raises:
            UnknownOptionError: an option name that does not exist.
            InvalidOptionError: a bad option value, or a mapped-only option on a plain task.
            UnknownEnvironmentError: ``environment`` names no configured environment.
        """
        func, map_source = _split_decorator_argument(argument)

        def declare(task: F) -> F:
            self._declare(task.__name__, task, map_source, options, inline=True)
            return task

        return declare(func) if func is not None else declare

    def _declare(
        self,
        name: str,
        func: Callable[..., Any],
        map_source: Any,
        options: Mapping[str, Any],
        *,
        inline: bool = False,
    ) -> None:
        if name in RESERVED_NAMES:
            raise ReservedNameError(name, "task", _RESERVED_REASONS[name])
        if name in self._data:
            raise InvalidOptionError(
                f"{name!r} is both injected data and a task; rename one of them"
            )
        inherited = self._specs.get(name)
        if inline and inherited is not None:
            if map_source is NOT_MAPPED:
                map_source = inherited.map_source
            options = {**inherited.options, **options}
        mapped = map_source is not NOT_MAPPED
        checked = _check_task_options(options, mapped, f"task {name!r}")
        environment = (
            self._config.resolve_environment_name(checked["environment"])
            if "environment" in checked
            else self._environment
        )
        self._task_environments[name] = environment
        self._specs[name] = TaskSpec(
            name=name,
            func=func,
            is_async=is_coroutine_function(func),
            map_source=map_source,
            options=checked,
        )
        self.result._declare(name)

    # -- settings -----------------------------------------------------------------------------
    def _settings_for(
        self, environment: str, options: Mapping[str, Any], mapped: bool
    ) -> TaskSettings:
        """Task options, then weave options, then the task's environment, config, built-ins."""
        if not options:
            cached = self._settings_cache.get((environment, mapped))
            if cached is not None:
                return cached
        layered = self._layered_cache.get(environment)
        if layered is None:
            layered = self._config.layered_settings(environment)
            layered.update(
                {key: value for key, value in self._options.items() if key in DELIVERY_OPTIONS}
            )
            for weave_scoped in ("max_pending", "max_workers"):
                if weave_scoped in self._options:
                    layered[weave_scoped] = self._options[weave_scoped]
            self._layered_cache[environment] = layered
        values = {field: layered[field] for field in TASK_SETTING_FIELDS}
        if not mapped:
            for key in MAPPED_ONLY_OPTIONS:
                values[key] = None
        values.update({k: v for k, v in options.items() if k != "environment"})
        settings = TaskSettings(environment=environment, **values)
        if not options:
            self._settings_cache[(environment, mapped)] = settings
        return settings

    def _resolve_merge_target(
        self, options: Mapping[str, Any], mapped: bool
    ) -> tuple[TaskSettings, ResolvedEnvironment]:
        name = self._config.resolve_environment_name(
            options.get("environment"), self._options.get("environment")
        )
        environment = resolve_environment(self._config, name)
        environment.require_dispatch()
        return self._settings_for(name, options, mapped), environment

    # -- running ------------------------------------------------------------------------------
    def _prepare(self) -> WeaveRun:
        plan = build_plan(self._specs, self._data)
        self.execution_plan = plan
        by_name: dict[str, ResolvedEnvironment] = {}
        environments: dict[str, ResolvedEnvironment] = {}
        settings: dict[str, TaskSettings] = {}
        for name, spec in self._specs.items():
            environment_name = self._task_environments[name]
            environment = by_name.get(environment_name)
            if environment is None:
                environment = resolve_environment(self._config, environment_name)
                environment.require_dispatch()
                by_name[environment_name] = environment
            environments[name] = environment
            settings[name] = self._settings_for(environment_name, spec.options, spec.is_mapped)
        return WeaveRun(
            plan,
            self._specs,
            settings,
            environments,
            self._data,
            self.result,
            error_mode=self._error_mode,
            pool=get_thread_pool(self._max_workers, self._environment),
            run_config={"error_mode": self._error_mode, "max_workers": self._max_workers},
            resolve_merge_target=self._resolve_merge_target,
        )

    async def _arun(self, run: WeaveRun) -> None:
        if self._debug:
            from ._report import print_plan

            print_plan(run)
        token = active_pool.set(run.pool)
        try:
            await run.run()
        finally:
            active_pool.reset(token)
            if self._debug:
                from ._report import print_timings

                print_timings(self.result)

    def _start_background(self) -> None:
        if self._fork:
            from ._fork import start_forked

            start_forked(self._blueprint())
            return
        run = self._prepare()
        self._thread = threading.Thread(
            target=self._run_in_thread, args=(run,), name="wove-background", daemon=False
        )
        self._thread.start()

    def _blueprint(self) -> dict[str, Any]:
        """Everything a new process needs to run this weave (see ``_fork``)."""
        return {
            "config": dict(self._config.options),
            "options": {**self._options, "background": False, "fork": False},
            "data": self._data,
            "tasks": [
                (spec.name, spec.func, spec.map_source, dict(spec.options))
                for spec in self._specs.values()
            ],
        }

    def _run_in_thread(self, run: WeaveRun) -> None:
        try:
            run_sync(self._arun(run))
        except Exception:
            logger.exception("background weave failed")
        finally:
            self._call_on_done()

    def _call_on_done(self, failed: bool = False) -> None:
        """Call ``on_done`` once the weave ended, whether or not it failed.

        Its own errors propagate from a foreground weave that succeeded; they are logged for a
        background weave or one that is already raising.
        """
        if self._on_done is None:
            return
        if not self._background and not failed:
            outcome = self._on_done(self.result)
            if inspect.isawaitable(outcome):
                run_sync(_await(outcome))
            return
        try:
            outcome = self._on_done(self.result)
            if inspect.isawaitable(outcome):
                run_sync(_await(outcome))
        except Exception:
            logger.exception("on_done callback of a background weave failed")

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a background weave's thread; return whether it has finished."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- context managers ---------------------------------------------------------------------
    def __enter__(self) -> WeaveBlock:
        ensure_no_running_loop("'with weave()'")
        self._enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        if exc_type is not None:
            return
        if self._background:
            self._start_background()
            return
        try:
            run_sync(self._arun(self._prepare()))
        except BaseException:
            self._call_on_done(failed=True)
            raise
        self._call_on_done()

    async def __aenter__(self) -> WeaveBlock:
        self._enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        if exc_type is not None:
            return
        if self._background:
            self._start_background()
            return
        try:
            await self._arun(self._prepare())
        except BaseException:
            if self._on_done is not None:
                try:
                    outcome = self._on_done(self.result)
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception:
                    logger.exception("on_done failed while the weave was already raising")
            raise
        if self._on_done is not None:
            outcome = self._on_done(self.result)
            if inspect.isawaitable(outcome):
                await outcome

    def _enter(self) -> None:
        if self._entered:
            raise WeaveUsageError("this weave block was already used; open a new one with weave()")
        self._entered = True


async def _await(awaitable: Any) -> Any:
    return await awaitable


_OPTION_DOCS: Final = (
    "environment, error_mode, debug, background, fork, on_done, max_workers, max_pending "
    "and the delivery_* options"
)


def weave(
    template: type[Weave] | Weave | None = None,
    /,
    *,
    environment: str | None = None,
    error_mode: str | None = None,
    debug: bool | None = None,
    background: bool | None = None,
    fork: bool | None = None,
    on_done: Callable[[WoveResult], Any] | None = None,
    max_workers: int | None = None,
    max_pending: int | None = None,
    delivery_timeout: float | None = None,
    delivery_idempotency_key: Any = None,
    delivery_cancel_mode: str | None = None,
    delivery_heartbeat_seconds: float | None = None,
    delivery_max_in_flight: int | None = None,
    delivery_orphan_policy: str | None = None,
    **data: Any,
) -> WeaveBlock:
    """Open a weave: ``with weave() as w:`` or ``async with weave() as w:``.

    Tasks declared in the block with ``@w.do`` run when the block ends, each as soon as its
    dependencies are done; read them from ``w.result`` afterwards.

    Args:
        template: a :class:`Weave` subclass (or instance) whose ``@Weave.do`` methods are tasks.
        environment: where tasks that name no environment run.
        error_mode: ``"raise"`` (default) re-raises the first failure from the block;
            ``"return"`` records failures in ``w.result`` instead.
        debug: print the plan before running and per-task timings after.
        background: return at once and run the weave in a thread.
        fork: return at once and run the weave in a new process (needs ``wove-core[dispatch]``).
        on_done: called with the :class:`WoveResult` when the weave finishes.
        max_workers: threads for sync tasks (a shared pool of this size).
        max_pending: the most items a mapped task may have.
        delivery_timeout: a default for this weave's tasks sent to other processes.
        delivery_idempotency_key: a default for this weave's tasks sent to other processes.
        delivery_cancel_mode: a default for this weave's tasks sent to other processes.
        delivery_heartbeat_seconds: a default for this weave's tasks sent to other processes.
        delivery_max_in_flight: a default for this weave's tasks sent to other processes.
        delivery_orphan_policy: a default for this weave's tasks sent to other processes.
        **data: values injected into tasks whose parameters share their names; a parameter
            named ``data`` receives all of them as one dict.

    Raises:
        UnknownOptionError: a data name that is really an option name.
        ReservedNameError: data named ``data``, ``final`` or ``cancelled`` (a ``NameError``).
        WeaveUsageError: a sync ``with`` inside a running event loop.

    Example:
        >>> with weave(user_id=7) as w:
        ...     @w.do
        ...     def user(user_id):
        ...         return {"id": user_id}
        >>> w.result.user
        {'id': 7}
    """
    reserved = sorted(data.keys() & (DEFAULT_KEYS | TASK_OPTIONS | CONFIG_KEYS))
    if reserved:
        name = reserved[0]
        where = (
            f"a task option. Set it on @w.do({name}=...) or as a default in wove.config()"
            if name in TASK_OPTIONS | DEFAULT_KEYS
            else "an option of wove.config()"
        )
        raise UnknownOptionError(
            f"weave() got {name}={data[name]!r}, but {name!r} is not a weave option and cannot "
            f"be injected data either: it is {where}. To inject a value, give it another name. "
            f"Weave options: {_OPTION_DOCS}."
        )
    kept = sorted(data.keys() & _RESERVED_REASONS.keys())
    if kept:
        raise ReservedNameError(kept[0], "injected data", _RESERVED_REASONS[kept[0]])
    options = {
        key: validate_option(key, value)
        for key, value in (
            ("environment", environment),
            ("error_mode", error_mode),
            ("debug", debug),
            ("background", background),
            ("fork", fork),
            ("on_done", on_done),
            ("max_workers", max_workers),
            ("max_pending", max_pending),
            ("delivery_timeout", delivery_timeout),
            ("delivery_idempotency_key", delivery_idempotency_key),
            ("delivery_cancel_mode", delivery_cancel_mode),
            ("delivery_heartbeat_seconds", delivery_heartbeat_seconds),
            ("delivery_max_in_flight", delivery_max_in_flight),
            ("delivery_orphan_policy", delivery_orphan_policy),
        )
        if value is not None
    }
    assert options.keys() <= WEAVE_OPTIONS
    return WeaveBlock(template, options, data)
