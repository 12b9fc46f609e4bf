"""The worker service as ``wove worker https``: wove-http's service with a certificate required."""

from __future__ import annotations

import subprocess
import sys


def test_https_command_requires_a_certificate():
    done = subprocess.run(
        [sys.executable, "-m", "wove", "worker", "https", "--bind", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "--tls-cert" in done.stderr
