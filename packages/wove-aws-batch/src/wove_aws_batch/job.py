"""The command every Wove job runs inside its AWS Batch container.

``python -m wove_aws_batch.job`` reads the signed payload from the ``WOVE_PAYLOAD`` environment
variable (the adapter puts it there with a container override), runs the task through
:func:`wove.worker.run_job` -- which claims the run on the weave's callback server,
posts every event there and heartbeats while the task runs -- prints the word it returns
(``task_result``, ``task_error``, ``task_cancelled`` or ``not_claimed``) and exits.

The payload is normally a small signed *reference*: Batch caps a job's container overrides at
8 KiB, so the task itself stays on the callback server and this command fetches it from there,
signing the request with ``WOVE_SECRET``. That secret must be in the container's environment;
give it to the job definition as a ``secrets`` entry (Secrets Manager or SSM Parameter Store)
so it never appears in the job's description.

Exit status, as Batch records it:

* ``0`` -- the run's outcome reached the weave (a result, the task's own exception, or a
  cancel), or another copy of the job had already claimed the run (a Batch retry, a replay);
  the task's own failure is the weave's business, so Batch does not retry the job for it;
* ``1`` -- the outcome could not be reported (the callback server was unreachable, the job
  crashed); the weave notices through status polling or missing heartbeats;
* ``2`` -- no ``WOVE_PAYLOAD``, or a payload whose signature does not check: nothing was
  unpickled or run.

Only :mod:`wove` is imported here, never boto3: the image needs ``wove-core[callback,dispatch]``
(and this package) but no AWS client.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from wove.worker import JobOutcome

__all__ = ["PAYLOAD_ENV", "main", "run_job"]

#: The environment variable the adapter passes the signed payload in.
PAYLOAD_ENV: Final = "WOVE_PAYLOAD"

EXIT_REPORTED: Final = 0
EXIT_UNREPORTED: Final = 1
EXIT_REFUSED: Final = 2
#: The exit status for each word :func:`run_job` returns: every one means the run's fate is
#: settled (the weave received its outcome, or another copy owns the run), so none is a Batch
#: failure -- a failed task is the weave's to retry, not Batch's.
EXIT_CODES: Final[Mapping[JobOutcome, int]] = {
    "task_result": EXIT_REPORTED,
    "task_error": EXIT_REPORTED,
    "task_cancelled": EXIT_REPORTED,
    "not_claimed": EXIT_REPORTED,
}


def run_job(environ: Mapping[str, str] | None = None) -> JobOutcome:
    """Run the payload in ``environ[WOVE_PAYLOAD]`` (default: this process's environment).

    Returns:
        What became of the run, from :func:`wove.worker.run_job`:
        ``"task_result"``, ``"task_error"`` or ``"task_cancelled"`` (the event the weave
        received), or ``"not_claimed"`` when another copy already ran it (logged).

    Raises:
        LookupError: ``WOVE_PAYLOAD`` is missing or empty.
        wove.FrameRejectedError: the payload's signature does not check (or ``WOVE_SECRET`` is
            missing); nothing was unpickled.
        Exception: the run could not be reported (for example the callback server is down).
    """
    from wove import worker

    payload = (os.environ if environ is None else environ).get(PAYLOAD_ENV, "")
    if not payload.strip():
        raise LookupError(
            f"{PAYLOAD_ENV} is not set: this command runs the payload the Wove aws_batch "
            "executor passes in the job's environment; it is not meant to be started by hand"
        )
    return worker.run_job(payload)


def main(argv: Sequence[str] | None = None) -> int:
    """The console entry point; see the module docstring for the exit statuses."""
    from wove import FrameRejectedError

    del argv  # the payload travels in the environment, never on the command line
    logging.basicConfig(level=logging.INFO, format="wove_aws_batch.job: %(message)s")
    try:
        outcome = run_job()
    except (LookupError, FrameRejectedError) as error:
        print(f"wove_aws_batch.job: refused: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as error:
        print(
            f"wove_aws_batch.job: the run could not be reported: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return EXIT_UNREPORTED
    print(f"wove_aws_batch.job: {outcome}")
    return EXIT_CODES[outcome]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
