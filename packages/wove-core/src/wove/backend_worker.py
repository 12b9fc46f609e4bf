"""``python -m wove.backend_worker``: run one backend payload and report how it ended.

The command a job-style backend (Kubernetes Jobs, AWS Batch, Slurm, a plain shell) runs. It
reads one signed payload from ``--payload-file PATH`` or stdin, passes it to
:func:`wove.integrations.worker.run` (which verifies it before anything is unpickled), prints
the terminal event as one JSON line on stdout, and exits with:

* ``0`` -- the task succeeded (``task_result``);
* ``1`` -- it failed or was cancelled (``task_error``, ``task_cancelled``);
* ``2`` -- the payload was refused (forged, tampered, expired, replayed, unsigned); nothing ran.

As in the stdio worker, stdout is reserved before the task runs: the task's own output goes to
stderr, so the last line of stdout is always the event. The secret comes from ``WOVE_SECRET``
(see :func:`~wove.integrations.worker.verify_payload`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ._errors import FrameRejectedError
from ._frames import TaskResult, encode_json
from .integrations.worker import run
from .stdio_worker import exit_now_if_threads_remain, reserve_protocol_streams

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_REFUSED", "main"]

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_REFUSED: Final = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the payload once; returns the exit status described in the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m wove.backend_worker",
        description="Verify and run one Wove task payload; print its terminal event.",
    )
    parser.add_argument(
        "--payload-file",
        type=Path,
        metavar="PATH",
        help="read the payload from PATH instead of stdin",
    )
    options = parser.parse_args(argv)
    if options.payload_file is not None:
        payload = options.payload_file.read_bytes()
    else:
        payload = sys.stdin.buffer.read()
    protocol_in, protocol_out = reserve_protocol_streams()  # before any task code can run
    os.close(protocol_in)
    logging.basicConfig(
        level=logging.WARNING, format="wove.backend_worker[%(process)d] %(levelname)s: %(message)s"
    )
    try:
        terminal = run(payload)
    except FrameRejectedError as error:
        logger.error("%s", error)
        os.close(protocol_out)
        return EXIT_REFUSED
    with os.fdopen(protocol_out, "wb") as out:
        out.write(encode_json(terminal) + b"\n")
    code = EXIT_OK if isinstance(terminal, TaskResult) else EXIT_FAILED
    exit_now_if_threads_remain(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
