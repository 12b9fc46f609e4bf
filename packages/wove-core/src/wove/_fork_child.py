"""The child side of ``fork=True`` (``python -m wove._fork_child``).

It reads the signed weave from standard input, checks the signature with the one-time key from
its environment before unpickling anything, rebuilds the weave, runs it, and exits with 0 when
every task succeeded.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys

from ._config import build_config, install_config
from ._fork import KEY_VARIABLE, REASON
from ._serializer import loads
from ._weave import WeaveBlock

__all__ = ["main"]


def main() -> int:
    key_hex = os.environ.pop(KEY_VARIABLE, "")
    received = sys.stdin.buffer.read()
    signature, body = received[:32], received[32:]
    expected = hmac.new(bytes.fromhex(key_hex), body, hashlib.sha256).digest() if key_hex else b""
    if not key_hex or not hmac.compare_digest(signature, expected):
        print("wove: refusing a forked weave whose signature does not verify", file=sys.stderr)
        return 2
    blueprint = loads(body, REASON)
    install_config(build_config(blueprint["config"]))
    block = WeaveBlock(None, blueprint["options"], blueprint["data"])
    for name, func, map_source, options in blueprint["tasks"]:
        block._declare(name, func, map_source, options)
    with block:
        pass
    return 0 if block.result.exception is None else 1


if __name__ == "__main__":
    sys.exit(main())
