"""The wire (DESIGN §5): frames through both codecs, run ids, and refused shapes."""

from __future__ import annotations

import re

import msgspec
import pytest

from wove._errors import InvalidOptionError
from wove._frames import (
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
    check_run_id,
    decode_json,
    decode_msgpack,
    encode_json,
    encode_msgpack,
    new_run_id,
)

FRAMES: list[Frame] = [
    RunTask(
        run_id="run-1",
        task_id="fetch",
        callable=b"\x80\x05callable\x00\xff",
        args=b"\x80\x05args",
        delivery=Delivery(heartbeat_seconds=1.5, timeout=30.0, idempotency_key="k-1", attempt=2),
        is_async=True,
        timeout=12.5,
    ),
    RunTask(run_id="run-2", task_id="t", callable=b"", args=b""),
    CancelTask(run_id="run-1"),
    Shutdown(run_id=""),
    TaskStarted(run_id="run-1", worker="stdio:123"),
    TaskResult(run_id="run-1", result=b"\x00\x01\x02" * 100),
    TaskError(
        run_id="run-1",
        error=NormalizedError(
            kind="builtins.ValueError",
            message="bad ☃ value",
            traceback="Traceback (most recent call last):\n...",
            retryable=False,
            source="serialization",
        ),
        exception=b"\x80\x05pickled",
    ),
    TaskError(run_id="run-1", error=NormalizedError(kind="x.Y", message="")),
    TaskCancelled(run_id="run-1"),
    Heartbeat(run_id="run-1"),
    LogRecord(run_id="", level="error", message="frame refused"),
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda frame: type(frame).__name__)
def test_frame_round_trips_through_json(frame: Frame) -> None:
    encoded = encode_json(frame)
    assert b"\n" not in encoded  # one JSON-lines record
    decoded = decode_json(encoded)
    assert type(decoded) is type(frame)
    assert decoded == frame
    assert decode_json(encoded.decode()) == frame


@pytest.mark.parametrize("frame", FRAMES, ids=lambda frame: type(frame).__name__)
def test_frame_round_trips_through_msgpack(frame: Frame) -> None:
    decoded = decode_msgpack(encode_msgpack(frame))
    assert type(decoded) is type(frame)
    assert decoded == frame


def test_frames_are_tagged_by_type() -> None:
    assert encode_json(CancelTask(run_id="r")) == b'{"type":"cancel_task","run_id":"r"}'
    tags = {msgspec.json.decode(encode_json(frame))["type"] for frame in FRAMES}
    assert tags == {
        "run_task",
        "cancel_task",
        "shutdown",
        "task_started",
        "task_result",
        "task_error",
        "task_cancelled",
        "heartbeat",
        "log",
    }


def test_unknown_type_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'run_anything'"):
        decode_json(b'{"type":"run_anything","run_id":"r"}')
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'run_anything'"):
        decode_msgpack(msgspec.msgpack.encode({"type": "run_anything", "run_id": "r"}))


def test_missing_type_or_field_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="type"):
        decode_json(b'{"run_id":"r"}')
    with pytest.raises(msgspec.ValidationError, match="callable"):
        decode_json(b'{"type":"run_task","run_id":"r","task_id":"t","args":""}')


def test_decoding_checks_the_run_id() -> None:
    with pytest.raises(InvalidOptionError, match="run id 'a/b' is not valid"):
        decode_json(b'{"type":"cancel_task","run_id":"a/b"}')
    with pytest.raises(InvalidOptionError, match="is not valid"):
        decode_msgpack(encode_msgpack(CancelTask(run_id="has space")))


@pytest.mark.parametrize("run_id", ["a", "run-1", "A_b-9", "x" * 128])
def test_valid_run_ids_are_accepted(run_id: str) -> None:
    assert check_run_id(run_id) == run_id


@pytest.mark.parametrize(
    "run_id", ["", "a b", "a/b", "a.b", "a:b", "café", "x" * 129, "line\n", None, 7]
)
def test_bad_run_ids_are_refused(run_id: object) -> None:
    with pytest.raises(InvalidOptionError, match=r"use 1-128 characters from \[A-Za-z0-9_-\]"):
        check_run_id(run_id)  # type: ignore[arg-type]


def test_new_run_id_shape() -> None:
    assert re.fullmatch(r"fetch-user-data-[0-9a-f]{13,}", new_run_id("Fetch User.Data!"))
    assert re.fullmatch(r"run-[0-9a-f]{13,}", new_run_id())
    assert re.fullmatch(r"run-[0-9a-f]{13,}", new_run_id("___"))
    long = new_run_id("n" * 500)
    assert len(long) <= 63  # a Kubernetes name
    ids = {new_run_id("same") for _ in range(1000)}
    assert len(ids) == 1000
    for run_id in ids:
        assert check_run_id(run_id) == run_id
