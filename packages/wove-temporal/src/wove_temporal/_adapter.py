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
from typing import Annotated, Any, ClassVar, Final

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
from wove.backends import (
    BACKEND_CONFIG_KEYS,
    BackendAdapter,
    BackendExecutor,
    BackendJob,
    BackendSettings,
    DuplicateJobError,
    JobStatus,
)
from wove.plugins import (
    ExecutorSettings,
    Seconds,
    config_location,
    given_options,
    parse_duration,
    setting,
    setting_keys,
)

from ._workflow import WORKFLOW_NAME, encode_activity_options
from .worker import NOT_CLAIMED

__all__ = [
    "TEMPORAL_CONFIG_KEYS",
    "TemporalActivityOptions",
    "TemporalAdapter",
    "TemporalExecutor",
    "TemporalSettings",
]

logger = logging.getLogger(__name__)

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


class TemporalActivityOptions(ExecutorSettings, kw_only=True):
    """The options of the activity that runs a payload."""

    start_to_close_timeout: Annotated[
        Seconds | None,
        setting(
            "how long one attempt may run", default="one day (bound tasks with `timeout`)", gt=0
        ),
    ] = None
    schedule_to_close_timeout: Annotated[
        Seconds | None, setting("how long the activity may take from scheduled to closed", gt=0)
    ] = None
    schedule_to_start_timeout: Annotated[
        Seconds | None, setting("how long the activity may wait for a worker", gt=0)
    ] = None
    heartbeat_timeout: Annotated[
        Seconds | None,
        setting(
            "how long the activity may go without a heartbeat",
            default="three of the run's heartbeat intervals",
            gt=0,
        ),
    ] = None
    retry_policy: Annotated[
        RetryPolicy | None,
        setting(
            "a `temporalio.common.RetryPolicy`",
            expect="a temporalio.common.RetryPolicy",
            default="one attempt (a second one would find its run claimed)",
        ),
    ] = None


class TemporalSettings(BackendSettings, kw_only=True):
    """The ``executor_config`` of a ``temporal`` environment: ``target_host`` *or* ``client``,
    the adapter's other keys, and the ones every backend takes."""

    task_queue: Annotated[
        str,
        setting(
            "the Temporal task queue your workers poll (`build_worker(client, task_queue)`)",
            min_length=1,
        ),
    ]
    client: Annotated[
        Client | None,
        setting(
            "a connected `temporalio.client.Client` to use instead of connecting",
            expect="a temporalio.client.Client (from await Client.connect(...))",
        ),
    ] = None
    target_host: Annotated[
        str | None,
        setting(
            "the Temporal server's frontend, `host:port`; the client connects once and "
            "serves every later weave",
            expect="a 'host:port' string (no scheme)",
            pattern=r"^(?!.*://).+$",
        ),
    ] = None
    namespace: Annotated[
        str | None,
        setting("the Temporal namespace the workers poll", default='`"default"`', min_length=1),
    ] = None
    connect_options: Annotated[
        Mapping[str, Any],
        setting(
            "more `Client.connect` arguments (`tls`, `api_key`, `rpc_metadata`...)",
            expect="a dict of Client.connect arguments",
            keys=_CONNECT_OPTIONS,
        ),
    ] = {}
    workflow_options: Annotated[
        Mapping[str, Any],
        setting(
            "more `Client.start_workflow` arguments (`execution_timeout`, `memo`, "
            "`search_attributes`...); durations as seconds or `timedelta`",
            expect="a dict of Client.start_workflow arguments",
            keys=_WORKFLOW_OPTIONS,
            reserved=dict.fromkeys(
                sorted(_RESERVED_WORKFLOW_OPTIONS),
                "Wove sets the workflow id from the idempotency key (or run id), refuses a "
                "taken id, takes the queue from task_queue, and runs each payload once",
            ),
        ),
    ] = {}
    activity_options: Annotated[
        TemporalActivityOptions | None,
        setting("the options of the activity that runs each payload"),
    ] = None
    cancel_timeout: Annotated[
        Seconds,
        setting("how long a cancel waits for Temporal to confirm the workflow was canceled", ge=0),
    ] = DEFAULT_CANCEL_TIMEOUT
    max_inline_payload_bytes: Annotated[
        int,
        setting(
            "larger payloads stay on the callback server and the workflow carries a signed "
            "reference: Temporal refuses payloads over 2 MB and keeps each one twice in the "
            "workflow's history",
            default="256 KiB",
            ge=0,
        ),
    ] = 256 * 1024


#: ``executor_config`` keys of a ``temporal`` environment, besides the shared backend keys.
TEMPORAL_CONFIG_KEYS: Final = setting_keys(TemporalSettings) - BACKEND_CONFIG_KEYS


class TemporalAdapter(BackendAdapter):
    """Start each run as a workflow; cancel, describe and close through ``temporalio``."""

    name: ClassVar[str] = "temporal"
    settings_class = TemporalSettings

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
        """Connect once and make sure the namespace exists."""
        settings = self.configured(TemporalSettings, environment_name, config)
        where = self._where = config_location(environment_name, self.name)
        self._task_queue = settings.task_queue
        self._workflow_options = _workflow_options(settings.workflow_options, where)
        self._timeouts, self._retry_policy = _activity_options(settings.activity_options)
        self._cancel_timeout = settings.cancel_timeout
        self._client = await _connect(settings, where)

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


async def _connect(settings: TemporalSettings, where: str) -> Client:
    given, target, namespace = settings.client, settings.target_host, settings.namespace
    if given is not None:
        if target is not None or settings.connect_options:
            raise InvalidOptionError(
                f"{where}: client and target_host/connect_options both say how to connect; "
                "keep only one"
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
    namespace = "default" if namespace is None else namespace
    options = settings.connect_options
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


def _workflow_options(value: Mapping[str, Any], where: str) -> dict[str, Any]:
    options = dict(value)
    for key in _DURATION_WORKFLOW_OPTIONS & options.keys():
        shown = f"workflow_options[{key!r}]"
        seconds = parse_duration(options[key], key=shown, where=where, gt=0)
        options[key] = timedelta(seconds=seconds)
    policy = options.setdefault("id_reuse_policy", WorkflowIDReusePolicy.REJECT_DUPLICATE)
    if not isinstance(policy, WorkflowIDReusePolicy):
        raise InvalidOptionError(
            f"{where}: workflow_options['id_reuse_policy'] must be a "
            f"temporalio.common.WorkflowIDReusePolicy, got {policy!r}"
        )
    return options


def _activity_options(
    value: TemporalActivityOptions | None,
) -> tuple[dict[str, timedelta], RetryPolicy]:
    given = {} if value is None else given_options(value)
    policy = given.pop("retry_policy", DEFAULT_RETRY_POLICY)
    timeouts = {key: timedelta(seconds=seconds) for key, seconds in given.items()}
    if "start_to_close_timeout" not in timeouts and "schedule_to_close_timeout" not in timeouts:
        timeouts["start_to_close_timeout"] = DEFAULT_START_TO_CLOSE
    return timeouts, policy
