"""Code written for wove 2.x keeps working (DESIGN §2, "2.x users come first").

One test per 2.x behaviour that 3.x keeps: what ``w.result`` iterates over, which names are
reserved, the ``data`` parameter, the built-in exception classes 2.x raised, ``merge`` awaiting
what a sync callable returns, the dict view of the execution plan, the 2.x module paths, the
helpers' return types, ``Weave`` subclasses run only through ``weave()``, configuration that
merges across calls, environments that fail before anything runs, and exceptions that show (and
pickle by) their public path.
"""

from __future__ import annotations

import asyncio
import importlib
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import cloudpickle
import pytest

import wove
import wove._errors
from wove import (
    DeliveryOrphanedError,
    DeliveryTimeoutError,
    DependencyCycleError,
    EnvironmentExecutionError,
    Executor,
    InvalidOptionError,
    MissingCallbackFeatureError,
    MissingDispatchFeatureError,
    MissingExecutorPluginError,
    PluginError,
    ReservedNameError,
    TaskCancelledError,
    TaskSignatureError,
    UnknownEnvironmentError,
    UnknownOptionError,
    UnresolvedSignatureError,
    UpstreamTaskError,
    Weave,
    WeaveUsageError,
    WoveError,
    merge,
    undict,
    weave,
)
from wove._errors import DuplicatePluginError, FrameRejectedError, RunNotClaimedError
from wove._registry import get_registry
from wove.network import network_settings
from wove.plugins import ExecutorKind, hookimpl

ERROR_MODES = ["raise", "return"]


def three_tasks() -> wove.WoveResult:
    """Declared first, second, third; they finish in the reverse order."""
    with weave() as w:

        @w.do
        def first(second: int) -> int:
            return second + 1

        @w.do
        def second(third: int) -> int:
            return third + 1

        @w.do
        def third() -> int:
            return 1

    return w.result


# -- w.result -------------------------------------------------------------------------------------


def test_result_unpacks_values_in_definition_order() -> None:
    result = three_tasks()

    first, second, third = result

    assert (first, second, third) == (3, 2, 1)
    assert list(result) == [3, 2, 1]
    assert list(result.keys()) == ["first", "second", "third"]
    assert dict(result) == {"first": 3, "second": 2, "third": 1}


def test_result_unpacking_in_return_mode_yields_a_failed_task_as_its_exception() -> None:
    with weave(error_mode="return") as w:

        @w.do
        def ok() -> int:
            return 1

        @w.do
        def broken() -> int:
            raise ValueError("bad input")

    ok, broken = w.result

    assert ok == 1
    assert isinstance(broken, ValueError)


@pytest.mark.parametrize(
    "name", ["items", "keys", "values", "get", "to_dict", "timings", "exception"]
)
def test_task_named_like_a_result_method_is_allowed_and_read_by_item(name: str) -> None:
    def task() -> str:
        return f"the {name} task"

    task.__name__ = name
    with weave() as w:
        w.do(task)

    assert w.result[name] == f"the {name} task"
    assert list(w.result) == [f"the {name} task"]
    attribute = getattr(w.result, name)  # still the result's own attribute, not the task
    if name == "timings":
        assert list(attribute) == ["timings"]
    elif name == "exception":
        assert attribute is None
    else:
        assert attribute.__func__ is getattr(wove.WoveResult, name)


def test_result_methods_still_work_when_tasks_are_named_after_them() -> None:
    with weave() as w:

        @w.do
        def items() -> list[int]:
            return [1, 2]

        @w.do
        def exception() -> str:
            return "not an error"

    assert w.result.items() == [("items", [1, 2]), ("exception", "not an error")]
    assert w.result.exception is None
    assert w.result["exception"] == "not an error"


def test_task_named_final_is_a_name_error() -> None:
    with (
        weave() as w,
        pytest.raises(NameError, match="task name 'final' is reserved") as caught,
    ):

        @w.do
        def final() -> None:
            pass

    assert isinstance(caught.value, ReservedNameError)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("data", "receives all injected values as a dict"), ("final", "w.result.final is")],
)
def test_reserved_names_as_injected_data_are_a_name_error(name: str, reason: str) -> None:
    with pytest.raises(NameError, match=f"injected data name {name!r} is reserved: .*{reason}"):
        weave(**{name: {"a": 1}})


def test_parameter_named_data_receives_the_injected_values_as_a_dict() -> None:
    with weave(a=10, b=20) as w:

        @w.do
        def everything(data: dict[str, int]) -> dict[str, int]:
            return data

        @w.do
        def mixed(a: int, data: dict[str, int]) -> int:
            return a + data["b"]

    assert w.result.everything == {"a": 10, "b": 20}
    assert w.result.mixed == 30
    assert "data" not in w.result


def test_final_of_a_weave_without_tasks_is_none() -> None:
    with weave() as w:
        pass

    assert w.result.final is None


# -- the exception classes 2.x raised -------------------------------------------------------------


def test_dependency_cycle_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="cycle: ping -> pong -> ping") as caught, weave() as w:  # noqa: PT012

        @w.do
        def ping(pong: int) -> int:
            return pong

        @w.do
        def pong(ping: int) -> int:
            return ping

    assert isinstance(caught.value, DependencyCycleError)


def test_mapping_over_a_non_iterable_result_raises_a_type_error_from_the_block() -> None:
    with (  # noqa: PT012
        pytest.raises(TypeError, match=r"maps over 'count', which gave int 3; it must be"),
        weave() as w,
    ):

        @w.do
        def count() -> int:
            return 3

        @w.do("count")
        def mapped(item: int) -> int:
            return item

    assert isinstance(w.result.exception, TypeError)


def test_mapping_over_a_non_iterable_result_is_a_type_error_result_in_return_mode() -> None:
    with weave(error_mode="return") as w:

        @w.do
        def count() -> int:
            return 3

        @w.do("count")
        def mapped(item: int) -> int:
            return item

    assert isinstance(w.result.mapped, TypeError)
    assert "must be iterable" in str(w.result.mapped)


def test_mapped_task_with_more_items_than_max_pending_is_a_runtime_error() -> None:
    with (
        pytest.raises(RuntimeError, match=r"'mapped' has 3 items, more than max_pending=2"),
        weave(max_pending=2) as w,
    ):

        @w.do([1, 2, 3])
        def mapped(item: int) -> int:
            return item

    assert isinstance(w.result.exception, RuntimeError)


def test_merge_with_more_items_than_max_pending_is_a_runtime_error() -> None:
    with weave(max_pending=2, error_mode="return") as w:

        @w.do
        def merged() -> Any:
            return merge(str, [1, 2, 3])

    assert isinstance(w.result.merged, RuntimeError)
    assert "3 items, more than max_pending=2" in str(w.result.merged)


def test_merge_workers_without_an_iterable_is_a_value_error() -> None:
    with (
        pytest.raises(ValueError, match="workers and limit_per_minute apply only when an iter"),
        weave() as w,
    ):

        @w.do
        def merged() -> Any:
            return merge(int, workers=2)

    assert isinstance(w.result.exception, InvalidOptionError)


def test_mapped_task_with_no_item_parameter_is_a_type_error() -> None:
    with (
        pytest.raises(TypeError, match=r"'mapped' needs exactly one parameter.*it has 0") as caught,
        weave() as w,
    ):

        @w.do([1, 2])
        def mapped() -> int:
            return 1

    assert isinstance(caught.value, TaskSignatureError)


def test_errors_2x_raised_as_runtime_errors_are_still_runtime_errors() -> None:
    assert isinstance(DeliveryTimeoutError("late"), RuntimeError)
    assert isinstance(DeliveryTimeoutError("late"), TimeoutError)
    assert isinstance(MissingDispatchFeatureError("fork"), RuntimeError)
    assert isinstance(MissingDispatchFeatureError("fork"), ImportError)


# -- merge ----------------------------------------------------------------------------------------


async def fetch(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


def test_merge_awaits_a_coroutine_returned_by_a_sync_callable() -> None:
    with weave() as w:

        @w.do
        async def from_async() -> int:
            return await merge(lambda: fetch(21))  # type: ignore[no-any-return]

        @w.do
        def from_sync() -> int:
            return merge(lambda: fetch(4))  # type: ignore[no-any-return]

        @w.do
        async def mapped() -> list[int]:
            return await merge(lambda item: fetch(item), [1, 2, 3])  # type: ignore[no-any-return]

    assert w.result.from_async == 42
    assert w.result.from_sync == 8
    assert w.result.mapped == [2, 4, 6]


def test_merge_retries_a_failing_coroutine_returned_by_a_sync_callable() -> None:
    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError("try again")
        return "ok"

    with weave() as w:

        @w.do
        async def merged() -> str:
            return await merge(lambda: flaky(), retries=1)  # type: ignore[no-any-return]

    assert w.result.merged == "ok"
    assert len(attempts) == 2


# -- the execution plan ---------------------------------------------------------------------------


def test_execution_plan_reads_like_the_2x_dict() -> None:
    with weave() as w:

        @w.do
        def user() -> dict[str, int]:
            return {"id": 1}

        @w.do
        def profile(user: dict[str, int]) -> dict[str, Any]:
            return {"user": user}

    plan = w.execution_plan
    assert plan is not None
    assert plan["dependencies"] == {"user": set(), "profile": {"user"}}
    assert plan["dependents"] == {"user": {"profile"}, "profile": set()}
    assert plan["tiers"] == [["user"], ["profile"]]
    assert plan["sorted_tasks"] == ["user", "profile"]
    assert plan.get("tiers") == [["user"], ["profile"]]
    assert plan.get("nothing", "fallback") == "fallback"
    with pytest.raises(KeyError, match="no entry 'nothing'; they have 'dependencies'"):
        plan["nothing"]


# -- module paths and helpers ---------------------------------------------------------------------


def test_2x_module_paths_import_the_3x_objects() -> None:
    from wove import helpers

    errors = importlib.import_module("wove.errors")
    helpers_by_path = importlib.import_module("wove.helpers")

    assert helpers is helpers_by_path
    for name in ("flatten", "fold", "batch", "undict", "redict", "denone", "sync_to_async"):
        assert getattr(helpers, name) is getattr(wove, name), name
    assert errors.UnresolvedSignatureError is UnresolvedSignatureError
    assert errors.MissingDispatchFeatureError is MissingDispatchFeatureError
    assert sorted(helpers.__all__) == [
        "batch",
        "denone",
        "flatten",
        "fold",
        "redict",
        "sync_to_async",
        "undict",
    ]


def test_catching_the_2x_error_path_catches_what_the_engine_raises() -> None:
    from wove.errors import UnresolvedSignatureError as Unresolved2x

    with pytest.raises(Unresolved2x, match="asks for 'nowhere'"), weave() as w:

        @w.do
        def lost(nowhere: int) -> int:
            return nowhere


def test_undict_gives_hashable_key_value_tuples() -> None:
    pairs = undict({"a": 1, "b": 2})

    assert pairs == [("a", 1), ("b", 2)]
    assert set(pairs) == {("a", 1), ("b", 2)}


# -- Weave subclasses -----------------------------------------------------------------------------


class Greeting(Weave):
    @Weave.do
    def name(self) -> str:
        return "Ada"

    @Weave.do
    def message(self, name: str) -> str:
        return f"Hello, {name}"


def test_weave_subclass_instantiated_directly_is_a_type_error() -> None:
    with pytest.raises(
        TypeError, match=r"Greeting\(\) cannot be .* 'with weave\(Greeting\) as w:'"
    ):
        Greeting()

    with weave(Greeting) as w:
        pass

    assert w.result.final == "Hello, Ada"


# -- configuration --------------------------------------------------------------------------------


def runs_of_a_failing_task(environment: str) -> int:
    """How many times an always-failing task runs in ``environment`` (its retries + 1)."""
    attempts: list[int] = []
    with weave(environment=environment, error_mode="return") as w:

        @w.do
        def failing() -> None:
            attempts.append(1)
            raise ConnectionError("always")

    assert isinstance(w.result.failing, ConnectionError)
    return len(attempts)


def test_named_environments_merge_across_config_calls() -> None:
    wove.config(environments={"a": {"retries": 1}})
    wove.config(environments={"b": {"retries": 2}})

    assert runs_of_a_failing_task("a") == 2
    assert runs_of_a_failing_task("b") == 3


def test_a_later_definition_of_an_environment_replaces_it() -> None:
    wove.config(environments={"a": {"retries": 1, "timeout": 5}})
    wove.config(environments={"a": {"retries": 2}})

    settings = wove._config.current_config().environments["a"].settings
    assert dict(settings) == {"retries": 2}


# -- environments that cannot start ---------------------------------------------------------------


class CheckingExecutor(Executor):
    """An out-of-process executor whose ``start`` checks its configuration the way the network
    and process executors do, with wove's own helpers, and records anything submitted."""

    kind: ClassVar[ExecutorKind] = "network"

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        where = f"executor_config of environment {environment_name!r}"
        processes = environment_config.get("processes", 1)
        if not isinstance(processes, int) or processes < 1:
            raise InvalidOptionError(
                f"{where}: processes must be an integer >= 1, got {processes!r}"
            )
        network_settings(
            {key: value for key, value in environment_config.items() if key != "host"},
            host=environment_config.get("host", "127.0.0.1"),
            tls=False,
            where=where,
            extra_keys=frozenset({"processes"}),
        )

    async def send(self, frame: Any) -> None:
        self.sent.append(frame)

    async def recv(self) -> Any:
        await asyncio.Event().wait()  # nothing is ever sent back

    async def stop(self) -> None:
        pass


class AbsentBackendPlugin:
    """A plugin whose backend library is not installed."""

    @hookimpl
    def register_executors(self, register: Any) -> None:
        register(
            name="raven", kind="backend", requires=("wove_absent_backend_xyz",), load=lambda: None
        )


@pytest.fixture
def absent_backend_plugin() -> Iterator[None]:
    plugin = AbsentBackendPlugin()
    registry = get_registry()
    registry.register_plugin(plugin, distribution="wove-raven")
    try:
        yield
    finally:
        registry.unregister_plugin(plugin)


UNSET_SECRET = "WOVE_COMPAT_TEST_SECRET_THAT_IS_NOT_SET"

CANNOT_START = [
    pytest.param(
        {"executor": "nomad"},
        MissingExecutorPluginError,
        "no installed plugin provides it.*pip install wove-nomad",
        id="unknown executor",
    ),
    pytest.param(
        {"executor": "raven"},
        PluginError,
        "needs the module 'wove_absent_backend_xyz'",
        id="missing backend library",
    ),
    pytest.param(
        {"executor": "checking", "executor_config": {"processes": 0}},
        InvalidOptionError,
        "processes must be an integer >= 1, got 0",
        id="invalid executor_config",
    ),
    pytest.param(
        {"executor": "checking", "executor_config": {"security": f"env:{UNSET_SECRET}"}},
        ValueError,
        UNSET_SECRET,
        id="unset env secret",
    ),
    pytest.param(
        {"executor": "checking", "executor_config": {"host": "10.20.30.40"}},
        ValueError,
        "'10.20.30.40' is not a loopback address, so the connection must use TLS",
        id="plain text off loopback",
    ),
]


@pytest.mark.usefixtures("absent_backend_plugin")
@pytest.mark.parametrize("error_mode", ERROR_MODES)
@pytest.mark.parametrize(("environment", "error", "message"), CANNOT_START)
def test_environment_that_cannot_start_raises_before_any_task_in_either_error_mode(
    environment: dict[str, Any],
    error: type[Exception],
    message: str,
    error_mode: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(UNSET_SECRET, raising=False)
    executor = CheckingExecutor()
    if environment["executor"] == "checking":
        environment = {**environment, "executor": executor}
    wove.config(environments={"far": environment})
    ran: list[str] = []

    with (  # noqa: PT012
        pytest.raises(error, match=message),
        weave(error_mode=error_mode) as w,
    ):

        @w.do
        def local() -> None:
            ran.append("local")

        @w.do(environment="far")
        def remote() -> None:
            ran.append("remote")

        ran.append("block body finished")

    assert ran == ["block body finished"]
    assert executor.sent == []
    assert list(w.result.keys()) == []


@pytest.mark.parametrize("error_mode", ERROR_MODES)
def test_environment_that_cannot_start_raises_in_async_with_too(error_mode: str) -> None:
    wove.config(
        environments={"far": {"executor": CheckingExecutor(), "executor_config": {"processes": -1}}}
    )

    async def main() -> None:
        async with weave(error_mode=error_mode) as w:

            @w.do(environment="far")
            def remote() -> None:
                pass

    with pytest.raises(InvalidOptionError, match="got -1"):
        asyncio.run(main())


def test_environment_that_failed_to_start_is_tried_again_by_the_next_weave() -> None:
    executor = CheckingExecutor()
    wove.config(environments={"far": {"executor": executor, "executor_config": {"processes": 0}}})
    for _ in range(2):
        with pytest.raises(InvalidOptionError, match="got 0"), weave(error_mode="return") as w:

            @w.do(environment="far")
            def remote() -> None:
                pass


# -- the public path of exceptions ----------------------------------------------------------------


def test_errors_show_their_public_path_from_the_moment_they_are_raised() -> None:
    script = textwrap.dedent(
        """
        import traceback
        import wove
        from wove import weave

        assert "DependencyCycleError" not in vars(wove)  # never read through wove.<Name>
        try:
            with weave() as w:

                @w.do
                def ping(pong):
                    return pong

                @w.do
                def pong(ping):
                    return ping

        except Exception as error:
            print(traceback.format_exception_only(type(error), error)[-1].strip())
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )

    assert completed.stdout.startswith("wove.DependencyCycleError: tasks depend on each other")


def every_public_error() -> list[WoveError]:
    return [
        WoveError("plain"),
        UnresolvedSignatureError("report", "usr", ["user"]),
        UnknownEnvironmentError("gpu", ["default"]),
        ReservedNameError("final", "task", "it is taken"),
        DependencyCycleError(["a", "b", "a"]),
        InvalidOptionError("retries must be an integer >= 0, got -1"),
        UnknownOptionError("unknown option 'retires'"),
        TaskSignatureError("positional-only"),
        WeaveUsageError("merge() outside a task"),
        UpstreamTaskError("child", "parent", ValueError("boom")),
        TaskCancelledError("slow"),
        EnvironmentExecutionError(
            "remote failure", kind="app.Boom", remote_traceback="tb", retryable=False
        ),
        DeliveryTimeoutError("no terminal event"),
        DeliveryOrphanedError("worker went away"),
        FrameRejectedError("bad signature"),
        RunNotClaimedError("claimed elsewhere"),
        MissingExecutorPluginError("celery", "jobs", ["local"]),
        MissingDispatchFeatureError("weave(fork=True)"),
        MissingCallbackFeatureError(),
        PluginError("broken"),
        DuplicatePluginError("celery", "wove-celery", "acme-celery"),
    ]


def test_every_public_error_is_covered_by_the_pickle_tests() -> None:
    covered = {type(error).__name__ for error in every_public_error()}
    defined = {
        name for name in wove._errors.__all__ if isinstance(getattr(wove._errors, name), type)
    }

    assert covered == defined


class PluginTimeoutError(DeliveryTimeoutError):
    """What an executor plugin defines: a subclass with a constructor of its own."""

    def __init__(self, job: str, seconds: float) -> None:
        self.job = job
        self.seconds = seconds
        super().__init__(f"job {job!r} sent nothing for {seconds:g}s")


def local_plugin_error() -> WoveError:
    class LocalPluginError(WoveError, LookupError):  # pickled by value by cloudpickle
        def __init__(self, queue: str) -> None:
            self.queue = queue
            super().__init__(f"queue {queue!r} is gone")

    return LocalPluginError("reports")


def same_error(copy: BaseException, original: BaseException) -> bool:
    return (
        type(copy).__qualname__ == type(original).__qualname__
        and str(copy) == str(original)
        and {key: repr(value) for key, value in vars(copy).items()}
        == {key: repr(value) for key, value in vars(original).items()}
    )


@pytest.mark.parametrize(
    "error",
    [*every_public_error(), PluginTimeoutError("nightly", 30)],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("serializer", [pickle, cloudpickle], ids=["pickle", "cloudpickle"])
def test_errors_survive_pickle_round_trips_by_their_public_path(
    error: WoveError, serializer: Any
) -> None:
    copy = pickle.loads(serializer.dumps(error))

    assert type(copy) is type(error)
    assert same_error(copy, error)
    if type(error).__module__ == "wove":
        assert getattr(wove, type(error).__name__) is type(error)


def test_plugin_error_defined_in_a_function_survives_cloudpickle() -> None:
    error = local_plugin_error()

    copy = pickle.loads(cloudpickle.dumps(error))

    assert same_error(copy, error)
    assert isinstance(copy, LookupError)


def test_unknown_executor_is_a_value_error_as_in_2x():
    wove.config(environments={"far": {"executor": "pigeon-that-no-plugin-offers"}})

    def run_far_task() -> None:
        with weave() as w:

            @w.do(environment="far")
            def task():
                return 1

    with pytest.raises(ValueError, match="pip install wove-pigeon-that-no-plugin-offers"):
        run_far_task()


def test_environment_execution_error_keeps_the_2x_payload_view():
    error = wove.EnvironmentExecutionError(
        "boom", kind="ValueError", remote_traceback="Traceback ...", retryable=False
    )

    assert error.payload == {
        "kind": "ValueError",
        "message": "boom",
        "traceback": "Traceback ...",
        "retryable": False,
        "source": "task",
    }


def test_duplicate_job_error_shows_its_public_path_and_pickles():
    from wove.backends import DuplicateJobError

    error = DuplicateJobError("job 'x' exists")

    assert (
        f"{type(error).__module__}.{type(error).__qualname__}" == "wove.backends.DuplicateJobError"
    )
    assert str(pickle.loads(pickle.dumps(error))) == "job 'x' exists"
