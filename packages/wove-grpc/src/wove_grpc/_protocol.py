"""The shape of the ``wove.Worker`` gRPC service, shared by the executor and the service.

No ``.proto`` file and no generated code: both methods carry raw bytes, one signed
:class:`~wove.plugins.LineCodec` line per message.

* ``/wove.Worker/Run`` (unary request, streamed responses): the request is a signed
  ``run_task`` line; the responses are that run's signed event lines (``task_started``,
  ``heartbeat``, ``log``, ...) up to and including its terminal event, after which the service
  ends the stream. Cancelling the call cancels the run.
* ``/wove.Worker/Cancel`` (unary): the request is a signed ``cancel_task`` line; the response is
  empty. The run's ``task_cancelled`` event arrives on its ``Run`` stream.

A request that fails verification or decoding ends the call with status ``INVALID_ARGUMENT``
and the reason; a request larger than the service's ``--max-body-bytes`` ends it with
``RESOURCE_EXHAUSTED`` (gRPC's own message-size check).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CANCEL_METHOD",
    "MAX_MESSAGE_BYTES",
    "RUN_METHOD",
    "SERVICE_NAME",
    "is_command_line",
    "is_terminal_line",
]

SERVICE_NAME: Final = "wove.Worker"
RUN_METHOD: Final = f"/{SERVICE_NAME}/Run"
CANCEL_METHOD: Final = f"/{SERVICE_NAME}/Cancel"
#: The largest message either side accepts unless configured otherwise: results of 10+ MB are
#: normal, and gRPC's default of 4 MiB would refuse them.
MAX_MESSAGE_BYTES: Final = 2**30 - 1

_TERMINAL_PREFIXES: Final = (
    b'{"type":"task_result"',
    b'{"type":"task_error"',
    b'{"type":"task_cancelled"',
)


def _body(line: bytes) -> bytes:
    _, tab, body = line.partition(b"\t")
    return body if tab else line


def is_command_line(line: bytes, frame_type: bytes) -> bool:
    """Whether ``line`` *claims* to carry a frame of ``frame_type``: a cheap filter applied
    before verification, never a substitute for it."""
    return _body(line).startswith(b'{"type":"' + frame_type + b'"')


def is_terminal_line(line: bytes) -> bool:
    """Whether an encoded event line carries a terminal event.

    The service uses this on lines it encoded itself, to end a run's stream after its last
    event without decoding the line again (msgspec writes the ``type`` tag first).
    """
    return _body(line).startswith(_TERMINAL_PREFIXES)
