"""The compute-node side of the ``slurm`` executor: the payload file and the batch script.

Each Wove run becomes one Slurm batch job whose script is :func:`job_script`. The signed
payload never appears on a command line, in the script or in the job's environment (all of
which ``scontrol show job`` and ``scontrol write batch_script`` can show); it travels as a
file in a directory the submitting host and the compute nodes share (:func:`write_payload`,
mode 0600). When the job starts, its script opens the file, deletes it at once and hands the
open descriptor to the worker::

    python -m wove.backend_worker --payload-file /dev/fd/3

so the payload is on disk only while the job waits in the queue (the adapter deletes the file
of a job that never started). The worker verifies the payload, claims the run on the callback
server, runs the task there and posts its events back; its exit status is 0 (succeeded), 1
(failed or cancelled) or 2 (payload refused), which Slurm records as the job's exit code.

The functions here are what the adapter uses, and they work the same for a job submitted by
hand::

    path = write_payload(Path("/shared/wove"), "my-run", payload)
    subprocess.run(["sbatch", "--parsable"], input=job_script(path), text=True, check=True)

The job needs ``WOVE_SECRET`` (the environment's shared secret): from the job's environment
(Slurm exports the submitting environment by default) or, with ``secret_file``, read by the
script from a file only the user can read.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import sys
from pathlib import Path
from typing import Final

from wove.backends import safe_job_name

__all__ = ["PAYLOAD_SUFFIX", "job_script", "slurm_job_name", "write_payload"]

#: The suffix of every payload file the adapter writes (and removes).
PAYLOAD_SUFFIX: Final = ".wove-payload"
#: Characters a job name keeps; every other one becomes ``_`` (names show up in shells).
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")
_SAFE: Final = re.compile(r"[A-Za-z0-9._-]*")
#: Slurm accepts longer names, but ``squeue`` columns and log file names do not.
_MAX_NAME: Final = 200


def slurm_job_name(prefix: str, job_id: str) -> str:
    """The Slurm job name for a Wove job id: ``prefix`` + the id, made shell- and Slurm-safe.

    An id that needed changing (an idempotency key with spaces or slashes) gets a short hash
    of the original appended, so two keys that differ only in such characters stay distinct.
    """
    safe = safe_job_name(
        job_id,
        valid=_SAFE,
        invalid=_UNSAFE,
        replacement="_",
        base_length=_MAX_NAME,
        digest_length=8,
    )
    return _UNSAFE.sub("_", prefix)[:64] + safe[: _MAX_NAME - 64]


def write_payload(directory: Path, name: str, payload: str | bytes) -> Path:
    """Write ``payload`` to a new file in ``directory`` that only this user can read.

    The file is created exclusively with mode 0600 (never through a umask), under a name that
    no other job can have, and written completely before the job is submitted.

    Returns:
        The file's path, to give to :func:`job_script`.
    """
    data = payload.encode() if isinstance(payload, str) else payload
    path = directory / f"{_UNSAFE.sub('_', name)}.{secrets.token_hex(8)}{PAYLOAD_SUFFIX}"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data.rstrip(b"\r\n") + b"\n")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def job_script(
    payload_file: Path | str,
    *,
    python: str = sys.executable,
    secret_file: Path | str | None = None,
) -> str:
    """The batch script that runs one payload file; submit it on ``sbatch``'s stdin.

    Args:
        payload_file: the file :func:`write_payload` wrote, as the compute node sees it.
        python: the interpreter on the compute node that has ``wove-core[callback,dispatch]``
            (and whatever the tasks import).
        secret_file: a file holding the shared secret; the script exports its content as
            ``WOVE_SECRET``. Without it the job must inherit ``WOVE_SECRET``.
    """
    payload = shlex.quote(str(payload_file))
    lines = [
        "#!/bin/sh",
        "# A Wove run: the payload file is opened, deleted, and read by the worker.",
        f"exec 3< {payload} || exit 2",
        f"rm -f -- {payload}",
    ]
    if secret_file is not None:
        secret = shlex.quote(str(secret_file))
        lines += [
            f"WOVE_SECRET=$(cat -- {secret}) || exit 2",
            "export WOVE_SECRET",
        ]
    lines.append(f"exec {shlex.quote(python)} -m wove.backend_worker --payload-file /dev/fd/3")
    return "\n".join(lines) + "\n"
