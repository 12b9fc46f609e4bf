"""The worker side of the ``dask`` executor: the function every Wove task runs as.

The adapter submits :func:`run_payload` by reference, so a Dask worker needs nothing but this
package installed (with the modules the tasks import) and the environment's secret::

    export WOVE_SECRET=...   # the same value as in the weave's process
    dask worker tcp://scheduler:8786

Dask runs it in one of the worker's threads; the Wove run itself happens on the worker
runtime's own event loop (one per process), which runs a sync task body in a thread of its own
and an async one on that loop, so the heartbeats go on however the task behaves.
"""

from __future__ import annotations

import logging
from typing import Final

from wove import RunNotClaimedError
from wove.integrations.worker import run

__all__ = ["NOT_CLAIMED", "run_payload"]

logger = logging.getLogger(__name__)

#: What :func:`run_payload` returns for a copy of a run that must not run.
NOT_CLAIMED: Final = "not claimed"


def run_payload(payload: str) -> str:
    """Run one Wove payload inside a Dask task; the ``dask`` executor submits it for you.

    The task's outcome goes to the weave through the callback server the payload names, not
    through Dask's result store: the Dask result is only a short word for dashboards and logs
    (``"task_result"``, ``"task_error"``, ``"task_cancelled"`` or ``"not claimed"``).

    A copy of a run that another attempt already started -- Dask reschedules a task whose
    worker died -- or that the weave stopped waiting for is skipped quietly and returns
    ``"not claimed"``. A payload whose signature does not verify raises
    :class:`wove.FrameRejectedError`, so the task errs visibly in Dask.

    Args:
        payload: the signed line the adapter submitted.

    Returns:
        The kind of terminal event the run reported, or ``"not claimed"``.

    Example:
        >>> client.submit(run_payload, line, key="my-run", pure=False)  # doctest: +SKIP
    """
    try:
        terminal = run(payload)
    except RunNotClaimedError as error:
        logger.info("Dask task skipped a Wove run: %s", error)
        return NOT_CLAIMED
    return str(type(terminal).__struct_config__.tag)
