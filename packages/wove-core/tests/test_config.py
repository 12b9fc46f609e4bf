"""Configuration and environments (DESIGN §3): ``wove.config()``, ``wove_config.py``, environment
name resolution and the order in which settings apply."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import wove
from wove import (
    InProcessExecutor,
    InvalidOptionError,
    MissingExecutorPluginError,
    UnknownEnvironmentError,
    UnknownOptionError,
    weave,
)
from wove._config import current_config, find_config_file
from wove._options import TaskSettings
from wove._scheduler import active_run


def attempts_of(weave_options: Mapping[str, Any] | None = None, **task_options: Any) -> int:
    """How many times an always-failing task runs with these options (its retries + 1)."""
    attempts: list[int] = []
    with weave(error_mode="return", **(weave_options or {})) as w:

        @w.do(**task_options)
        def failing() -> None:
            attempts.append(1)
            raise ConnectionError("always")

    assert isinstance(w.result.failing, ConnectionError)
    return len(attempts)


def settings_of(
    weave_options: Mapping[str, Any] | None = None, **task_options: Any
) -> TaskSettings:
    """The settings the engine resolved for one task."""
    with weave(**(weave_options or {})) as w:

        @w.do(**task_options)
        async def probe() -> TaskSettings:
            run = active_run.get()
            assert run is not None
            return run.settings["probe"]

    return w.result.probe  # type: ignore[no-any-return]


def write_config(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "wove_config.py"
    path.write_text(body)
    return path


# -- wove.config() --------------------------------------------------------------------------------


def test_config_sets_process_wide_defaults() -> None:
    wove.config(retries=2)

    assert attempts_of() == 3


def test_config_keeps_what_a_later_call_does_not_name() -> None:
    wove.config(retries=2, default_environment="batch", environments={"batch": {}})
    wove.config(max_workers=4)

    assert attempts_of() == 3
    assert current_config().defaults == {"retries": 2, "max_workers": 4}
    assert current_config().default_environment == "batch"


def test_config_replaces_a_setting_a_later_call_names_again() -> None:
    wove.config(retries=2)
    wove.config(retries=0)

    assert attempts_of() == 1


def test_environment_defined_again_is_replaced_not_merged_key_by_key() -> None:
    wove.config(environments={"batch": {"retries": 2, "timeout": 5}})
    wove.config(environments={"batch": {"retries": 1}})

    batch = current_config().environments["batch"]
    assert dict(batch.settings) == {"retries": 1}
    assert attempts_of({"environment": "batch"}) == 2


def test_environment_given_as_none_is_removed() -> None:
    wove.config(environments={"batch": {}, "bulk": {}})
    wove.config(environments={"bulk": None})

    assert set(current_config().environments) == {"batch"}
    with pytest.raises(UnknownEnvironmentError, match="unknown environment 'bulk'"):
        weave(environment="bulk")


def test_builtin_defaults_apply_without_config() -> None:
    assert attempts_of() == 1
    assert settings_of() == TaskSettings(environment="default")


def test_config_without_arguments_loads_the_nearest_wove_config_upward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, "WOVE_CONFIG = {'retries': 5}\n")
    nearest = write_config(tmp_path / "app", "WOVE_CONFIG = {'retries': 2}\n")
    working = tmp_path / "app" / "src" / "pkg"
    working.mkdir(parents=True)
    monkeypatch.chdir(working)

    loaded = wove.config()

    assert loaded.source == nearest.resolve()
    assert find_config_file() == nearest.resolve()
    assert attempts_of() == 3


def test_config_file_with_environments(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "WOVE_CONFIG = {\n"
        "    'default_environment': 'batch',\n"
        "    'environments': {'batch': {'executor': 'local', 'retries': 1}},\n"
        "}\n",
    )

    loaded = wove.config(config_file=path)

    assert loaded.default_environment == "batch"
    assert attempts_of() == 2


def test_config_without_arguments_and_without_a_file_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wove.config(retries=3)
    monkeypatch.chdir(tmp_path)
    found = find_config_file()
    assert found is None, f"{found} sits above the temporary directory; move it to run this test"

    in_force = wove.config()

    assert in_force is current_config()
    assert attempts_of() == 4


def test_config_file_settings_are_applied_then_the_keywords(tmp_path: Path) -> None:
    path = write_config(tmp_path, "WOVE_CONFIG = {'retries': 1, 'max_workers': 3}\n")

    loaded = wove.config(config_file=path, retries=2)

    assert loaded.source == path.resolve()
    assert loaded.defaults == {"retries": 2, "max_workers": 3}


def test_config_file_layers_over_the_configuration_in_force(tmp_path: Path) -> None:
    wove.config(environments={"batch": {"retries": 1}}, timeout=5)
    path = write_config(tmp_path, "WOVE_CONFIG = {'environments': {'bulk': {}}}\n")

    loaded = wove.config(config_file=path)

    assert set(loaded.environments) == {"batch", "bulk"}
    assert loaded.defaults == {"timeout": 5.0}


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        wove.config(config_file=tmp_path / "nope.py")


def test_config_file_without_wove_config_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "CONFIG = {}\n")

    with pytest.raises(InvalidOptionError, match=r"must define WOVE_CONFIG = \{\.\.\.\}"):
        wove.config(config_file=path)


def test_unknown_config_keyword_suggests_the_right_one() -> None:
    with pytest.raises(UnknownOptionError, match="Did you mean 'retries'"):
        wove.config(retires=1)  # type: ignore[call-arg]


def test_unknown_key_in_wove_config_suggests_the_right_one(tmp_path: Path) -> None:
    path = write_config(tmp_path, "WOVE_CONFIG = {'retires': 1}\n")

    with pytest.raises(
        UnknownOptionError, match=r"unknown option 'retires'\. Did you mean 'retries'"
    ):
        wove.config(config_file=path)


def test_unknown_environment_key_suggests_the_right_one() -> None:
    with pytest.raises(UnknownOptionError, match=r"environment 'gpu'.*Did you mean 'executor'"):
        wove.config(environments={"gpu": {"executer": "local"}})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"retries": -1}, "retries must be an integer >= 0", id="retries"),
        pytest.param({"timeout": 0}, "timeout must be a number of seconds > 0", id="timeout"),
        pytest.param({"error_mode": "loud"}, "error_mode must be one of", id="error_mode"),
        pytest.param({"environments": ["gpu"]}, "environments must be a dict", id="environments"),
        pytest.param({"environments": {"gpu": "local"}}, "must be a dict such as", id="spec"),
        pytest.param(
            {"environments": {"gpu": {"executor": 3}}}, "executor must be a plugin name", id="exe"
        ),
        pytest.param(
            {"environments": {"gpu": {"retries": True}}}, "retries must be an integer", id="bool"
        ),
    ],
)
def test_invalid_config_values_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        wove.config(**options)


def test_error_mode_from_config_applies_to_weaves() -> None:
    wove.config(error_mode="return")
    with weave() as w:

        @w.do
        def broken() -> None:
            raise ValueError("recorded, not raised")

    assert isinstance(w.result.broken, ValueError)


# -- environment names ----------------------------------------------------------------------------


@pytest.fixture
def three_environments() -> None:
    wove.config(
        default_environment="b",
        environments={"a": {"retries": 1}, "b": {"retries": 2}, "c": {"retries": 3}},
    )


@pytest.mark.usefixtures("three_environments")
def test_task_environment_wins_over_the_weave_environment() -> None:
    assert attempts_of({"environment": "c"}, environment="a") == 2


@pytest.mark.usefixtures("three_environments")
def test_weave_environment_wins_over_the_default_environment() -> None:
    assert attempts_of({"environment": "c"}) == 4


@pytest.mark.usefixtures("three_environments")
def test_default_environment_applies_when_nothing_names_one() -> None:
    assert attempts_of() == 3
    assert settings_of().environment == "b"


def test_environment_called_default_applies_last() -> None:
    wove.config(environments={"default": {"retries": 3}, "other": {}})

    assert attempts_of() == 4
    assert settings_of().environment == "default"


def test_unknown_task_environment_lists_the_configured_ones() -> None:
    wove.config(environments={"batch": {}})

    with (
        weave() as w,
        pytest.raises(
            UnknownEnvironmentError,
            match=r"unknown environment 'gpu'; configured: 'default', 'batch'",
        ) as caught,
    ):

        @w.do(environment="gpu")
        def task() -> None:
            pass

    assert isinstance(caught.value, NameError)


def test_unknown_weave_environment_lists_the_configured_ones() -> None:
    with pytest.raises(UnknownEnvironmentError, match="configured: 'default'"):
        weave(environment="gpu")


def test_unknown_default_environment_is_refused() -> None:
    with pytest.raises(UnknownEnvironmentError, match="unknown environment 'gpu'"):
        wove.config(default_environment="gpu", environments={"cpu": {}})


# -- the order settings apply ---------------------------------------------------------------------


@pytest.fixture
def layered_retries() -> None:
    wove.config(
        retries=5,
        environments={"strict": {"retries": 0}, "flaky": {"retries": 2}, "plain": {}},
    )


@pytest.mark.usefixtures("layered_retries")
def test_the_tasks_own_environment_settings_apply_not_the_weaves() -> None:
    assert attempts_of({"environment": "strict"}, environment="flaky") == 3


@pytest.mark.usefixtures("layered_retries")
def test_weave_environment_settings_apply_to_tasks_that_stay_there() -> None:
    assert attempts_of({"environment": "strict"}) == 1


@pytest.mark.usefixtures("layered_retries")
def test_task_options_win_over_their_environment() -> None:
    assert attempts_of({"environment": "strict"}, environment="flaky", retries=1) == 2


@pytest.mark.usefixtures("layered_retries")
def test_global_config_applies_where_the_environment_is_silent() -> None:
    assert attempts_of({"environment": "strict"}, environment="plain") == 6


def test_weave_delivery_options_win_over_the_environment_and_lose_to_the_task() -> None:
    wove.config(
        delivery_timeout=1.0,
        delivery_cancel_mode="require_ack",
        environments={"remote": {"delivery_timeout": 2.0}},
    )

    assert settings_of().delivery_timeout == 1.0
    assert settings_of(environment="remote").delivery_timeout == 2.0
    assert settings_of({"delivery_timeout": 3.0}, environment="remote").delivery_timeout == 3.0
    assert (
        settings_of({"delivery_timeout": 3.0}, environment="remote", delivery_timeout=4.0)
    ).delivery_timeout == 4.0
    assert settings_of(environment="remote").delivery_cancel_mode == "require_ack"


def test_weave_max_pending_wins_over_the_environment() -> None:
    wove.config(environments={"small": {"max_pending": 1}})

    with weave(environment="small", max_pending=10) as w:

        @w.do([1, 2, 3])
        def mapped(item: int) -> int:
            return item

    assert w.result.mapped == [1, 2, 3]
    with pytest.raises(RuntimeError, match="max_pending=1"), weave(environment="small") as w:

        @w.do([1, 2, 3])
        def mapped_again(item: int) -> int:
            return item


def test_environment_max_workers_sizes_the_weaves_thread_pool() -> None:
    wove.config(environments={"default": {"max_workers": 3}})
    with weave() as w:

        @w.do
        async def pool_size() -> int:
            run = active_run.get()
            assert run is not None
            return run.pool._max_workers

    assert w.result.pool_size == 3


# -- executors ------------------------------------------------------------------------------------


class RecordingExecutor(InProcessExecutor):
    def __init__(self) -> None:
        self.starts: list[tuple[str, dict[str, Any]]] = []

    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        self.starts.append((environment_name, dict(run_config)))


def test_executor_instance_is_started_once_and_reused_across_weaves() -> None:
    executor = RecordingExecutor()
    wove.config(environments={"here": {"executor": executor}})

    for value in (1, 2):
        with weave(value=value) as w:

            @w.do(environment="here")
            def task(value: int) -> int:
                return value

        assert w.result.task == value

    assert executor.starts == [("here", {"error_mode": "raise", "max_workers": 64})]


def test_missing_executor_plugin_fails_at_block_end_before_any_task_runs() -> None:
    wove.config(environments={"queue": {"executor": "nomad"}})
    ran: list[str] = []
    with (  # noqa: PT012
        pytest.raises(MissingExecutorPluginError, match="pip install wove-nomad") as caught,
        weave() as w,
    ):

        @w.do
        def local() -> None:
            ran.append("local")

        @w.do(environment="queue")
        def queued() -> None:
            ran.append("queued")

        ran.append("block body finished")

    assert ran == ["block body finished"]
    assert isinstance(caught.value, LookupError)
    assert "environment 'queue' uses executor 'nomad'" in str(caught.value)


def test_local_executor_accepts_no_executor_config_keys() -> None:
    wove.config(environments={"default": {"executor": "local", "executor_config": {"x": 1}}})

    with (
        pytest.raises(UnknownOptionError, match="executor_config of environment 'default'"),
        weave() as w,
    ):

        @w.do
        def task() -> None:
            pass


def test_environment_max_workers_bounds_sync_tasks_routed_there() -> None:
    import threading
    import time

    wove.config(environments={"bulk": {"executor": "local", "max_workers": 2}})
    lock = threading.Lock()
    running = 0
    peak = 0

    with weave() as w:

        @w.do(range(8), environment="bulk")
        def mapped(item: int) -> int:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.01)  # simulated work, not synchronisation
            with lock:
                running -= 1
            return item

    assert w.result.mapped == list(range(8))
    assert peak <= 2
