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
from typing import Any, Final

import boto3
import botocore.exceptions
from botocore.config import Config

from wove import InvalidOptionError
from wove.backends import BackendAdapter, BackendExecutor, BackendJob, JobStatus, safe_job_name

from .job import PAYLOAD_ENV

__all__ = [
    "AWS_BATCH_CONFIG_KEYS",
    "MAX_CONTAINER_OVERRIDES",
    "AWSBatchAdapter",
    "AWSBatchExecutor",
    "batch_job_name",
]

logger = logging.getLogger("wove_aws_batch")

#: ``executor_config`` keys of the adapter, beyond the ones every backend takes.
AWS_BATCH_CONFIG_KEYS: Final = frozenset(
    {
        "job_queue",
        "job_definition",
        "client",
        "region_name",
        "endpoint_url",
        "profile_name",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "container_overrides",
        "share_identifier",
        "scheduling_priority",
        "python",
    }
)
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
#: ``container_overrides`` keys passed on to Batch; the command is Wove's.
OVERRIDE_KEYS: Final = frozenset(
    {"environment", "resourceRequirements", "instanceType", "vcpus", "memory"}
)

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
    config_keys = AWS_BATCH_CONFIG_KEYS
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
        where = f"executor_config of environment {environment_name!r} (executor 'aws_batch')"
        self._queue = _required_name(config, "job_queue", where, "the Batch job queue")
        self._definition = _required_name(
            config,
            "job_definition",
            where,
            "the job definition (name, name:revision or ARN; wove_aws_batch."
            "register_job_definition creates one)",
        )
        python = config.get("python", "python3")
        if not isinstance(python, str) or not python:
            raise InvalidOptionError(
                f"{where}: python must be the interpreter's name or path inside the job's "
                f"image, such as 'python3' or '/opt/venv/bin/python', got {python!r}"
            )
        self._python = python
        self._environment, self._overrides = _container_overrides(
            config.get("container_overrides", {}), where
        )
        self._extra = _scheduling(config, where)
        inline = config.get("max_inline_payload_bytes")
        if isinstance(inline, int) and not isinstance(inline, bool) and inline > LARGEST_INLINE:
            raise InvalidOptionError(
                f"{where}: max_inline_payload_bytes={inline} is too large for AWS Batch: the "
                f"payload travels in a container override, and Batch fails jobs whose "
                f"overrides exceed {MAX_CONTAINER_OVERRIDES} bytes. Use at most "
                f"{LARGEST_INLINE} (the default {DEFAULT_MAX_INLINE} sends larger payloads as "
                "a signed reference the job fetches from the callback server)"
            )
        # Building a client reads config files and may resolve credentials over the network.
        self._client, self._owns_client = await self.call_blocking(_client, config, where)
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


def _required_name(config: Mapping[str, Any], key: str, where: str, what: str) -> str:
    value = config.get(key)
    if value is None:
        raise InvalidOptionError(f"{where}: {key} is required: {what}")
    if not isinstance(value, str) or not value:
        raise InvalidOptionError(
            f"{where}: {key} must be a non-empty string naming {what}, got {value!r}"
        )
    return value


def _client(config: Mapping[str, Any], where: str) -> tuple[Any, bool]:
    """The ``batch`` client -- the one given as ``client``, or one built from boto3's chain --
    and whether the adapter made it (and so closes it)."""
    client = config.get("client")
    connection_keys = sorted(
        key
        for key in (
            "region_name",
            "endpoint_url",
            "profile_name",
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        )
        if config.get(key) is not None
    )
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
    for key in connection_keys:
        if not isinstance(config[key], str) or not config[key]:
            raise InvalidOptionError(
                f"{where}: {key} must be a non-empty string, got {config[key]!r}"
            )
    endpoint = config.get("endpoint_url")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise InvalidOptionError(
            f"{where}: endpoint_url must be an http:// or https:// URL, got {endpoint!r}"
        )
    try:
        session = boto3.session.Session(
            profile_name=config.get("profile_name"),
            aws_access_key_id=config.get("aws_access_key_id"),
            aws_secret_access_key=config.get("aws_secret_access_key"),
            aws_session_token=config.get("aws_session_token"),
            region_name=config.get("region_name"),
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


def _container_overrides(value: Any, where: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Split ``container_overrides`` into its environment and the other overrides."""
    if not isinstance(value, Mapping):
        raise InvalidOptionError(
            f"{where}: container_overrides must be a dict of Batch containerOverrides such as "
            f"{{'environment': [{{'name': 'STAGE', 'value': 'prod'}}]}}, got "
            f"{type(value).__name__}: {value!r}"
        )
    if "command" in value:
        raise InvalidOptionError(
            f"{where}: container_overrides may not set command: every job runs "
            "`<python> -m wove_aws_batch.job`; set python to choose the interpreter"
        )
    unknown = sorted(str(key) for key in value if key not in OVERRIDE_KEYS)
    if unknown:
        raise InvalidOptionError(
            f"{where}: container_overrides does not take {', '.join(map(repr, unknown))}; it "
            f"takes {', '.join(sorted(OVERRIDE_KEYS))}"
        )
    environment = value.get("environment", [])
    if isinstance(environment, Mapping):
        environment = [{"name": name, "value": item} for name, item in environment.items()]
    if not isinstance(environment, list) or not all(
        isinstance(item, Mapping)
        and isinstance(item.get("name"), str)
        and isinstance(item.get("value"), str)
        for item in environment
    ):
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
    others = {key: item for key, item in value.items() if key != "environment"}
    return [{"name": item["name"], "value": item["value"]} for item in environment], others


def _scheduling(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    share = config.get("share_identifier")
    if share is not None:
        if not isinstance(share, str) or not share:
            raise InvalidOptionError(
                f"{where}: share_identifier must be a non-empty string (the fair-share "
                f"identifier of the queue's scheduling policy), got {share!r}"
            )
        extra["shareIdentifier"] = share
    priority = config.get("scheduling_priority")
    if priority is not None:
        if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
            raise InvalidOptionError(
                f"{where}: scheduling_priority must be an integer >= 0 (higher runs first in "
                f"a fair-share queue), got {priority!r}"
            )
        extra["schedulingPriorityOverride"] = priority
    return extra


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

    ``executor_config`` keys, besides the ones every backend takes (see
    :class:`wove.backends.BackendExecutor`):

    * ``job_queue``, ``job_definition`` (required);
    * ``client`` (a ``boto3.client('batch')``) *or* ``region_name``, ``endpoint_url``,
      ``profile_name``, ``aws_access_key_id``/``aws_secret_access_key``/``aws_session_token``
      (else boto3's usual credential chain);
    * ``container_overrides``: ``environment``, ``resourceRequirements``... merged with Wove's
      command and ``WOVE_PAYLOAD``;
    * ``share_identifier``, ``scheduling_priority``: passed to ``submit_job``;
    * ``python``: the interpreter in the image (default ``python3``).
    """

    adapter_class = AWSBatchAdapter
