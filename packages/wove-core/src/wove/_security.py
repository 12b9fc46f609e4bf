"""Signing and checking frames and payloads, the replay cache, and looking up secrets.

One scheme protects everything that carries pickled data -- requests, responses, backend
payloads and callback events alike: HMAC-SHA256 over the key id, a timestamp, a random nonce
and the SHA-256 digest of the body. The receiver checks the key id, compares the MAC in
constant time, refuses timestamps outside the allowed clock skew, and refuses a nonce it has
already seen inside that window. Only then is the body decoded; pickled values inside it are
unpickled later still.

The signature travels beside the body (a header), never inside it, so the body is never
re-encoded to be checked: on JSON-lines transports a signed record is ``<header> TAB <body>``.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import ipaddress
import itertools
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from ._errors import FrameRejectedError, InvalidOptionError
from ._frames import Frame, decode_json, encode_json
from ._options import check_names

__all__ = [
    "DEFAULT_CLOCK_SKEW_SECONDS",
    "LineCodec",
    "Security",
    "SignatureHeader",
    "is_loopback_host",
    "secret_variable",
    "security_from_config",
    "unset_secret_variables",
]

DEFAULT_CLOCK_SKEW_SECONDS: Final = 300.0
_SCHEME: Final = b"wove-hmac-sha256-v1"
_SECURITY_KEYS: Final = frozenset({"secret", "secret_env", "key", "clock_skew_seconds"})


class SignatureHeader(msgspec.Struct, kw_only=True):
    """What travels beside a signed body."""

    k: str  # key id
    t: str  # timestamp, seconds since the epoch as sent (the exact string is signed)
    n: str  # nonce
    s: str  # hex HMAC


_header_encoder: Final = msgspec.json.Encoder()
_header_decoder: Final = msgspec.json.Decoder(SignatureHeader)


class _ReplayCache:
    """Nonces seen within the clock-skew window; older ones are refused by their timestamp."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def check_and_add(self, nonce: str, now: float) -> bool:
        """Record ``nonce``; return ``False`` if it was already seen."""
        with self._lock:
            seen = self._seen
            while seen:
                expires = next(iter(seen.values()))
                if expires > now:
                    break
                seen.popitem(last=False)
            if nonce in seen:
                return False
            seen[nonce] = now + 2 * self._window
            return True


class Security:
    """A shared secret and the rules for using it.

    Args:
        secret: the shared secret (at least 16 bytes).
        key_id: names the secret, so a receiver can tell which key a sender used.
        clock_skew_seconds: how far a timestamp may be from the receiver's clock.
        clock: seconds since the epoch (replace it only in tests).

    Example:
        >>> security = Security(b"0123456789abcdef-not-a-real-secret")
        >>> header = security.sign(b"body")
        >>> security.verify(header, b"body")
    """

    def __init__(
        self,
        secret: bytes | str,
        *,
        key_id: str = "default",
        clock_skew_seconds: float = DEFAULT_CLOCK_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(raw) < 16:
            raise InvalidOptionError(
                "a security secret must be at least 16 bytes; generate one with "
                "python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        if not key_id or "\n" in key_id:
            raise InvalidOptionError(f"security key id must be a non-empty line, got {key_id!r}")
        self._secret = raw
        self.key_id = key_id
        self.clock_skew_seconds = float(clock_skew_seconds)
        self._clock = clock
        self._replays = _ReplayCache(self.clock_skew_seconds)
        self._keyed = hmac.new(self._secret, _SCHEME, hashlib.sha256)
        self._nonce_prefix = secrets.token_hex(8)
        self._nonce_counter = itertools.count()

    @classmethod
    def ephemeral(cls) -> Security:
        """A fresh random secret, for a channel whose two ends this process creates."""
        return cls(secrets.token_bytes(32), key_id="ephemeral")

    @property
    def secret_hex(self) -> str:
        """The secret, hex-encoded, for handing to a worker this process starts."""
        return self._secret.hex()

    def _mac(self, key_id: str, timestamp: str, nonce: str, body: bytes) -> str:
        mac = self._keyed.copy()  # the key schedule is computed once, not per frame
        mac.update(f"\n{key_id}\n{timestamp}\n{nonce}\n".encode())
        mac.update(hashlib.sha256(body).digest())
        return mac.hexdigest()

    def sign(self, body: bytes) -> bytes:
        """Return the signature header (compact JSON) for ``body``."""
        timestamp = f"{self._clock():.3f}"
        # A random per-instance prefix and a counter: unique without a syscall per frame.
        nonce = f"{self._nonce_prefix}{next(self._nonce_counter):x}"
        mac = self._mac(self.key_id, timestamp, nonce, body)
        return _header_encoder.encode(SignatureHeader(k=self.key_id, t=timestamp, n=nonce, s=mac))

    def verify(self, header: bytes | str | None, body: bytes) -> None:
        """Check ``header`` against ``body``; raise :class:`FrameRejectedError` if it fails.

        The checks run cheapest-first and the MAC is compared in constant time; the nonce is
        recorded only once the MAC is known to be right, so forgeries cannot fill the cache.
        """
        if not header:
            raise FrameRejectedError("unsigned frame refused: this endpoint requires signatures")
        try:
            parsed = _header_decoder.decode(header)
            sent_at = float(parsed.t)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            raise FrameRejectedError("frame refused: its signature header is malformed") from None
        if not hmac.compare_digest(parsed.k.encode(), self.key_id.encode()):
            raise FrameRejectedError(
                f"frame refused: signed with key {parsed.k!r}, expected {self.key_id!r}"
            )
        expected = self._mac(parsed.k, parsed.t, parsed.n, body)
        if not hmac.compare_digest(expected.encode(), parsed.s.encode()):
            raise FrameRejectedError(
                "frame refused: bad signature (wrong secret, or the body was altered)"
            )
        now = self._clock()
        if not math.isfinite(sent_at) or abs(now - sent_at) > self.clock_skew_seconds:
            raise FrameRejectedError(
                f"frame refused: timestamp is {now - sent_at:+.0f}s from this clock, beyond the "
                f"allowed {self.clock_skew_seconds:g}s (expired, or clocks out of sync)"
            )
        if not self._replays.check_and_add(parsed.n, now):
            raise FrameRejectedError("frame refused: replayed (this nonce was already used)")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def security_from_config(value: Any, *, where: str, loopback: bool) -> Security | None:
    """Build the :class:`Security` an environment's ``security`` setting describes.

    Accepts ``"env:NAME"`` (the secret is in environment variable ``NAME``), a dict with
    ``secret`` or ``secret_env`` plus optional ``key`` and ``clock_skew_seconds``, a
    :class:`Security`, or ``None`` -- which is allowed only for loopback endpoints.
    """
    if value is None:
        if not loopback:
            raise ValueError(
                f"{where}: a non-loopback endpoint needs security: set security='env:NAME' "
                "(a shared secret in environment variable NAME), or insecure=True to accept "
                "unsigned traffic"
            )
        return None
    if isinstance(value, Security):
        return value
    if isinstance(value, str):
        variable = secret_variable(value)
        if variable is None:
            raise InvalidOptionError(
                f"{where}: security must be 'env:NAME', a dict or None, got {value!r}"
            )
        return Security(_secret_from_env(variable, where))
    if isinstance(value, Mapping):
        check_names(value, _SECURITY_KEYS, f"{where} security")
        if ("secret" in value) == ("secret_env" in value):
            raise InvalidOptionError(f"{where}: security needs exactly one of secret, secret_env")
        if "secret" in value:
            secret = value["secret"]
            if not isinstance(secret, (str, bytes)) or not secret:
                raise InvalidOptionError(f"{where}: security secret must be a non-empty string")
        else:
            secret = _secret_from_env(str(value["secret_env"]), where)
        return Security(
            secret,
            key_id=str(value.get("key", "default")),
            clock_skew_seconds=float(value.get("clock_skew_seconds", DEFAULT_CLOCK_SKEW_SECONDS)),
        )
    raise InvalidOptionError(f"{where}: security must be 'env:NAME', a dict or None, got {value!r}")


def secret_variable(value: Any) -> str | None:
    """The variable ``NAME`` of a secret given as ``"env:NAME"``; ``None`` for anything else.

    Every setting that names a secret (``security``, a backend's credential) spells it this
    way, so the secret itself never sits in a configuration file.

    Example:
        >>> secret_variable("env:WOVE_SECRET")
        'WOVE_SECRET'
        >>> secret_variable("hunter2") is None
        True
    """
    if isinstance(value, str) and value.startswith("env:") and len(value) > 4:
        return value[4:]
    return None


def unset_secret_variables(value: Any) -> list[str]:
    """Name the environment variables a ``security`` setting reads that are not set.

    ``wove doctor`` uses it to report a missing secret before a weave would fail on it.
    """
    variable = secret_variable(value)
    if variable is not None:
        names = [variable]
    elif isinstance(value, Mapping) and "secret_env" in value:
        names = [str(value["secret_env"])]
    else:
        names = []
    return [name for name in names if not os.environ.get(name)]


def _secret_from_env(name: str, where: str) -> str:
    secret = os.environ.get(name)
    if not secret:
        raise InvalidOptionError(
            f"{where}: security secret variable {name!r} is not set in the environment; "
            f"export {name}=<the shared secret, at least 16 bytes> before the weave runs"
        )
    return secret


class LineCodec:
    """Frames as JSON lines, signed when a :class:`Security` is given.

    A signed line is ``<header>\\t<body>\\n``; an unsigned one is ``<body>\\n``. Decoding checks
    the signature before it parses the body.
    """

    def __init__(self, security: Security | None) -> None:
        self.security = security

    def encode(self, frame: Frame) -> bytes:
        body = encode_json(frame)
        if self.security is None:
            return body + b"\n"
        return self.security.sign(body) + b"\t" + body + b"\n"

    def decode(self, line: bytes) -> Any:
        line = line.rstrip(b"\r\n")
        header, tab, body = line.partition(b"\t")
        if not tab:
            header, body = b"", line
        if self.security is not None:
            self.security.verify(header, body)
        elif header:
            raise FrameRejectedError(
                "signed frame received, but this end has no security configured to check it"
            )
        try:
            return decode_json(body)
        except (msgspec.DecodeError, msgspec.ValidationError, InvalidOptionError) as error:
            raise FrameRejectedError(f"malformed frame refused: {error}") from None
