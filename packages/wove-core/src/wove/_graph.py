"""The plan built from task signatures: dependencies, mapping, cycles, unresolved names, tiers.

Parameter names are the whole wiring language: a parameter named after a task receives its
result, one named after injected data receives that value, a parameter called ``data`` (when no
task has that name) receives every injected value as one dict, a parameter with a default that
matches none of these keeps its default, and a mapped task has exactly one remaining parameter,
which receives each item.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ._errors import DependencyCycleError, TaskSignatureError, UnresolvedSignatureError

__all__ = [
    "ALL_DATA",
    "NOT_MAPPED",
    "ExecutionPlan",
    "Parameter",
    "TaskSpec",
    "build_plan",
    "is_coroutine_function",
    "parameters_of",
]


class _NotMapped:
    def __repr__(self) -> str:
        return "NOT_MAPPED"

    def __reduce__(self) -> str:
        return "NOT_MAPPED"  # unpickles as the one module-level marker


#: Marks a task that is not mapped (``None`` could be a user's iterable by mistake).
NOT_MAPPED: Final[Any] = _NotMapped()

#: The parameter that receives all injected data as one dict (as in wove 2.x), unless a task
#: has that name. It cannot be injected data itself.
ALL_DATA: Final = "data"


@dataclasses.dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    has_default: bool
    positional_only: bool = False


_parameter_cache: dict[tuple[types.CodeType, int, tuple[str, ...], int], tuple[Parameter, ...]] = {}


def _from_code(
    code: types.CodeType, defaults: int, kwdefaults: Mapping[str, Any] | None, skip: int
) -> tuple[Parameter, ...]:
    key = (code, defaults, tuple(kwdefaults) if kwdefaults else (), skip)
    cached = _parameter_cache.get(key)
    if cached is not None:
        return cached
    positional = code.co_argcount
    names = code.co_varnames[: positional + code.co_kwonlyargcount]
    first_default = positional - defaults
    posonly = code.co_posonlyargcount
    result = []
    for index, name in enumerate(names):
        if index < skip:
            continue
        has_default = index >= first_default if index < positional else name in key[2]
        result.append(Parameter(name, has_default, index < posonly))
    parameters = _parameter_cache[key] = tuple(result)
    return parameters


def is_coroutine_function(func: Callable[..., Any]) -> bool:
    """``inspect.iscoroutinefunction``, with a shortcut for plain functions and methods."""
    target = func.__func__ if isinstance(func, types.MethodType) else func
    if type(target) is types.FunctionType:
        return bool(target.__code__.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(func)


def parameters_of(func: Callable[..., Any]) -> tuple[Parameter, ...]:
    """Return the injectable parameters of ``func`` (``*args``/``**kwargs`` are ignored).

    Plain functions and bound methods are read from their code object, which is much cheaper
    than :func:`inspect.signature` and matters when a weave declares thousands of tasks.
    """
    target: Any = func
    skip = 0
    if isinstance(target, types.MethodType):
        target, skip = target.__func__, 1
    code = getattr(target, "__code__", None)
    if isinstance(code, types.CodeType) and isinstance(target, types.FunctionType):
        return _from_code(code, len(target.__defaults__ or ()), target.__kwdefaults__, skip)
    signature = inspect.signature(func)
    return tuple(
        Parameter(p.name, p.default is not p.empty, p.kind is p.POSITIONAL_ONLY)
        for p in signature.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


@dataclasses.dataclass(slots=True)
class TaskSpec:
    """One declared task: the callable, what it maps over, and the options given for it."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    map_source: Any = NOT_MAPPED
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_mapped(self) -> bool:
        return self.map_source is not NOT_MAPPED


@dataclasses.dataclass(frozen=True)
class ExecutionPlan:
    """What will run, and in which order it may.

    Tasks start as soon as their own dependencies finish; ``tiers`` groups them by the length of
    their longest dependency chain and exists for reading, not as a barrier.
    """

    order: tuple[str, ...]
    dependencies: Mapping[str, tuple[str, ...]]
    dependents: Mapping[str, tuple[str, ...]]
    task_parameters: Mapping[str, tuple[str, ...]]
    data_parameters: Mapping[str, tuple[str, ...]]
    item_parameters: Mapping[str, str]
    tiers: tuple[tuple[str, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and dicts, for logging or JSON."""
        return {
            "order": list(self.order),
            "dependencies": {name: list(deps) for name, deps in self.dependencies.items()},
            "dependents": {name: list(deps) for name, deps in self.dependents.items()},
            "tiers": [list(tier) for tier in self.tiers],
        }

    def __getitem__(self, key: str) -> Any:
        """The plan as wove 2.x exposed it: ``plan["dependencies"]``, ``plan["tiers"]``...

        ``dependencies`` and ``dependents`` map each task to a ``set`` of names, ``tiers`` is a
        list of lists and ``sorted_tasks`` a list in an order the tasks may start in.
        """
        if key == "dependencies":
            return {name: set(deps) for name, deps in self.dependencies.items()}
        if key == "dependents":
            return {name: set(deps) for name, deps in self.dependents.items()}
        if key == "tiers":
            return [list(tier) for tier in self.tiers]
        if key == "sorted_tasks":
            return [name for tier in self.tiers for name in tier]
        if key == "order":
            return list(self.order)
        raise KeyError(
            f"execution plans have no entry {key!r}; they have 'dependencies', 'dependents', "
            "'tiers', 'sorted_tasks' and 'order' (also as attributes, such as plan.tiers)"
        )

    def get(self, key: str, default: Any = None) -> Any:
        """``plan[key]``, or ``default`` for a key the plan does not have."""
        try:
            return self[key]
        except KeyError:
            return default


def build_plan(tasks: Mapping[str, TaskSpec], data: Mapping[str, Any]) -> ExecutionPlan:
    """Wire ``tasks`` together by parameter name and check the result can run.

    Raises:
        UnresolvedSignatureError: a parameter names nothing that exists.
        DependencyCycleError: tasks that wait on each other.
        TaskSignatureError: a mapped task without exactly one item parameter, or a
            positional-only parameter that Wove would have to fill.
    """
    dependencies: dict[str, tuple[str, ...]] = {}
    task_parameters: dict[str, tuple[str, ...]] = {}
    data_parameters: dict[str, tuple[str, ...]] = {}
    item_parameters: dict[str, str] = {}
    for name, spec in tasks.items():
        deps: list[str] = []
        from_data: list[str] = []
        unresolved: list[Parameter] = []
        for parameter in parameters_of(spec.func):
            if parameter.positional_only and (
                parameter.name in tasks or parameter.name in data or not parameter.has_default
            ):
                raise TaskSignatureError(
                    f"task {name!r}: parameter {parameter.name!r} is positional-only, but Wove "
                    "passes values by name. Remove the '/' from its signature."
                )
            if parameter.name in tasks:
                if parameter.name == name:
                    raise DependencyCycleError((name, name))
                deps.append(parameter.name)
            elif parameter.name in data or parameter.name == ALL_DATA:
                from_data.append(parameter.name)
            elif not parameter.has_default:
                unresolved.append(parameter)
        task_parameters[name] = tuple(deps)
        source = spec.map_source
        if isinstance(source, str):
            if source == name:
                raise DependencyCycleError((name, name))
            if source in tasks:
                if source not in deps:
                    deps.append(source)
            elif source not in data and source != ALL_DATA:
                raise UnresolvedSignatureError(name, source, _available(tasks, data, name))
        if spec.is_mapped:
            if len(unresolved) != 1:
                named = ", ".join(repr(p.name) for p in unresolved) or "none"
                raise TaskSignatureError(
                    f"mapped task {name!r} needs exactly one parameter that is neither a task "
                    f"nor data to receive each item; it has {len(unresolved)} ({named}). "
                    "Rename the others after tasks or data, or give them defaults."
                )
            item_parameters[name] = unresolved[0].name
        elif unresolved:
            raise UnresolvedSignatureError(name, unresolved[0].name, _available(tasks, data, name))
        dependencies[name] = tuple(deps)
        data_parameters[name] = tuple(from_data)
    dependents: dict[str, list[str]] = {name: [] for name in tasks}
    for name, needed in dependencies.items():
        for dep in needed:
            dependents[dep].append(name)
    tiers = _tiers(dependencies, dependents)
    return ExecutionPlan(
        order=tuple(tasks),
        dependencies=dependencies,
        dependents={name: tuple(names) for name, names in dependents.items()},
        task_parameters=task_parameters,
        data_parameters=data_parameters,
        item_parameters=item_parameters,
        tiers=tiers,
    )


def _available(tasks: Iterable[str], data: Iterable[str], exclude: str) -> list[str]:
    return [name for name in (*tasks, *data, ALL_DATA) if name != exclude]


def _tiers(
    dependencies: Mapping[str, tuple[str, ...]], dependents: Mapping[str, list[str]]
) -> tuple[tuple[str, ...], ...]:
    """Group tasks by the length of their longest dependency chain (Kahn's algorithm)."""
    remaining = {name: len(deps) for name, deps in dependencies.items()}
    level = dict.fromkeys((name for name, count in remaining.items() if count == 0), 0)
    ready = list(level)
    while ready:
        name = ready.pop()
        child_level = level[name] + 1
        for child in dependents[name]:
            if level.get(child, 0) < child_level:
                level[child] = child_level
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    if any(remaining.values()):
        stuck = {name for name, count in remaining.items() if count}
        raise DependencyCycleError(_find_cycle(dependencies, stuck))
    tiers: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name in dependencies:
        tiers[level[name]].append(name)
    return tuple(tuple(tier) for tier in tiers)


def _find_cycle(dependencies: Mapping[str, tuple[str, ...]], stuck: set[str]) -> list[str]:
    start = next(name for name in dependencies if name in stuck)
    path = [start]
    seen = {start: 0}
    current = start
    while True:
        current = next(dep for dep in dependencies[current] if dep in stuck)
        if current in seen:
            return [*path[seen[current] :], current]
        seen[current] = len(path)
        path.append(current)
