"""The wire: command and event frames, the normalized error, run ids, and the codecs.

Frames are msgspec Structs tagged by ``type``. Values that cross the boundary (the callable,
its arguments, a result, an exception) travel as dispatch-serializer bytes inside a frame, and
are only unpickled after the frame's signature has been verified (see ``_security``).

Commands (weave -> worker): ``run_task``, ``cancel_task``, ``shutdown``, and ``payload_ref``
(where a backend worker fetches a ``run_task`` too large for its backend to carry).
Events (worker -> weave): ``task_started``, ``task_result``, ``task_error``, ``task_cancelled``,
``heartbeat``, ``log``.
"""

from __future__ import annotations

import functools
import itertools
import re
import secrets
from typing import Any, Final, Literal

import msgspec

from ._errors import InvalidOptionError

__all__ = [
    "CancelTask",
    "Command",
    "Delivery",
    "Event",
    "Frame",
    "Heartbeat",
    "LogRecord",
    "NormalizedError",
    "PayloadRef",
    "RunTask",
    "Shutdown",
    "TaskCancelled",
    "TaskError",
    "TaskResult",
    "TaskStarted",
    "TERMINAL_EVENTS",
    "check_run_id",
    "decode_json",
    "decode_msgpack",
    "encode_json",
    "encode_msgpack",
    "new_run_id",
]

RUN_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")


_run_prefix: Final = secrets.token_hex(6)
_run_counter: Final = itertools.count()


@functools.lru_cache(maxsize=1024)
def _run_stem(task_name: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", task_name.lower()).strip("-")[:36]
    return stem or "run"


def new_run_id(task_name: str = "") -> str:
    """Return a fresh run id, valid as an RQ job id, a Kubernetes name, a Batch or Slurm job name.

    The task name is folded in (lower-cased, other characters replaced by ``-``) to make
    backend dashboards readable; a random per-process prefix and a counter make it unique
    (at most 63 characters, lower-case, starting and ending with a letter or digit).
    """
    return f"{_run_stem(task_name)}-{_run_prefix}{next(_run_counter):x}"


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it uses only ``[A-Za-z0-9_-]`` (1-128 characters), else raise."""
    if not isinstance(run_id, str) or RUN_ID_PATTERN.fullmatch(run_id) is None:
        raise InvalidOptionError(
            f"run id {run_id!r} is not valid: use 1-128 characters from [A-Za-z0-9_-]"
        )
    return run_id


class NormalizedError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A task failure described without pickle, so it survives any boundary.

    Attributes:
        kind: the exception's qualified type name, e.g. ``"builtins.ValueError"``.
        message: ``str(exception)``.
        traceback: the traceback formatted where the exception was raised.
        retryable: ``False`` when retrying cannot help (the worker could not even load the task).
        source: ``"task"`` (the callable raised), ``"worker"`` (the worker failed around it),
            ``"transport"`` (the frame never reached a worker) or ``"serialization"``.
    """

    kind: str
    message: str
    traceback: str = ""
    retryable: bool = True
    source: str = "task"


class Delivery(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The delivery policy a worker needs to honour for one run."""

    heartbeat_seconds: float | None = None
    timeout: float | None = None
    idempotency_key: str | None = None
    attempt: int = 1
    #: Base URL of the callback server a backend worker reports this run's events to
    #: (``<callback>/runs/<run_id>/events``); ``None`` for workers that answer on their channel.
    callback: str | None = None


class Frame(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    """Base of every frame; ``run_id`` names the run it belongs to."""

    run_id: str


class RunTask(Frame, tag="run_task"):
    """Run ``callable(**args)``; both are dispatch-serializer bytes."""

    task_id: str
    callable: bytes
    args: bytes
    delivery: Delivery = msgspec.field(default_factory=Delivery)
    is_async: bool = False
    timeout: float | None = None


class CancelTask(Frame, tag="cancel_task"):
    """Stop the run if it is still going; the worker answers with ``task_cancelled``."""


class PayloadRef(Frame, tag="payload_ref"):
    """Where a backend worker fetches the run's ``run_task`` line when it was too large for the
    backend to carry: a signed ``GET`` of ``url`` (see ``wove._callback_server``)."""

    url: str


class Shutdown(Frame, tag="shutdown"):
    """Finish or cancel everything and exit."""


class TaskStarted(Frame, tag="task_started"):
    worker: str = ""


class TaskResult(Frame, tag="task_result"):
    result: bytes


class TaskError(Frame, tag="task_error"):
    error: NormalizedError
    #: The pickled exception, when it could be pickled; ``None`` otherwise.
    exception: bytes | None = None


class TaskCancelled(Frame, tag="task_cancelled"):
    pass


class Heartbeat(Frame, tag="heartbeat"):
    pass


class LogRecord(Frame, tag="log"):
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str = ""


Command = RunTask | CancelTask | Shutdown | PayloadRef
Event = TaskStarted | TaskResult | TaskError | TaskCancelled | Heartbeat | LogRecord
AnyFrame = Command | Event

TERMINAL_EVENTS: Final = (TaskResult, TaskError, TaskCancelled)

_json_encoder: Final = msgspec.json.Encoder()
_json_decoder: Final = msgspec.json.Decoder(AnyFrame)
_msgpack_encoder: Final = msgspec.msgpack.Encoder()
_msgpack_decoder: Final = msgspec.msgpack.Decoder(AnyFrame)


def encode_json(frame: Frame) -> bytes:
    """Encode ``frame`` as compact JSON (no newline, so it is one JSON-lines record)."""
    return _json_encoder.encode(frame)


def _checked(frame: Any) -> Any:
    # Only frames about no particular run may leave run_id empty.
    if frame.run_id or not isinstance(frame, (Shutdown, LogRecord)):
        check_run_id(frame.run_id)
    return frame


def decode_json(data: bytes | str) -> Any:
    """Decode one JSON frame, checking its shape and run id.

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not a well-formed frame.
        InvalidOptionError: a run id outside ``[A-Za-z0-9_-]``.
    """
    return _checked(_json_decoder.decode(data))


def encode_msgpack(frame: Frame) -> bytes:
    """Encode ``frame`` as msgpack, for ends that agreed on it."""
    return _msgpack_encoder.encode(frame)


def decode_msgpack(data: bytes) -> Any:
    """Decode one msgpack frame, checking its shape and run id (raises as :func:`decode_json`)."""
    return _checked(_msgpack_decoder.decode(data))
