"""The SDK for executor plugins: hooks and registration, the executor contract, the wire, and
the security and value serialization a process or network executor needs.

A plugin is a module named by an entry point in the ``wove.executors`` group, under its executor
name. Importing it must be cheap: it holds ``@hookimpl`` functions and metadata, and imports its
backend library only inside the ``load`` callable it registers. Each hook receives a ``register``
callback rather than returning a list, so Wove owns duplicate checks and ordering.

The SDK is five modules, each name in exactly one of them: this one, :mod:`wove.backends` (the
backend adapter base), :mod:`wove.network` (network clients and worker services),
:mod:`wove.worker` (the worker side) and :mod:`wove.testing` (the kits). Every name in their
``__all__`` follows semantic versioning: it changes incompatibly only in a major release, and a
name that is going away keeps working, with a ``DeprecationWarning`` naming the version and its
replacement, for at least one minor release. Modules named ``wove._*`` are private and may change
in any release. See the "Plugin SDK" page of the documentation.

Example:
    ``wove_celery/plugin.py``::

        from wove import Executor
        from wove.plugins import RegisterExecutor, hookimpl

        def _load_adapter() -> type[Executor]:
            from ._adapter import CeleryAdapter
            return CeleryAdapter

        @hookimpl
        def register_executors(register: RegisterExecutor) -> None:
            register(name="celery", kind="backend", requires=("celery",), load=_load_adapter)
"""

from __future__ import annotations

from ._config import EnvironmentConfig
from ._delivery import submit_to_dispatch_loop
from ._errors import FrameRejectedError
from ._executor import EXECUTOR_KINDS, Executor, ExecutorKind, InProcessExecutor
from ._frames import (
    TERMINAL_EVENTS,
    CancelTask,
    Delivery,
    Frame,
    Heartbeat,
    LogRecord,
    NormalizedError,
    RunTask,
    Shutdown,
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskStarted,
    decode_json,
    decode_msgpack,
    encode_json,
    encode_msgpack,
    new_run_id,
)
from ._hooks import (
    PROJECT_NAME,
    RegisterCommand,
    RegisterDiagnostic,
    RegisterExecutor,
    WoveHookSpecs,
    hookimpl,
    hookspec,
)
from ._registry import PluginCommand, PluginDiagnostic, PluginInfo, Registry, get_registry
from ._security import (
    LineCodec,
    Security,
    is_loopback_host,
    secret_variable,
    security_from_config,
)
from ._serializer import dumps, loads
from ._settings import (
    ExecutorSettings,
    FilePath,
    Seconds,
    SecuritySetting,
    SettingField,
    config_location,
    given_options,
    parse_duration,
    setting,
    setting_fields,
    setting_keys,
    validate_executor_config,
)

__all__ = [
    # hooks
    "PROJECT_NAME",
    "hookspec",
    "hookimpl",
    "RegisterExecutor",
    "RegisterCommand",
    "RegisterDiagnostic",
    "WoveHookSpecs",
    # discovery: what the installed plugins offer
    "PluginCommand",
    "PluginDiagnostic",
    "PluginInfo",
    "Registry",
    "get_registry",
    # what an executor implements, is configured with, and runs on
    "EXECUTOR_KINDS",
    "EnvironmentConfig",
    "Executor",
    "ExecutorKind",
    "InProcessExecutor",
    "submit_to_dispatch_loop",
    # an executor's ``executor_config``: its declaration, checked one way for every executor
    "ExecutorSettings",
    "FilePath",
    "Seconds",
    "SecuritySetting",
    "SettingField",
    "config_location",
    "given_options",
    "parse_duration",
    "setting",
    "setting_fields",
    "setting_keys",
    "validate_executor_config",
    # the wire
    "TERMINAL_EVENTS",
    "CancelTask",
    "Delivery",
    "Frame",
    "Heartbeat",
    "LogRecord",
    "NormalizedError",
    "RunTask",
    "Shutdown",
    "TaskCancelled",
    "TaskError",
    "TaskResult",
    "TaskStarted",
    "decode_json",
    "decode_msgpack",
    "encode_json",
    "encode_msgpack",
    "new_run_id",
    # security
    "FrameRejectedError",
    "LineCodec",
    "Security",
    "is_loopback_host",
    "secret_variable",
    "security_from_config",
    # values across the boundary (the ``dispatch`` serializer)
    "dumps",
    "loads",
]
