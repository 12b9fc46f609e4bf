"""The option schema (``wove._options``): one validator per option, shared by ``@w.do``,
``weave()``, ``merge()`` and ``wove.config()``."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from wove import InvalidOptionError, UnknownOptionError
from wove._options import (
    BUILTIN_SETTINGS,
    CONFIG_KEYS,
    DEFAULT_KEYS,
    DELIVERY_OPTIONS,
    ENVIRONMENT_KEYS,
    MAPPED_ONLY_OPTIONS,
    TASK_OPTIONS,
    TASK_SETTING_FIELDS,
    WEAVE_OPTIONS,
    TaskSettings,
    check_names,
    suggest,
    validate_option,
    validate_options,
)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("retries", 0, 0),
        ("retries", 3, 3),
        ("retry_backoff", 0, 0.0),
        ("retry_backoff", 1, 1.0),
        ("timeout", 0.5, 0.5),
        ("timeout", 2, 2.0),
        ("workers", 1, 1),
        ("limit_per_minute", 30, 30.0),
        ("max_workers", 8, 8),
        ("max_pending", 100, 100),
        ("error_mode", "return", "return"),
        ("background", True, True),
        ("fork", False, False),
        ("debug", True, True),
        ("environment", "gpu", "gpu"),
        ("delivery_cancel_mode", "require_ack", "require_ack"),
        ("delivery_orphan_policy", "requeue", "requeue"),
        ("delivery_idempotency_key", ("any", "value"), ("any", "value")),
        ("executor_config", {"a": 1}, {"a": 1}),
    ],
)
def test_valid_values_are_normalized(name: str, value: Any, expected: Any) -> None:
    normalized = validate_option(name, value)

    assert normalized == expected
    assert type(normalized) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("retries", -1, "retries must be an integer >= 0, got -1"),
        ("retries", 1.5, "retries must be an integer >= 0, got 1.5"),
        ("retries", True, "retries must be an integer >= 0, got True"),
        ("retry_backoff", -0.1, "retry_backoff must be a number >= 0"),
        ("timeout", 0, "timeout must be a number of seconds > 0, got 0"),
        ("timeout", "5", "timeout must be a number of seconds > 0, got '5'"),
        ("workers", 0, "workers must be an integer >= 1, got 0"),
        ("limit_per_minute", -5, "limit_per_minute must be a number of starts per minute > 0"),
        ("max_workers", False, "max_workers must be an integer >= 1, got False"),
        ("error_mode", "ignore", "error_mode must be one of 'raise', 'return', got 'ignore'"),
        ("background", "yes", "background must be True or False, got 'yes'"),
        ("environment", "", "environment must be a non-empty string, got ''"),
        ("on_done", 3, "on_done must be a callable, got 3"),
        ("delivery_cancel_mode", "later", "delivery_cancel_mode must be one of 'best_effort'"),
        ("delivery_orphan_policy", "drop", "'fail', 'cancel', 'requeue', 'detach'"),
        ("executor_config", ["a"], "executor_config must be a dict"),
    ],
)
def test_invalid_values_name_the_option_and_show_the_value(
    name: str, value: Any, message: str
) -> None:
    with pytest.raises(InvalidOptionError, match=re.escape(message)) as caught:
        validate_option(name, value)

    assert isinstance(caught.value, ValueError)


def test_none_always_means_not_set() -> None:
    assert validate_option("retries", None) is None
    assert validate_options({"retries": None, "timeout": 1}, TASK_OPTIONS, "here") == {
        "timeout": 1.0
    }


def test_suggest_finds_a_close_name_or_nothing() -> None:
    assert suggest("retires", TASK_OPTIONS) == " Did you mean 'retries'?"
    assert suggest("zzz", TASK_OPTIONS) == ""


def test_check_names_reports_where_suggests_and_lists_known_names() -> None:
    with pytest.raises(UnknownOptionError, match="task 'x' got an unknown option 'timout'") as c:
        check_names(["timeout", "timout"], TASK_OPTIONS, "task 'x'")

    message = str(c.value)
    assert "Did you mean 'timeout'?" in message
    assert "Known options: " in message
    assert isinstance(c.value, TypeError)


def test_validate_options_rejects_unknown_names_before_values() -> None:
    with pytest.raises(UnknownOptionError, match="'colour'"):
        validate_options({"colour": "red", "retries": -1}, TASK_OPTIONS, "task")


def test_option_groups_fit_together() -> None:
    assert MAPPED_ONLY_OPTIONS <= DEFAULT_KEYS
    assert DELIVERY_OPTIONS <= TASK_OPTIONS
    assert DELIVERY_OPTIONS <= WEAVE_OPTIONS
    assert DEFAULT_KEYS <= ENVIRONMENT_KEYS
    assert DEFAULT_KEYS <= CONFIG_KEYS
    assert {"executor", "executor_config"} <= ENVIRONMENT_KEYS - CONFIG_KEYS
    assert set(BUILTIN_SETTINGS) == DEFAULT_KEYS


def test_task_settings_defaults_are_the_builtins() -> None:
    settings = TaskSettings(environment="default")

    for field in TASK_SETTING_FIELDS:
        assert getattr(settings, field) == BUILTIN_SETTINGS[field], field
    assert "environment" not in TASK_SETTING_FIELDS


def test_task_settings_are_frozen() -> None:
    settings = TaskSettings(environment="default")

    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'retries'"):
        settings.retries = 3  # type: ignore[misc]
