"""The ``temporal`` backend adapter: each Wove run becomes one Temporal workflow execution.

The adapter starts :class:`~wove_temporal.RunPayloadWorkflow` with the signed payload; a
Temporal worker built by :func:`wove_temporal.build_worker` runs it as one activity that
reports back to the callback server. ``temporalio``'s client is asyncio-native, so every call
is awaited on the dispatch loop; the client connects once and serves every later weave (its
core retries and reconnects by itself when the server goes away and comes back).

* **workflow ids** -- ``job.job_id`` (the idempotency key, or the run id), started with
  ``id_reuse_policy=REJECT_DUPLICATE`` and ``id_conflict_policy=FAIL``: a key Temporal still
  holds, running or closed within the namespace's retention, is refused
  (``WorkflowAlreadyStartedError`` becomes :class:`~wove.backends.DuplicateJobError`);
* **cancel** -- ``WorkflowHandle.cancel()``: the workflow cancels its activity and waits for it,
  the activity sees the cancel at its next heartbeat and cancels the run; ``True`` only once
  Temporal reports the workflow *canceled*;
* **status** -- ``WorkflowHandle.describe()``; a closed workflow's failure is read from its
  result (the activity's failure: a heartbeat timeout, a refused payload).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar, Final

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from wove import InvalidOptionError
from wove.backends import BackendAdapter, BackendExecutor, BackendJob, DuplicateJobError, JobStatus

from ._workflow import TIMEOUT_OPTIONS, WORKFLOW_NAME, encode_activity_options
from .worker import NOT_CLAIMED

__all__ = ["TEMPORAL_CONFIG_KEYS", "TemporalAdapter", "TemporalExecutor"]

logger = logging.getLogger(__name__)

#: ``executor_config`` keys of a ``temporal`` environment, besides the shared backend keys.
TEMPORAL_CONFIG_KEYS: Final = frozenset(
    {
        "client",
        "target_host",
        "namespace",
        "connect_options",
        "task_queue",
        "workflow_options",
        "activity_options",
        "cancel_timeout",
    }
)
#: ``start_workflow`` arguments Wove sets itself: the workflow and its input, the id (from the
#: idempotency key), the queue, and how a taken id is handled. ``cron_schedule`` and the start
#: signal would run one payload more than once.
_RESERVED_WORKFLOW_OPTIONS: Final = frozenset(
    {
        "self",
        "workflow",
        "arg",
        "args",
        "id",
        "task_queue",
        "result_type",
        "id_conflict_policy",
        "cron_schedule",
        "start_signal",
        "start_signal_args",
        "stack_level",
    }
)
_WORKFLOW_OPTIONS: Final = frozenset(
    set(inspect.signature(Client.start_workflow).parameters) - _RESERVED_WORKFLOW_OPTIONS
)
_DURATION_WORKFLOW_OPTIONS: Final = frozenset(
    {"execution_timeout", "run_timeout", "task_timeout", "start_delay", "rpc_timeout"}
)
_CONNECT_OPTIONS: Final = frozenset(
    set(inspect.signature(Client.connect).parameters) - {"target_host", "namespace", "lazy"}
)
_ACTIVITY_OPTIONS: Final = frozenset({*TIMEOUT_OPTIONS, "retry_policy"})
#: A run's activity gets one attempt: a second one would find its run already claimed.
DEFAULT_RETRY_POLICY: Final = RetryPolicy(maximum_attempts=1)
#: An activity may run this long unless ``activity_options`` says otherwise; bound tasks with
#: Wove's own ``timeout`` instead.
DEFAULT_START_TO_CLOSE: Final = timedelta(days=1)
#: With no ``heartbeat_timeout`` set, Temporal times the activity out after this many of the
#: run's heartbeat intervals without a heartbeat -- the same silence Wove itself waits for.
HEARTBEAT_TIMEOUT_INTERVALS: Final = 3.0
#: Seconds a cancel waits for Temporal to confirm the workflow was canceled.
DEFAULT_CANCEL_TIMEOUT: Final = 5.0


class TemporalAdapter(BackendAdapter):
    """Start each run as a workflow; cancel, describe and close through ``temporalio``."""

    name: ClassVar[str] = "temporal"
    config_keys: ClassVar[frozenset[str]] = TEMPORAL_CONFIG_KEYS
    #: Temporal refuses payloads over 2 MB and the payload is stored twice in the workflow's
    #: history (workflow and activity input); larger lines are fetched from the callback server.
    max_inline_payload_bytes = 256 * 1024

    def __init__(self) -> None:
        super().__init__()
        self._client: Client | None = None
        self._task_queue = ""
        self._workflow_options: dict[str, Any] = {}
        self._timeouts: dict[str, timedelta] = {}
        self._retry_policy = DEFAULT_RETRY_POLICY
        self._cancel_timeout = DEFAULT_CANCEL_TIMEOUT
        self._where = ""

    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        """Check the Temporal keys, then connect once and make sure the namespace exists."""
        where = f"executor_config of environment {environment_name!r} (executor 'temporal')"
        self._where = where
        queue = config.get("task_queue")
        if not isinstance(queue, str) or not queue:
            raise InvalidOptionError(
                f"{where}: task_queue is required: the Temporal task queue your workers poll "
                f"(build_worker(client, task_queue)), as a non-empty string; got {queue!r}"
            )
        self._task_queue = queue
        self._workflow_options = _workflow_options(config.get("workflow_options"), where)
        self._timeouts, self._retry_policy = _activity_options(
            config.get("activity_options"), where
        )
        cancel_timeout = config.get("cancel_timeout", DEFAULT_CANCEL_TIMEOUT)
        if (
            isinstance(cancel_timeout, bool)
            or not isinstance(cancel_timeout, (int, float))
            or cancel_timeout < 0
        ):
            raise InvalidOptionError(
                f"{where}: cancel_timeout must be a number of seconds >= 0, got {cancel_timeout!r}"
            )
        self._cancel_timeout = float(cancel_timeout)
        self._client = await _connect(config, where)

    async def submit(self, job: BackendJob) -> WorkflowHandle[Any, Any]:
        """Start the workflow under the run's job id; a taken id is a duplicate."""
        client = self._require_client()
        timeouts = dict(self._timeouts)
        timeouts.setdefault(
            "heartbeat_timeout", timedelta(seconds=HEARTBEAT_TIMEOUT_INTERVALS * job.heartbeat)
        )
        try:
            handle: WorkflowHandle[Any, Any] = await client.start_workflow(
                WORKFLOW_NAME,
                args=[job.payload, encode_activity_options(timeouts, self._retry_policy)],
                id=job.job_id,
                task_queue=self._task_queue,
                result_type=str,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                **self._workflow_options,
            )
        except WorkflowAlreadyStartedError as error:
            raise DuplicateJobError(
                f"Temporal already holds workflow {job.job_id!r} in namespace "
                f"{client.namespace!r} (running, or closed within the namespace's retention "
                "period); use a new idempotency key to run the task again"
            ) from error
        return handle

    async def cancel(self, job: BackendJob) -> bool:
        """Request cancellation; ``True`` once Temporal reports the workflow canceled.

        The workflow waits for its activity to stop, so *canceled* means the run is over. A
        cancel Temporal does not confirm within ``cancel_timeout`` (no worker polls the queue,
        or the activity heartbeats rarely) returns ``False``: the run's worker still sees the
        cancel in the answer to its next Wove heartbeat.
        """
        handle: WorkflowHandle[Any, Any] = job.handle
        try:
            await handle.cancel(reason="cancelled by its Wove weave")
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:  # already closed or gone
                return False
            raise
        if not self._cancel_timeout:
            return False
        try:
            await asyncio.wait_for(handle.result(), self._cancel_timeout)
        except asyncio.TimeoutError:
            return False
        except WorkflowFailureError as error:
            return isinstance(error.cause, TemporalCancelledError)
        return False  # it finished anyway; its worker reported the outcome

    async def status(self, job: BackendJob) -> JobStatus:
        """Map ``describe()`` onto Wove's states, reading a closed workflow's outcome."""
        handle: WorkflowHandle[Any, Any] = job.handle
        try:
            description = await handle.describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return JobStatus("missing", f"Temporal has no workflow {job.job_id!r}")
            raise
        state = description.status
        if state == WorkflowExecutionStatus.RUNNING:
            activities = description.raw_description.pending_activities
            if (
                activities
                and activities[0].state != PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
            ):
                return JobStatus("running")
            if activities and activities[0].attempt > 1:
                return JobStatus("running", f"activity attempt {activities[0].attempt}")
            return JobStatus("pending", "waiting for a worker on task queue " + self._task_queue)
        if state == WorkflowExecutionStatus.CANCELED:
            return JobStatus("cancelled", "workflow canceled in Temporal")
        if state in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
            return await _closed(handle)
        if state in (WorkflowExecutionStatus.TIMED_OUT, WorkflowExecutionStatus.TERMINATED):
            name = state.name.lower().replace("_", " ")
            return JobStatus("failed", f"workflow {name} in Temporal")
        return JobStatus("unknown", f"workflow status {state!r}")

    async def close(self) -> None:
        """Forget the client (``temporalio`` clients have no close; a given one is the
        caller's anyway)."""
        self._client = None
        await super().close()

    def _require_client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the temporal adapter is not started (or already closed)")
        return self._client


class TemporalExecutor(BackendExecutor):
    """The ``temporal`` executor: Wove runs as Temporal workflows, results back through the
    callback server.

    Example:
        >>> import wove
        >>> wove.config(
        ...     environments={
        ...         "durable": {
        ...             "executor": "temporal",
        ...             "executor_config": {
        ...                 "target_host": "127.0.0.1:7233",
        ...                 "task_queue": "wove",
        ...                 "security": "env:WOVE_SECRET",
        ...             },
        ...         }
        ...     }
        ... )
    """

    adapter_class = TemporalAdapter


async def _closed(handle: WorkflowHandle[Any, Any]) -> JobStatus:
    """A completed or failed workflow's outcome, from its result."""
    try:
        word = await handle.result()
    except WorkflowFailureError as error:
        return JobStatus("failed", _failure_chain(error))
    if word == NOT_CLAIMED:
        return JobStatus(
            "failed",
            "its worker skipped the run: already claimed by another copy, or no weave waits for it",
        )
    return JobStatus("succeeded", f"the activity returned {word!r}")


def _failure_chain(error: BaseException) -> str:
    """``workflow failed: activity error: activity Heartbeat timeout``, from the cause chain."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None and len(parts) < 5:
        text = str(current) or type(current).__name__
        timeout_type = getattr(current, "type", None)
        if type(current).__name__ == "TimeoutError" and timeout_type is not None:
            text = f"{timeout_type.name.lower().replace('_', '-')} timeout"
            if timeout_type.name == "HEARTBEAT":
                text += " (no heartbeat from the activity: its worker probably died)"
        if not parts or text not in parts[-1]:
            parts.append(text)
        current = current.__cause__
    return ": ".join(parts)


async def _connect(config: Mapping[str, Any], where: str) -> Client:
    given = config.get("client")
    target = config.get("target_host")
    namespace = config.get("namespace")
    if given is not None:
        if target is not None or config.get("connect_options") is not None:
            raise InvalidOptionError(
                f"{where}: client and target_host/connect_options both say how to connect; "
                "keep only one"
            )
        if not isinstance(given, Client):
            raise InvalidOptionError(
                f"{where}: client must be a temporalio.client.Client (from await "
                f"Client.connect(...)), got a {type(given).__module__}.{type(given).__qualname__}"
            )
        if namespace is not None and namespace != given.namespace:
            raise InvalidOptionError(
                f"{where}: namespace {namespace!r} differs from the given client's "
                f"{given.namespace!r}; connect the client to the namespace instead"
            )
        return given
    if target is None:
        raise InvalidOptionError(
            f"{where}: no Temporal connection: set target_host='host:7233' (with namespace, "
            "default 'default') or client=<a temporalio.client.Client>; the workers must poll "
            "the same namespace and task_queue"
        )
    if not isinstance(target, str) or not target or "://" in target:
        raise InvalidOptionError(
            f"{where}: target_host must be a 'host:port' string (no scheme), got {target!r}"
        )
    namespace = "default" if namespace is None else namespace
    if not isinstance(namespace, str) or not namespace:
        raise InvalidOptionError(
            f"{where}: namespace must be a non-empty string, got {namespace!r}"
        )
    options = config.get("connect_options") or {}
    if not isinstance(options, Mapping):
        raise InvalidOptionError(
            f"{where}: connect_options must be a dict of Client.connect arguments, got {options!r}"
        )
    unknown = sorted(str(key) for key in options if key not in _CONNECT_OPTIONS)
    if unknown:
        raise InvalidOptionError(
            f"{where}: unknown connect_options {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(sorted(_CONNECT_OPTIONS))}"
        )
    try:
        client = await Client.connect(target, namespace=namespace, **options)
    except Exception as error:
        raise ConnectionError(
            f"{where}: cannot reach the Temporal server at {target}: {type(error).__name__}: "
            f"{error}. Start it or fix target_host/connect_options"
        ) from error
    try:
        await client.workflow_service.describe_namespace(_describe_namespace_request(namespace))
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise InvalidOptionError(
                f"{where}: the Temporal server at {target} has no namespace {namespace!r}; "
                f"create it (temporal operator namespace create --namespace {namespace}) or fix "
                "namespace"
            ) from None
        raise ConnectionError(
            f"{where}: the Temporal server at {target} did not answer: {error}"
        ) from error
    return client


def _describe_namespace_request(namespace: str) -> Any:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    return DescribeNamespaceRequest(namespace=namespace)


def _duration(value: Any, key: str, where: str) -> timedelta:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidOptionError(
            f"{where}: {key} must be a datetime.timedelta or a number of seconds, got {value!r}"
        )
    if seconds <= 0:
        raise InvalidOptionError(f"{where}: {key} must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def _workflow_options(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise InvalidOptionError(
            f"{where}: workflow_options must be a dict of Client.start_workflow arguments, "
            f"got {value!r}"
        )
    reserved = sorted(str(key) for key in value if key in _RESERVED_WORKFLOW_OPTIONS)
    if reserved:
        raise InvalidOptionError(
            f"{where}: workflow_options may not set {', '.join(reserved)}: Wove sets the workflow "
            "id from the idempotency key (or run id), refuses a taken id, takes the queue from "
            "task_queue, and runs each payload once"
        )
    unknown = sorted(str(key) for key in value if key not in _WORKFLOW_OPTIONS)
    if unknown:
        raise InvalidOptionError(
            f"{where}: unknown workflow_options {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(sorted(_WORKFLOW_OPTIONS))}"
        )
    options = dict(value)
    for key in _DURATION_WORKFLOW_OPTIONS & options.keys():
        options[key] = _duration(options[key], f"workflow_options[{key!r}]", where)
    policy = options.setdefault("id_reuse_policy", WorkflowIDReusePolicy.REJECT_DUPLICATE)
    if not isinstance(policy, WorkflowIDReusePolicy):
        raise InvalidOptionError(
            f"{where}: workflow_options['id_reuse_policy'] must be a "
            f"temporalio.common.WorkflowIDReusePolicy, got {policy!r}"
        )
    return options


def _activity_options(value: Any, where: str) -> tuple[dict[str, timedelta], RetryPolicy]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise InvalidOptionError(
            f"{where}: activity_options must be a dict with keys "
            f"{', '.join(sorted(_ACTIVITY_OPTIONS))}, got {value!r}"
        )
    unknown = sorted(str(key) for key in value if key not in _ACTIVITY_OPTIONS)
    if unknown:
        raise InvalidOptionError(
            f"{where}: unknown activity_options {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(sorted(_ACTIVITY_OPTIONS))}"
        )
    timeouts = {
        key: _duration(value[key], f"activity_options[{key!r}]", where)
        for key in TIMEOUT_OPTIONS
        if value.get(key) is not None
    }
    if "start_to_close_timeout" not in timeouts and "schedule_to_close_timeout" not in timeouts:
        timeouts["start_to_close_timeout"] = DEFAULT_START_TO_CLOSE
    policy = value.get("retry_policy", DEFAULT_RETRY_POLICY)
    if not isinstance(policy, RetryPolicy):
        raise InvalidOptionError(
            f"{where}: activity_options['retry_policy'] must be a "
            f"temporalio.common.RetryPolicy, got {policy!r}"
        )
    return timeouts, policy
