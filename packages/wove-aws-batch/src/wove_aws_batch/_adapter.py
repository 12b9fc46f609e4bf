"""The AWS Batch adapter: each run becomes one Batch job running ``python -m wove_aws_batch.job``.

The job's command and its ``WOVE_PAYLOAD`` environment variable come from a container override;
everything else (image, resources, roles, the ``WOVE_SECRET`` secret) from the job definition.
Results come back through the callback server, never through Batch: Batch is only asked to
hold, start, stop and describe jobs. This is the only module of the package that imports boto3;
every call into it blocks, so each one goes through
:meth:`~wove.backends.BackendAdapter.call_blocking`, on one client per environment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Annotated, Any, Final

import boto3
import botocore.exceptions
from botocore.config import Config

from wove import InvalidOptionError
from wove.backends import (
    BACKEND_CONFIG_KEYS,
    BackendAdapter,
    BackendExecutor,
    BackendJob,
    BackendSettings,
    JobStatus,
    safe_job_name,
)
from wove.plugins import (
    ExecutorSettings,
    config_location,
    given_options,
    setting,
    setting_keys,
)

from .job import PAYLOAD_ENV

__all__ = [
    "AWS_BATCH_CONFIG_KEYS",
    "MAX_CONTAINER_OVERRIDES",
    "AWSBatchAdapter",
    "AWSBatchExecutor",
    "AWSBatchSettings",
    "ContainerOverrides",
    "batch_job_name",
]

logger = logging.getLogger("wove_aws_batch")

#: Batch fails a job whose container overrides, as JSON, are longer than this (the status
#: reason is "Container Overrides length must be at most 8192").
MAX_CONTAINER_OVERRIDES: Final = 8192
#: Payload lines above this stay on the callback server; the job carries a signed reference of
#: about 300 bytes. Small enough that the overrides stay far below MAX_CONTAINER_OVERRIDES.
DEFAULT_MAX_INLINE: Final = 1024
#: The largest ``max_inline_payload_bytes`` accepted: the rest of the 8 KiB is left to the
#: command and the ``container_overrides`` environment.
LARGEST_INLINE: Final = 6144
#: ``describe_jobs`` takes at most this many job ids per call.
DESCRIBE_BATCH: Final = 100


class ContainerOverrides(ExecutorSettings, kw_only=True):
    """``containerOverrides`` every job gets, merged with Wove's command and ``WOVE_PAYLOAD``."""

    environment: Annotated[
        list[Mapping[str, str]] | Mapping[str, str] | None,
        setting(
            "more environment variables: `[{'name': ..., 'value': ...}]` or a dict",
            expect="a list of {'name': str, 'value': str} (or a dict of str to str)",
        ),
    ] = None
    resourceRequirements: Annotated[
        list[Mapping[str, str]] | None,
        setting("GPUs, memory or vCPUs, as Batch's `resourceRequirements`"),
    ] = None
    instanceType: Annotated[
        str | None, setting("the instance type (multi-node jobs)", min_length=1)
    ] = None
    vcpus: Annotated[int | None, setting("vCPUs (deprecated by Batch)", ge=1)] = None
    memory: Annotated[int | None, setting("MiB of memory (deprecated by Batch)", ge=1)] = None


class AWSBatchSettings(BackendSettings, kw_only=True):
    """The ``executor_config`` of an ``aws_batch`` environment: the adapter's own keys, and the
    ones every backend takes."""

    job_queue: Annotated[
        str,
        setting(
            "the Batch job queue",
            expect="a non-empty string naming the Batch job queue",
            min_length=1,
        ),
    ]
    job_definition: Annotated[
        str,
        setting(
            "the job definition (name, name:revision or ARN; "
            "`wove_aws_batch.register_job_definition` creates one)",
            expect="a non-empty string naming the job definition",
            min_length=1,
        ),
    ]
    client: Annotated[
        Any,
        setting(
            "a `boto3.client('batch')` you built; instead of the connection keys",
            expect="a boto3 Batch client",
        ),
    ] = None
    region_name: Annotated[
        str | None,
        setting("the AWS region", default="boto3's (`AWS_DEFAULT_REGION`...)", min_length=1),
    ] = None
    endpoint_url: Annotated[
        str | None,
        setting(
            "the Batch endpoint, for a local stand-in or a VPC endpoint",
            expect="an http:// or https:// URL",
            pattern=r"^https?://",
        ),
    ] = None
    profile_name: Annotated[
        str | None, setting("a profile of the AWS config files", min_length=1)
    ] = None
    aws_access_key_id: Annotated[
        str | None,
        setting("credentials, when not from boto3's usual chain", min_length=1),
    ] = None
    aws_secret_access_key: Annotated[
        str | None, setting("the secret key of `aws_access_key_id`", min_length=1)
    ] = None
    aws_session_token: Annotated[
        str | None, setting("a session token for temporary credentials", min_length=1)
    ] = None
    container_overrides: Annotated[
        ContainerOverrides | None,
        setting(
            "`containerOverrides` for every job (`environment`, `resourceRequirements`...), "
            "merged with Wove's command and `WOVE_PAYLOAD`",
            reserved={
                "command": "every job runs `<python> -m wove_aws_batch.job`; set python to "
                "choose the interpreter"
            },
        ),
    ] = None
    share_identifier: Annotated[
        str | None,
        setting(
            "the fair-share identifier of the queue's scheduling policy (`shareIdentifier`)",
            min_length=1,
        ),
    ] = None
    scheduling_priority: Annotated[
        int | None,
        setting(
            "higher runs first in a fair-share queue (`schedulingPriorityOverride`)",
            ge=0,
        ),
    ] = None
    python: Annotated[
        str,
        setting(
            "the interpreter in the job's image",
            expect="the interpreter's name or path inside the job's image, such as 'python3' "
            "or '/opt/venv/bin/python'",
            min_length=1,
        ),
    ] = "python3"
    max_inline_payload_bytes: Annotated[
        int,
        setting(
            "larger payloads stay on the callback server and the job carries a signed "
            "reference (about 300 bytes); at most 6 KiB, since Batch fails jobs whose container "
            "overrides exceed 8 KiB",
            expect=f"an integer from 0 to {LARGEST_INLINE}: the payload travels in a container "
            f"override, and Batch fails jobs whose overrides exceed {MAX_CONTAINER_OVERRIDES} "
            f"bytes (the default {DEFAULT_MAX_INLINE} sends larger payloads as a signed "
            "reference the job fetches from the callback server)",
            ge=0,
            le=LARGEST_INLINE,
        ),
    ] = DEFAULT_MAX_INLINE


#: ``executor_config`` keys of the adapter, beyond the ones every backend takes.
AWS_BATCH_CONFIG_KEYS: Final = setting_keys(AWSBatchSettings) - BACKEND_CONFIG_KEYS
#: ``container_overrides`` keys passed on to Batch; the command is Wove's.
OVERRIDE_KEYS: Final = setting_keys(ContainerOverrides)

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_NOT_NAME: Final = re.compile(r"[^A-Za-z0-9_-]+")
_PENDING: Final = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING"})
#: How long a job's described state is reused for the status calls of one poll.
_FRESH_SECONDS: Final = 0.5
#: Final states are remembered this long after Batch reported them, then forgotten.
_KEEP_FINAL_SECONDS: Final = 600.0


def batch_job_name(job_id: str) -> str:
    """The Batch job name Wove uses for ``job_id`` (an idempotency key, or a run id).

    Batch job names hold letters, digits, ``-`` and ``_`` only, start with a letter or digit
    and are at most 128 characters long. A ``job_id`` like that is used unchanged, so
    ``delivery_idempotency_key="invoice-42"`` is Batch job name ``invoice-42``. Any other id
    has each run of other characters replaced by ``_``, is cut to 100 characters, gets ``-``
    plus 16 hex digits of its SHA-256 (two keys that differ only in replaced characters stay
    distinct), and ``j`` in front if it would not start with a letter or digit.

    Example:
        >>> batch_job_name("invoice-42")
        'invoice-42'
        >>> batch_job_name("order 7/eu").startswith("order_7_eu-")
        True
    """
    name = safe_job_name(job_id, valid=_NAME, invalid=_NOT_NAME, replacement="_", base_length=100)
    return name if name[0].isalnum() else f"j{name}"


class AWSBatchAdapter(BackendAdapter):
    """Submit, terminate and describe Wove runs as AWS Batch jobs; see the module docstring."""

    name = "aws_batch"
    settings_class = AWSBatchSettings
    max_inline_payload_bytes = DEFAULT_MAX_INLINE

    def __init__(self) -> None:
        super().__init__()
        self._client: Any = None
        self._owns_client = False
        self._queue = ""
        self._definition = ""
        self._python = "python3"
        self._overrides: dict[str, Any] = {}
        self._environment: list[dict[str, str]] = []
        self._extra: dict[str, Any] = {}
        self._where = "AWS Batch"
        # Described states, shared by the status calls of one poll: job id -> (when, status).
        self._known: dict[str, tuple[float, JobStatus]] = {}
        self._active: dict[str, None] = {}  # submitted job ids not known to be over (ordered)
        self._refresh: asyncio.Future[None] | None = None

    # -- the BackendAdapter contract -----------------------------------------------------------
    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        settings = self.configured(AWSBatchSettings, environment_name, config)
        where = config_location(environment_name, self.name)
        self._queue = settings.job_queue
        self._definition = settings.job_definition
        self._python = settings.python
        self._environment, self._overrides = _container_overrides(
            settings.container_overrides, where
        )
        self._extra = {
            key: value
            for key, value in (
                ("shareIdentifier", settings.share_identifier),
                ("schedulingPriorityOverride", settings.scheduling_priority),
            )
            if value is not None
        }
        # Building a client reads config files and may resolve credentials over the network.
        self._client, self._owns_client = await self.call_blocking(_client, settings, where)
        self._where = f"AWS Batch at {self._client.meta.endpoint_url}"
        try:
            await self.call_blocking(self._check)
        except botocore.exceptions.ClientError as error:
            await self.close()
            raise InvalidOptionError(f"{where}: {_describe_error(error)}") from error
        except LookupError as error:
            await self.close()
            raise InvalidOptionError(f"{where}: {error}") from None
        except botocore.exceptions.BotoCoreError as error:
            await self.close()
            raise ConnectionError(
                f"{where}: cannot reach {self._where} ({type(error).__name__}: {error}); "
                "check endpoint_url/region_name and the AWS credentials"
            ) from error

    async def submit(self, job: BackendJob) -> str:
        name = batch_job_name(job.job_id)
        overrides = dict(self._overrides)
        overrides["command"] = [self._python, "-m", "wove_aws_batch.job"]
        overrides["environment"] = [
            *self._environment,
            {"name": PAYLOAD_ENV, "value": job.payload},
        ]
        size = len(json.dumps(overrides, separators=(",", ":")))
        if size > MAX_CONTAINER_OVERRIDES:
            raise ValueError(
                f"the container overrides of job {name!r} would be {size} bytes, but Batch fails "
                f"jobs whose overrides exceed {MAX_CONTAINER_OVERRIDES}; lower "
                "max_inline_payload_bytes or move container_overrides environment variables "
                "into the job definition"
            )
        request: dict[str, Any] = {
            "jobName": name,
            "jobQueue": self._queue,
            "jobDefinition": self._definition,
            "containerOverrides": overrides,
            **self._extra,
        }
        answer = await self.call_blocking(self._client.submit_job, **request)
        batch_id: str = answer["jobId"]
        self._active[batch_id] = None
        return batch_id

    async def cancel(self, job: BackendJob) -> bool:
        batch_id: str = job.handle
        reason = f"cancelled by Wove (run {job.run_id})"
        try:
            await self.call_blocking(self._client.terminate_job, jobId=batch_id, reason=reason)
        except botocore.exceptions.ClientError as error:
            logger.warning("terminate_job(%s) failed: %s", batch_id, _describe_error(error))
            return False  # the worker sees the cancel flag at its next heartbeat instead
        # Batch stops a running container and never starts a queued one.
        return True

    async def status(self, job: BackendJob) -> JobStatus:
        batch_id: str = job.handle
        known = self._known.get(batch_id)
        if known is None or (
            batch_id in self._active and time.monotonic() - known[0] > _FRESH_SECONDS
        ):
            self._active.setdefault(batch_id, None)
            await self._describe_active()
            known = self._known.get(batch_id)
        return known[1] if known is not None else JobStatus("unknown")

    async def close(self) -> None:
        client, self._client = self._client, None
        self._known.clear()
        self._active.clear()
        if client is not None and self._owns_client:
            try:
                await self.call_blocking(client.close)
            except RuntimeError:
                # At interpreter exit no thread can be started any more; closing the client's
                # connection pool does not wait on the network, so it is done here instead.
                client.close()
            except Exception:
                logger.debug("closing the boto3 client failed", exc_info=True)
        await super().close()

    # -- describing jobs in batches ----------------------------------------------------------
    async def _describe_active(self) -> None:
        """One ``describe_jobs`` per 100 active jobs, shared by every status call meanwhile."""
        refresh = self._refresh
        if refresh is None or refresh.done():
            refresh = self._refresh = asyncio.get_running_loop().create_future()
            try:
                await self._describe(list(self._active))
            except BaseException as error:
                refresh.set_exception(error)
                refresh.exception()  # retrieved: the awaiting callers re-raise it below
                raise
            else:
                refresh.set_result(None)
        else:
            await asyncio.shield(refresh)

    async def _describe(self, batch_ids: list[str]) -> None:
        chunks = [
            batch_ids[start : start + DESCRIBE_BATCH]
            for start in range(0, len(batch_ids), DESCRIBE_BATCH)
        ]
        answers = await asyncio.gather(
            *(self.call_blocking(self._client.describe_jobs, jobs=chunk) for chunk in chunks)
        )
        now = time.monotonic()
        seen: set[str] = set()
        for answer in answers:
            for described in answer.get("jobs", []):
                batch_id = described["jobId"]
                seen.add(batch_id)
                status = _status(described)
                self._known[batch_id] = (now, status)
                if status.state in ("succeeded", "failed"):
                    self._active.pop(batch_id, None)
        for batch_id in set(batch_ids) - seen:
            self._known[batch_id] = (
                now,
                JobStatus("missing", f"{self._where} has no job {batch_id}"),
            )
            self._active.pop(batch_id, None)
        for batch_id, (when, _) in list(self._known.items()):
            if batch_id not in self._active and now - when > _KEEP_FINAL_SECONDS:
                del self._known[batch_id]

    # -- blocking calls, run on the adapter's threads ------------------------------------------
    def _check(self) -> None:
        queues = self._client.describe_job_queues(jobQueues=[self._queue]).get("jobQueues", [])
        if not queues:
            raise LookupError(
                f"{self._where} has no job queue {self._queue!r}; create it (with a compute "
                "environment) or correct job_queue"
            )
        state = queues[0].get("state")
        if state != "ENABLED":
            logger.warning(
                "Batch job queue %r is %s; jobs wait until it is enabled", self._queue, state
            )
        if not _definition_exists(self._client, self._definition):
            raise LookupError(
                f"{self._where} has no active job definition {self._definition!r}; register "
                "one with wove_aws_batch.register_job_definition(client, name, image, ...) or "
                "correct job_definition"
            )


def _client(settings: AWSBatchSettings, where: str) -> tuple[Any, bool]:
    """The ``batch`` client -- the one given as ``client``, or one built from boto3's chain --
    and whether the adapter made it (and so closes it)."""
    client = settings.client
    connection = {
        key: getattr(settings, key)
        for key in (
            "region_name",
            "endpoint_url",
            "profile_name",
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        )
    }
    connection_keys = sorted(key for key, value in connection.items() if value is not None)
    if client is not None:
        if connection_keys:
            raise InvalidOptionError(
                f"{where}: set client or {', '.join(connection_keys)}, not both; the client "
                "already knows its region, endpoint and credentials"
            )
        model = getattr(getattr(client, "meta", None), "service_model", None)
        service = getattr(model, "service_name", None)
        if service != "batch" or not callable(getattr(client, "submit_job", None)):
            raise InvalidOptionError(
                f"{where}: client must be a boto3 Batch client, boto3.client('batch', ...), "
                f"got {type(client).__name__}: {client!r}"
            )
        return client, False
    endpoint = settings.endpoint_url
    try:
        session = boto3.session.Session(
            profile_name=settings.profile_name,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            aws_session_token=settings.aws_session_token,
            region_name=settings.region_name,
        )
        # Standard retries ride out throttling (SubmitJob allows 50 calls a second per account).
        made = session.client(
            "batch",
            endpoint_url=endpoint,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
    except botocore.exceptions.NoRegionError:
        raise InvalidOptionError(
            f"{where}: no AWS region: set region_name='eu-west-1' (or AWS_DEFAULT_REGION, or a "
            "profile with a region)"
        ) from None
    except botocore.exceptions.BotoCoreError as error:
        raise InvalidOptionError(f"{where}: cannot create a Batch client: {error}") from None
    return made, True


def _container_overrides(
    value: ContainerOverrides | None, where: str
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Split ``container_overrides`` into its environment and the other overrides."""
    others = {} if value is None else given_options(value)
    environment = others.pop("environment", [])
    if isinstance(environment, Mapping):
        environment = [{"name": name, "value": item} for name, item in environment.items()]
    if not all("name" in item and "value" in item for item in environment):
        raise InvalidOptionError(
            f"{where}: container_overrides environment must be a list of "
            "{'name': str, 'value': str} (or a dict of str to str), got "
            f"{environment!r}"
        )
    names = {item["name"] for item in environment}
    if PAYLOAD_ENV in names:
        raise InvalidOptionError(
            f"{where}: container_overrides environment may not set {PAYLOAD_ENV}: Wove passes "
            "each job's payload in it"
        )
    if "WOVE_SECRET" in names:
        raise InvalidOptionError(
            f"{where}: do not pass WOVE_SECRET in container_overrides: anyone who may "
            "describe_jobs would read it. Give it to the job definition as a `secrets` entry "
            "(Secrets Manager or SSM Parameter Store)"
        )
    return [{"name": item["name"], "value": item["value"]} for item in environment], others


def _definition_exists(client: Any, definition: str) -> bool:
    if definition.startswith("arn:") or ":" in definition:
        found = client.describe_job_definitions(jobDefinitions=[definition])
    else:
        found = client.describe_job_definitions(jobDefinitionName=definition, status="ACTIVE")
    return any(item.get("status", "ACTIVE") == "ACTIVE" for item in found.get("jobDefinitions", []))


def _status(described: Mapping[str, Any]) -> JobStatus:
    state = described.get("status", "")
    if state in _PENDING:
        return JobStatus("pending", state)
    if state == "RUNNING":
        return JobStatus("running")
    if state == "SUCCEEDED":
        return JobStatus("succeeded")
    if state == "FAILED":
        return JobStatus("failed", _failure(described))
    return JobStatus("unknown", str(state))


def _failure(described: Mapping[str, Any]) -> str:
    """Batch's own words: the status reason, the container's reason and exit code."""
    parts: list[str] = []
    reason = described.get("statusReason")
    if reason:
        parts.append(str(reason))
    container = described.get("container") or {}
    if container.get("reason"):
        parts.append(str(container["reason"]))
    if container.get("exitCode") is not None:
        parts.append(f"exit code {container['exitCode']}")
    return "; ".join(parts) or "Batch marked the job FAILED"


def _describe_error(error: botocore.exceptions.ClientError) -> str:
    info = error.response.get("Error", {})
    return f"{info.get('Code', 'ClientError')}: {info.get('Message', error)}"


class AWSBatchExecutor(BackendExecutor):
    """The ``aws_batch`` executor: every run is a Batch job running ``python -m
    wove_aws_batch.job``.

    Its ``executor_config`` keys are declared by :class:`AWSBatchSettings`.
    """

    adapter_class = AWSBatchAdapter
