"""``fork=True``: run a weave in a new Python process that outlives the block.

The parent serializes the weave (its tasks, data, options and the configuration in force) with
the dispatch serializer, signs it with a one-time key, and writes it to the child's standard
input; the key travels in the child's environment only. The child verifies the signature before
unpickling anything, runs the weave, and calls ``on_done`` there.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Final

from ._serializer import dumps, loads

if TYPE_CHECKING:
    from ._weave import WeaveBlock

__all__ = ["start_forked"]

KEY_VARIABLE: Final = "WOVE_FORK_KEY"
_REASON: Final = "weave(fork=True)"
_children: list[subprocess.Popen[bytes]] = []


def _blueprint(block: WeaveBlock) -> dict[str, Any]:
    options = {**block._options, "background": False, "fork": False}
    return {
        "config": dict(block._config.options),
        "options": options,
        "data": block._data,
        "tasks": [
            (spec.name, spec.func, spec.map_source, dict(spec.options))
            for spec in block._specs.values()
        ],
    }


def start_forked(block: WeaveBlock) -> subprocess.Popen[bytes]:
    """Start the child process for ``block`` and hand it the signed weave."""
    body = dumps(_blueprint(block), _REASON)
    key = secrets.token_bytes(32)
    signature = hmac.new(key, body, hashlib.sha256).digest()
    environment = {**os.environ, KEY_VARIABLE: key.hex()}
    # Reap children that already finished so they do not linger as zombies.
    _children[:] = [child for child in _children if child.poll() is None]
    child = subprocess.Popen(
        [sys.executable, "-m", "wove._fork"],
        stdin=subprocess.PIPE,
        env=environment,
        start_new_session=True,
    )
    assert child.stdin is not None
    with child.stdin:
        child.stdin.write(signature + body)
    _children.append(child)
    return child


def _main() -> int:
    key_hex = os.environ.pop(KEY_VARIABLE, "")
    received = sys.stdin.buffer.read()
    signature, body = received[:32], received[32:]
    expected = hmac.new(bytes.fromhex(key_hex), body, hashlib.sha256).digest() if key_hex else b""
    if not key_hex or not hmac.compare_digest(signature, expected):
        print("wove: refusing a forked weave whose signature does not verify", file=sys.stderr)
        return 2
    blueprint = loads(body, _REASON)

    from ._config import _install, build_config
    from ._weave import WeaveBlock

    _install(build_config(blueprint["config"]))
    block = WeaveBlock(None, blueprint["options"], blueprint["data"])
    for name, func, map_source, options in blueprint["tasks"]:
        block._declare(name, func, map_source, options)
    with block:
        pass
    return 0 if block.result.exception is None else 1


if __name__ == "__main__":
    sys.exit(_main())
