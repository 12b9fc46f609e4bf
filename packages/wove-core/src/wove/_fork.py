"""``fork=True``: run a weave in a new Python process that outlives the block.

The parent serializes the weave (its tasks, data, options and the configuration in force) with
the dispatch serializer, signs it with a one-time key, and writes it to the child's standard
input; the key travels in the child's environment only. The child (``wove._fork_child``)
verifies the signature before unpickling anything, runs the weave, and calls ``on_done`` there.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import subprocess
import sys
from typing import Any, Final

from ._serializer import dumps

__all__ = ["KEY_VARIABLE", "REASON", "start_forked"]

KEY_VARIABLE: Final = "WOVE_FORK_KEY"
REASON: Final = "weave(fork=True)"
_children: list[subprocess.Popen[bytes]] = []


def start_forked(blueprint: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Start the child process and hand it the signed ``blueprint`` of the weave."""
    body = dumps(blueprint, REASON)
    key = secrets.token_bytes(32)
    signature = hmac.new(key, body, hashlib.sha256).digest()
    environment = {**os.environ, KEY_VARIABLE: key.hex()}
    # Reap children that already finished so they do not linger as zombies.
    _children[:] = [child for child in _children if child.poll() is None]
    child = subprocess.Popen(
        [sys.executable, "-m", "wove._fork_child"],
        stdin=subprocess.PIPE,
        env=environment,
        start_new_session=True,
    )
    assert child.stdin is not None
    with child.stdin:
        child.stdin.write(signature + body)
    _children.append(child)
    return child
