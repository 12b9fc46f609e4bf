"""The workflow that runs one Wove payload: it executes a single activity and returns its word.

This module is workflow code, so Temporal's sandbox re-imports it for every workflow run: it
imports only the standard library and ``temporalio`` (both passed through by the sandbox) and
never Wove, cloudpickle or aiohttp. The payload is an opaque string here; the activity
(:func:`wove_temporal.run_payload_activity`, referenced by name) does the real work.

The activity options travel as plain JSON (seconds and a retry-policy dict), encoded by the
adapter with :func:`encode_activity_options` and decoded here, so no non-JSON value ever enters
the workflow's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

__all__ = [
    "ACTIVITY_NAME",
    "TIMEOUT_OPTIONS",
    "WORKFLOW_NAME",
    "RunPayloadWorkflow",
    "decode_activity_options",
    "encode_activity_options",
]

#: The registered names; the adapter starts workflows and the workflow calls activities by them.
WORKFLOW_NAME: Final = "wove_temporal.RunPayloadWorkflow"
ACTIVITY_NAME: Final = "wove_temporal.run_payload_activity"
#: ``activity_options`` keys that are durations.
TIMEOUT_OPTIONS: Final = (
    "start_to_close_timeout",
    "schedule_to_close_timeout",
    "schedule_to_start_timeout",
    "heartbeat_timeout",
)


@workflow.defn(name=WORKFLOW_NAME)
class RunPayloadWorkflow:
    """Run one Wove payload as the activity ``wove_temporal.run_payload_activity``.

    Cancelling the workflow cancels the activity and waits until the activity has stopped
    (``WAIT_CANCELLATION_COMPLETED``), so a workflow that ends *canceled* means the run is over.
    An activity failure (a heartbeat timeout after its worker died, a refused payload) fails the
    workflow with that failure as its cause.
    """

    @workflow.run
    async def run(self, payload: str, options: dict[str, Any]) -> str:
        """Execute the activity with ``options`` (see :func:`encode_activity_options`).

        Returns:
            The activity's word: ``"task_result"``, ``"task_error"``, ``"task_cancelled"`` or
            ``"not_claimed"``.
        """
        result: str = await workflow.execute_activity(
            ACTIVITY_NAME,
            payload,
            result_type=str,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            **decode_activity_options(options),
        )
        return result


def encode_activity_options(
    timeouts: Mapping[str, timedelta], retry_policy: RetryPolicy
) -> dict[str, Any]:
    """The activity options as JSON for the workflow's input: durations in seconds."""
    encoded: dict[str, Any] = {
        name: value.total_seconds() for name, value in timeouts.items() if name in TIMEOUT_OPTIONS
    }
    encoded["retry_policy"] = {
        "initial_interval": retry_policy.initial_interval.total_seconds(),
        "backoff_coefficient": retry_policy.backoff_coefficient,
        "maximum_interval": (
            None
            if retry_policy.maximum_interval is None
            else retry_policy.maximum_interval.total_seconds()
        ),
        "maximum_attempts": retry_policy.maximum_attempts,
        "non_retryable_error_types": list(retry_policy.non_retryable_error_types or ()),
    }
    return encoded


def decode_activity_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``workflow.execute_activity`` from :func:`encode_activity_options`."""
    decoded: dict[str, Any] = {
        name: timedelta(seconds=options[name])
        for name in TIMEOUT_OPTIONS
        if options.get(name) is not None
    }
    retry = options.get("retry_policy")
    if retry is not None:
        maximum = retry.get("maximum_interval")
        decoded["retry_policy"] = RetryPolicy(
            initial_interval=timedelta(seconds=retry["initial_interval"]),
            backoff_coefficient=retry["backoff_coefficient"],
            maximum_interval=None if maximum is None else timedelta(seconds=maximum),
            maximum_attempts=retry["maximum_attempts"],
            non_retryable_error_types=retry["non_retryable_error_types"] or None,
        )
    return decoded
