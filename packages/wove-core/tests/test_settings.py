"""Typed executor settings: one declaration per executor, checked by one function, with the
same messages for every executor -- unknown keys, required keys, types, ranges, durations,
secrets and nested option dicts."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import pytest

from wove import InvalidOptionError, UnknownOptionError
from wove.backends import BACKEND_CONFIG_KEYS, BackendAdapter, BackendExecutor, BackendSettings
from wove.network import NETWORK_CONFIG_KEYS, NetworkExecutorSettings
from wove.plugins import (
    Executor,
    ExecutorSettings,
    FilePath,
    Seconds,
    Security,
    SecuritySetting,
    config_location,
    given_options,
    parse_duration,
    secret_variable,
    setting,
    setting_fields,
    setting_keys,
    validate_executor_config,
)

SECRET = secrets.token_hex(16)


class Batch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    size: Annotated[int | None, setting("items per batch", ge=1)] = None
    linger: Annotated[Seconds | None, setting("how long a batch waits to fill", ge=0)] = (
        msgspec.field(default=None, name="_linger")
    )


class PigeonSettings(ExecutorSettings, kw_only=True):
    loft: Annotated[str, setting("the loft the birds fly from", min_length=1)]
    birds: Annotated[int, setting("pigeons in the air at once", ge=1)] = 4
    patience: Annotated[Seconds, setting("how long to wait for a bird", gt=0)] = 30.0
    grace: Annotated[Seconds | None, setting("extra time; None waits forever", ge=0)] = 5.0
    mode: Annotated[Literal["fast", "safe"], setting("how birds fly")] = "safe"
    security: Annotated[SecuritySetting | None, setting("signs the letters")] = None
    log_file: Annotated[FilePath | None, setting("where the birds' log goes")] = None
    labels: Annotated[
        dict[str, str],
        setting("labels on every bird", reserved={"run-id": "Wove sets it on every bird"}),
    ] = {}
    batch: Annotated[
        Batch, setting("how letters are grouped", reserved={"_id": "Wove names each batch"})
    ] = msgspec.field(default_factory=Batch)
    options: Annotated[
        dict[str, Any], setting("passed to the loft client", keys={"priority", "retries"})
    ] = {}
    on_land: Annotated[Callable[..., Any] | None, setting("called as each bird lands")] = None
    route: Annotated[
        str,
        setting("the flight path", expect="a route such as 'north/2'", pattern=r"^\w+/\d+$"),
    ] = "home/1"


def check(**config: Any) -> PigeonSettings:
    return validate_executor_config(PigeonSettings, config, environment="mail", executor="pigeon")


WHERE = "executor_config of environment 'mail' (executor 'pigeon')"


def test_settings_hold_every_key_with_its_default() -> None:
    settings = check(loft="roof")

    assert settings == PigeonSettings(loft="roof")
    assert (settings.birds, settings.patience, settings.mode, settings.labels) == (
        4,
        30.0,
        "safe",
        {},
    )


def test_an_unknown_key_is_refused_with_a_hint_and_the_known_keys() -> None:
    with pytest.raises(UnknownOptionError) as caught:
        check(loft="roof", bird=2)

    message = str(caught.value)
    assert message.startswith(f"{WHERE} got an unknown option 'bird'. Did you mean 'birds'?")
    assert "Known options: batch, birds, grace, labels, loft, log_file, mode," in message


def test_a_missing_required_key_says_what_it_is_for() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        check()

    assert str(caught.value) == (
        f"{WHERE}: loft is required: the loft the birds fly from; loft must be a non-empty string"
    )


def test_a_required_key_of_the_wrong_type_shows_the_value() -> None:
    with pytest.raises(InvalidOptionError, match=r"loft is required: .*, got 3$"):
        check(loft=3)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"birds": "4"}, "birds must be a positive integer, got '4'"),
        ({"birds": True}, "birds must be a positive integer, got True"),
        ({"birds": 0}, "birds must be a positive integer, got 0"),
        ({"mode": "slow"}, "mode must be one of 'fast', 'safe', got 'slow'"),
        ({"on_land": "print"}, "on_land must be a callable, got 'print'"),
        ({"route": "north"}, "route must be a route such as 'north/2', got 'north'"),
        ({"labels": {"a": 1}}, "labels must be a dict of strings, got {'a': 1}"),
        ({"log_file": 7}, "log_file must be a path, got 7"),
        (
            {"grace": -1},
            "grace must be a datetime.timedelta or a number of seconds >= 0 or None, got -1",
        ),
    ],
)
def test_a_wrong_type_or_range_names_the_key_environment_and_executor(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        check(loft="roof", **config)

    assert str(caught.value) == f"{WHERE}: {message}"


def test_none_is_offered_only_where_it_differs_from_leaving_the_key_out() -> None:
    fields = {field.key: field for field in setting_fields(PigeonSettings)}

    assert fields["grace"].expect.endswith(" or None")  # default 5: None waits forever
    assert fields["log_file"].expect == "a path"  # default None: the same as not set


def test_none_means_not_set_unless_the_type_admits_none() -> None:
    settings = check(loft="roof", birds=None, grace=None)

    assert settings.birds == 4
    assert settings.grace is None


def test_durations_are_seconds_or_a_timedelta() -> None:
    settings = check(loft="roof", patience=datetime.timedelta(minutes=2), grace=0)

    assert settings.patience == 120.0
    assert isinstance(settings.grace, float)
    assert settings.grace == 0.0


@pytest.mark.parametrize("value", ["30s", True, 0, datetime.timedelta(0)])
def test_a_duration_out_of_range_or_of_another_type_is_refused(value: object) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        check(loft="roof", patience=value)

    assert str(caught.value) == (
        f"{WHERE}: patience must be a datetime.timedelta or a positive number of seconds, "
        f"got {value!r}"
    )


def test_parse_duration_reads_a_duration_inside_a_dict_the_same_way() -> None:
    assert parse_duration(datetime.timedelta(seconds=1.5), key="x['t']", where=WHERE) == 1.5
    assert parse_duration(3, key="x['t']", where=WHERE, gt=0) == 3.0
    with pytest.raises(InvalidOptionError, match=r"x\['t'\] must be a datetime.timedelta or a"):
        parse_duration("3", key="x['t']", where=WHERE)
    with pytest.raises(InvalidOptionError, match=r"a positive number of seconds, got -1$"):
        parse_duration(-1, key="x['t']", where=WHERE, gt=0)


def test_a_secret_is_read_from_the_variable_env_name_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIGEON_SECRET", SECRET)

    security = check(loft="roof", security="env:PIGEON_SECRET").security

    assert isinstance(security, Security)
    Security(SECRET).verify(security.sign(b"letter"), b"letter")


def test_a_secret_dict_and_a_security_object_are_read_too() -> None:
    from_dict = check(loft="roof", security={"secret": SECRET, "key": "k2"}).security
    given = Security(SECRET)

    assert from_dict is not None
    assert from_dict.key_id == "k2"
    assert check(loft="roof", security=given).security is given


def test_an_unset_secret_variable_says_which_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PIGEON_SECRET", raising=False)

    with pytest.raises(InvalidOptionError) as caught:
        check(loft="roof", security="env:PIGEON_SECRET")

    message = str(caught.value)
    assert message.startswith(f"{WHERE}: security secret variable 'PIGEON_SECRET' is not set")
    assert "export PIGEON_SECRET=" in message


@pytest.mark.parametrize("value", ["hunter2-hunter2-hunter2", "env:", 42])
def test_a_secret_of_another_form_is_refused(value: object) -> None:
    with pytest.raises(InvalidOptionError, match="security must be 'env:NAME', a dict or None"):
        check(loft="roof", security=value)


def test_secret_variable_is_the_one_reading_of_env_name() -> None:
    assert secret_variable("env:WOVE_SECRET") == "WOVE_SECRET"
    assert secret_variable("env:") is None
    assert secret_variable("WOVE_SECRET") is None
    assert secret_variable({"secret_env": "X"}) is None


def test_a_nested_declaration_is_checked_key_by_key() -> None:
    settings = check(loft="roof", batch={"size": 3, "_linger": datetime.timedelta(seconds=2)})

    assert settings.batch == Batch(size=3, linger=2.0)
    with pytest.raises(InvalidOptionError) as caught:
        check(loft="roof", batch={"size": 0})
    assert str(caught.value) == (f"{WHERE}: batch['size'] must be a positive integer, got 0")


def test_given_options_are_the_nested_keys_set_by_their_config_names() -> None:
    batch = check(loft="roof", batch={"_linger": 2}).batch

    assert given_options(batch) == {"_linger": 2.0}


def test_an_unknown_nested_key_lists_what_it_takes_with_a_hint() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        check(loft="roof", batch={"_lingr": 1})

    assert str(caught.value) == (
        f"{WHERE}: batch does not take '_lingr'; it takes _linger, size. Did you mean '_linger'?"
    )


def test_a_reserved_key_says_why_before_anything_else() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        check(loft="roof", batch={"_id": "x"})
    assert str(caught.value) == f"{WHERE}: batch may not set _id: Wove names each batch"

    with pytest.raises(InvalidOptionError, match="labels may not set run-id: Wove sets it"):
        check(loft="roof", labels={"run-id": "x"})


def test_a_dict_with_a_fixed_set_of_keys_refuses_others() -> None:
    assert check(loft="roof", options={"priority": 5}).options == {"priority": 5}
    with pytest.raises(InvalidOptionError) as caught:
        check(loft="roof", options={"priorty": 5})

    assert str(caught.value) == (
        f"{WHERE}: options does not take 'priorty'; it takes priority, retries. "
        "Did you mean 'priority'?"
    )


def test_extra_keys_are_accepted_and_left_to_the_caller() -> None:
    settings = validate_executor_config(
        PigeonSettings,
        {"loft": "roof", "legacy": 1},
        environment="mail",
        executor="pigeon",
        extra_keys={"legacy"},
    )

    assert settings.loft == "roof"


def test_setting_keys_and_fields_come_from_the_declaration() -> None:
    fields = {field.key: field for field in setting_fields(PigeonSettings)}

    assert setting_keys(PigeonSettings) == set(fields)
    assert "_linger" in setting_keys(Batch)
    assert fields["loft"].required
    assert fields["loft"].default == "**required**"
    assert fields["birds"].default == "`4`"
    assert fields["route"].default == '`"home/1"`'
    assert fields["grace"].expect == "a datetime.timedelta or a number of seconds >= 0 or None"
    assert fields["patience"].description == "how long to wait for a bird"


def test_own_keys_come_before_the_shared_ones() -> None:
    class CarrierSettings(BackendSettings, kw_only=True):
        loft: Annotated[str, setting("the loft")] = "roof"
        max_inline_payload_bytes: Annotated[
            int, setting("a letter's largest size", ge=0, le=1024)
        ] = 512

    fields = setting_fields(CarrierSettings)
    keys = [field.key for field in fields]

    assert keys[0] == "loft"
    assert keys[1:] == [field.key for field in setting_fields(BackendSettings)]
    shared = {field.key for field in fields if field.declared_by is BackendSettings}
    assert shared == BACKEND_CONFIG_KEYS
    inline = fields[keys.index("max_inline_payload_bytes")]
    assert inline.default == "`512`"
    assert inline.expect == "an integer from 0 to 1024"


def test_config_location_is_how_every_message_begins() -> None:
    assert config_location("mail", "pigeon") == WHERE


def test_an_executor_takes_its_keys_from_its_declaration() -> None:
    class PigeonExecutor(Executor):
        settings_class: ClassVar[type[ExecutorSettings] | None] = PigeonSettings

        async def start(self, environment_name: str, environment_config: Any, run_config: Any):
            pass

        async def send(self, frame: Any) -> None:
            pass

        async def recv(self) -> Any:
            return None

        async def stop(self) -> None:
            pass

    assert PigeonExecutor.config_keys == setting_keys(PigeonSettings)


def test_a_backend_adapter_declares_its_own_keys_beside_the_shared_ones() -> None:
    class CarrierSettings(BackendSettings, kw_only=True):
        loft: Annotated[str, setting("the loft")] = "roof"

    class CarrierAdapter(BackendAdapter):
        name = "carrier"
        settings_class = CarrierSettings

        async def start(self, environment_name: str, config: Any) -> None:
            pass

        async def submit(self, job: Any) -> Any:
            pass

        async def cancel(self, job: Any) -> bool:
            return False

        async def status(self, job: Any) -> Any:
            pass

    class CarrierExecutor(BackendExecutor):
        adapter_class = CarrierAdapter

    assert CarrierAdapter.config_keys == {"loft"}
    assert CarrierExecutor.config_keys == BACKEND_CONFIG_KEYS | {"loft"}
    assert CarrierExecutor.settings_class is CarrierSettings


def test_shared_network_keys_are_one_declaration() -> None:
    assert setting_keys(NetworkExecutorSettings) == NETWORK_CONFIG_KEYS
    settings = validate_executor_config(
        NetworkExecutorSettings,
        {"connect_timeout": datetime.timedelta(seconds=3), "ca_file": Path("ca.pem")},
        environment="far",
        executor="http",
    )
    assert settings.connect_timeout == 3.0
    assert settings.ca_file == Path("ca.pem")
    with pytest.raises(InvalidOptionError, match=r"max_in_flight must be a positive integer"):
        validate_executor_config(
            NetworkExecutorSettings, {"max_in_flight": 0}, environment="far", executor="http"
        )


def test_an_unsupported_type_in_a_declaration_is_a_clear_error() -> None:
    class Odd(ExecutorSettings, kw_only=True):
        shape: set[int] = set()

    with pytest.raises(TypeError, match="cannot check values of type"):
        validate_executor_config(Odd, {"shape": {1}}, environment="e", executor="odd")
