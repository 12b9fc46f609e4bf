"""Signed envelopes (DESIGN §5): what passes, what is refused and why, where secrets come from."""

from __future__ import annotations

import json

import pytest

from wove._errors import FrameRejectedError, InvalidOptionError, UnknownOptionError
from wove._frames import CancelTask, TaskResult
from wove._security import (
    DEFAULT_CLOCK_SKEW_SECONDS,
    LineCodec,
    Security,
    is_loopback_host,
    security_from_config,
)

SECRET = b"unit-test-secret-0123456789abcdef"
BODY = b'{"type":"cancel_task","run_id":"r1"}'


class Clock:
    """A settable clock for the ``clock=`` argument."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_sign_then_verify() -> None:
    security = Security(SECRET)
    header = security.sign(BODY)
    security.verify(header, BODY)
    security.verify(security.sign(BODY).decode(), BODY)  # a str header is fine too
    fields = json.loads(header)
    assert set(fields) == {"k", "t", "n", "s"}
    assert fields["k"] == "default"


def test_two_ends_sharing_a_secret_agree() -> None:
    sender, receiver = Security(SECRET, key_id="k1"), Security(SECRET.decode(), key_id="k1")
    receiver.verify(sender.sign(BODY), BODY)


def test_every_signature_is_different() -> None:
    security = Security(SECRET)
    assert security.sign(BODY) != security.sign(BODY)


def test_tampered_body_is_refused() -> None:
    security = Security(SECRET)
    header = security.sign(BODY)
    with pytest.raises(FrameRejectedError, match=r"bad signature \(.*the body was altered\)"):
        security.verify(header, BODY.replace(b"r1", b"r2"))


def test_wrong_secret_is_refused() -> None:
    header = Security(b"another-secret-0123456789abcdef").sign(BODY)
    with pytest.raises(FrameRejectedError, match=r"bad signature \(wrong secret"):
        Security(SECRET).verify(header, BODY)


def test_wrong_key_id_is_refused() -> None:
    header = Security(SECRET, key_id="old").sign(BODY)
    with pytest.raises(FrameRejectedError, match="signed with key 'old', expected 'new'"):
        Security(SECRET, key_id="new").verify(header, BODY)


def test_tampered_mac_is_refused() -> None:
    security = Security(SECRET)
    fields = json.loads(security.sign(BODY))
    fields["s"] = ("0" if fields["s"][0] != "0" else "1") + fields["s"][1:]
    with pytest.raises(FrameRejectedError, match="bad signature"):
        security.verify(json.dumps(fields), BODY)


@pytest.mark.parametrize(
    "offset", [-DEFAULT_CLOCK_SKEW_SECONDS - 1, DEFAULT_CLOCK_SKEW_SECONDS + 1]
)
def test_timestamp_outside_the_clock_skew_is_refused(offset: float) -> None:
    clock = Clock()
    sender = Security(SECRET, clock=clock)
    receiver = Security(SECRET, clock=lambda: clock.now - offset)
    with pytest.raises(FrameRejectedError, match="expired, or clocks out of sync"):
        receiver.verify(sender.sign(BODY), BODY)


def test_timestamp_inside_the_clock_skew_is_accepted() -> None:
    clock = Clock()
    header = Security(SECRET, clock=clock).sign(BODY)
    Security(SECRET, clock=lambda: clock.now + 299).verify(header, BODY)


def test_clock_skew_is_configurable() -> None:
    clock = Clock()
    header = Security(SECRET, clock=clock).sign(BODY)
    strict = Security(SECRET, clock_skew_seconds=5, clock=lambda: clock.now + 6)
    with pytest.raises(FrameRejectedError, match="allowed 5s"):
        strict.verify(header, BODY)


def test_replayed_nonce_is_refused() -> None:
    security = Security(SECRET)
    header = security.sign(BODY)
    security.verify(header, BODY)
    with pytest.raises(FrameRejectedError, match="replayed"):
        security.verify(header, BODY)


def test_replay_cache_forgets_nonces_once_their_timestamps_expire() -> None:
    clock = Clock()
    security = Security(SECRET, clock_skew_seconds=10, clock=clock)
    header = security.sign(BODY)
    security.verify(header, BODY)
    clock.now += 25  # past 2x the window: the nonce is evicted, the timestamp now refuses it
    with pytest.raises(FrameRejectedError, match="expired"):
        security.verify(header, BODY)


def test_forged_macs_do_not_enter_the_replay_cache() -> None:
    security = Security(SECRET)
    header = security.sign(BODY)
    forged = json.loads(header)
    forged["s"] = "0" * 64
    for _ in range(3):
        with pytest.raises(FrameRejectedError, match="bad signature"):
            security.verify(json.dumps(forged), BODY)
    security.verify(header, BODY)  # the genuine frame with the same nonce still passes once


@pytest.mark.parametrize(
    "header",
    [
        b"not json",
        b"[1, 2]",
        b'{"k":"default"}',
        b'{"k":1,"t":"1","n":"n","s":"s"}',
        b'{"k":"default","t":"soon","n":"n","s":"s"}',
    ],
    ids=["not-json", "array", "missing-fields", "wrong-type", "bad-timestamp"],
)
def test_malformed_header_is_refused(header: bytes) -> None:
    with pytest.raises(FrameRejectedError, match="signature header is malformed"):
        Security(SECRET).verify(header, BODY)


@pytest.mark.parametrize(
    ("field", "match"), [("k", "signed with key 'clé'"), ("s", "bad signature")]
)
def test_non_ascii_header_fields_are_refused_not_crashed(field: str, match: str) -> None:
    security = Security(SECRET)
    header = json.loads(security.sign(BODY))
    header[field] = "clé"
    with pytest.raises(FrameRejectedError, match=match):
        security.verify(json.dumps(header, ensure_ascii=False), BODY)


@pytest.mark.parametrize("header", [None, b"", ""])
def test_unsigned_frame_to_a_signed_endpoint_is_refused(header: bytes | str | None) -> None:
    with pytest.raises(FrameRejectedError, match="unsigned frame refused"):
        Security(SECRET).verify(header, BODY)


def test_short_secret_and_bad_key_id_are_refused() -> None:
    with pytest.raises(InvalidOptionError, match="at least 16 bytes"):
        Security(b"short")
    with pytest.raises(InvalidOptionError, match="non-empty line"):
        Security(SECRET, key_id="")


def test_ephemeral_security_hands_its_secret_to_a_child() -> None:
    parent = Security.ephemeral()
    child = Security(bytes.fromhex(parent.secret_hex), key_id="ephemeral")
    child.verify(parent.sign(BODY), BODY)


# -- LineCodec -----------------------------------------------------------------------------------


def test_line_codec_signed_round_trip() -> None:
    sender, receiver = LineCodec(Security(SECRET)), LineCodec(Security(SECRET))
    frame = TaskResult(run_id="r1", result=b"\x00tab\there")
    line = sender.encode(frame)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert line.count(b"\t") == 1  # tabs inside values are escaped in the JSON body
    assert receiver.decode(line) == frame


def test_line_codec_unsigned_round_trip() -> None:
    codec = LineCodec(None)
    frame = CancelTask(run_id="r1")
    assert codec.encode(frame) == b'{"type":"cancel_task","run_id":"r1"}\n'
    assert codec.decode(codec.encode(frame)) == frame


def test_line_codec_checks_the_signature_before_decoding() -> None:
    line = LineCodec(Security(b"another-secret-0123456789abcdef")).encode(CancelTask(run_id="r"))
    header = line.partition(b"\t")[0]
    # The body is not even JSON: a codec that decoded first would report that instead.
    with pytest.raises(FrameRejectedError, match="bad signature"):
        LineCodec(Security(SECRET)).decode(header + b"\t{{{ not json\n")


def test_line_codec_refuses_a_malformed_frame_after_a_good_signature() -> None:
    security = Security(SECRET)
    body = b'{"type":"nonsense","run_id":"r"}'
    with pytest.raises(FrameRejectedError, match="malformed frame refused"):
        LineCodec(Security(SECRET)).decode(security.sign(body) + b"\t" + body + b"\n")


def test_unsigned_codec_refuses_a_signed_line() -> None:
    line = LineCodec(Security(SECRET)).encode(CancelTask(run_id="r"))
    with pytest.raises(FrameRejectedError, match="no security configured"):
        LineCodec(None).decode(line)


def test_signed_codec_refuses_an_unsigned_line() -> None:
    with pytest.raises(FrameRejectedError, match="unsigned frame refused"):
        LineCodec(Security(SECRET)).decode(LineCodec(None).encode(CancelTask(run_id="r")))


# -- security_from_config -----------------------------------------------------------------------


def test_security_from_env_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WOVE_TEST_SECRET", SECRET.decode())
    security = security_from_config(
        "env:WOVE_TEST_SECRET", where="environment 'gpu'", loopback=False
    )
    assert security is not None
    Security(SECRET).verify(security.sign(BODY), BODY)


def test_security_from_unset_env_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WOVE_TEST_SECRET", raising=False)
    with pytest.raises(InvalidOptionError, match="'WOVE_TEST_SECRET' is not set"):
        security_from_config("env:WOVE_TEST_SECRET", where="environment 'gpu'", loopback=False)


@pytest.mark.parametrize("value", ["env:", "WOVE_TEST_SECRET", 42])
def test_security_value_of_the_wrong_form(value: object) -> None:
    with pytest.raises(InvalidOptionError, match="security must be 'env:NAME', a dict or None"):
        security_from_config(value, where="environment 'gpu'", loopback=True)


def test_security_from_dict_with_secret() -> None:
    security = security_from_config(
        {"secret": SECRET.decode(), "key": "k2", "clock_skew_seconds": 30},
        where="environment 'gpu'",
        loopback=False,
    )
    assert security is not None
    assert security.key_id == "k2"
    assert security.clock_skew_seconds == 30.0
    Security(SECRET, key_id="k2").verify(security.sign(BODY), BODY)


def test_security_from_dict_with_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WOVE_TEST_SECRET", SECRET.decode())
    security = security_from_config(
        {"secret_env": "WOVE_TEST_SECRET"}, where="environment 'gpu'", loopback=False
    )
    assert security is not None
    assert security.key_id == "default"
    Security(SECRET).verify(security.sign(BODY), BODY)


@pytest.mark.parametrize("value", [{}, {"secret": "x" * 20, "secret_env": "X"}])
def test_security_dict_needs_exactly_one_secret(value: dict[str, str]) -> None:
    with pytest.raises(InvalidOptionError, match="exactly one of secret, secret_env"):
        security_from_config(value, where="environment 'gpu'", loopback=False)


def test_security_dict_with_an_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(
        UnknownOptionError, match=r"unknown option 'secrte'\. Did you mean 'secret'\?"
    ):
        security_from_config({"secrte": "x" * 20}, where="environment 'gpu'", loopback=False)


def test_security_instance_is_used_as_is() -> None:
    security = Security(SECRET)
    assert security_from_config(security, where="environment 'gpu'", loopback=False) is security


def test_no_security_is_fine_on_loopback() -> None:
    assert security_from_config(None, where="environment 'local'", loopback=True) is None


def test_no_security_off_loopback_needs_insecure() -> None:
    with pytest.raises(ValueError, match=r"environment 'remote'.*insecure=True"):
        security_from_config(None, where="environment 'remote'", loopback=False)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected
