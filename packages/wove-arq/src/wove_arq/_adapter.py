"""The ``arq`` backend adapter: each Wove run becomes one ARQ job on a Redis queue.

The adapter only enqueues the signed payload; an ARQ worker running
:func:`wove_arq.wove_run` executes it and reports back to the callback server. ARQ's client is
asyncio-native, so every call here is awaited directly on the dispatch loop -- no thread pool.

* **job ids** -- each job gets ``_job_id=job.job_id`` (the idempotency key, or the run id), so
  ARQ's own uniqueness check refuses a second job with the same key while the first is queued,
  running, or its result is kept (``keep_result`` on the worker, an hour by default);
* **cancel** -- :meth:`arq.jobs.Job.abort`: a queued job is dropped by the worker before it
  starts, a running one has its asyncio task cancelled (workers need ``allow_abort_jobs``);
* **status** -- :meth:`arq.jobs.Job.status`, plus :meth:`~arq.jobs.Job.result_info` to tell a
  failed job from a finished one.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import default_queue_name
from arq.jobs import Job
from arq.jobs import JobStatus as ArqJobStatus

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
    setting,
    setting_keys,
)

if TYPE_CHECKING:
    from arq.jobs import JobResult

__all__ = [
    "ARQ_CONFIG_KEYS",
    "ENQUEUE_OPTIONS",
    "ArqAdapter",
    "ArqEnqueueOptions",
    "ArqExecutor",
    "ArqSettings",
]

#: The worker function :func:`wove_arq.worker_settings` registers.
DEFAULT_FUNCTION: Final = "wove_run"
#: Seconds a cancel waits for the worker to confirm an abort before leaving it to heartbeats.
DEFAULT_ABORT_TIMEOUT: Final = 5.0


class ArqEnqueueOptions(ExecutorSettings, kw_only=True):
    """``enqueue_job`` options an environment may set for every job it submits. ``_job_id``
    and ``_queue_name`` are Wove's to choose (idempotency and the ``queue`` key)."""

    _defer_by: Annotated[
        Seconds | None, setting("start the job this long after it is enqueued", ge=0)
    ] = None
    _defer_until: Annotated[
        datetime.datetime | None, setting("start the job at this time", expect="a datetime")
    ] = None
    _expires: Annotated[
        Seconds | None, setting("drop the job if it has not started this long after", gt=0)
    ] = None
    _job_try: Annotated[int | None, setting("the attempt number ARQ starts counting at", ge=1)] = (
        None
    )


class ArqSettings(BackendSettings, kw_only=True):
    """The ``executor_config`` of an ``arq`` environment: one Redis connection (``redis_url``,
    ``redis_settings`` or ``pool``), the adapter's own keys and the ones every backend takes."""

    redis_url: Annotated[
        str | None,
        setting(
            "the Redis the workers use, as a URL",
            expect="a redis://, rediss:// or unix:// URL string",
            pattern=r"^(redis|rediss|unix)://",
        ),
    ] = None
    redis_settings: Annotated[
        RedisSettings | None,
        setting(
            "the Redis the workers use, as an `arq.connections.RedisSettings`",
            expect="an arq.connections.RedisSettings (for a URL string use redis_url instead)",
        ),
    ] = None
    pool: Annotated[
        ArqRedis | None,
        setting(
            "an `ArqRedis` from `arq.create_pool` to enqueue through; you close it",
            expect="an arq.connections.ArqRedis (from arq.create_pool)",
        ),
    ] = None
    function: Annotated[
        str,
        setting("the name the workers registered `wove_arq.wove_run` under", min_length=1),
    ] = DEFAULT_FUNCTION
    queue: Annotated[
        str | None,
        setting(
            "the queue jobs go to; the workers must read it",
            default="`pool`'s default queue, else ARQ's",
            min_length=1,
        ),
    ] = None
    enqueue_options: Annotated[
        ArqEnqueueOptions | None,
        setting(
            "`enqueue_job` options for every job",
            reserved={
                "_job_id": "Wove sets _job_id from the idempotency key (or run id)",
                "_queue_name": "the queue comes from the queue key",
            },
        ),
    ] = None
    abort_timeout: Annotated[
        Seconds,
        setting(
            "how long a cancel waits for the worker to confirm an abort (workers need "
            "`allow_abort_jobs`); after that the worker notices the cancel at its next heartbeat",
            ge=0,
        ),
    ] = DEFAULT_ABORT_TIMEOUT


#: ``executor_config`` keys of an ``arq`` environment, besides the shared backend keys.
ARQ_CONFIG_KEYS: Final = setting_keys(ArqSettings) - BACKEND_CONFIG_KEYS
#: ``enqueue_job`` options an environment may set for every job it submits.
ENQUEUE_OPTIONS: Final = setting_keys(ArqEnqueueOptions)
#: How often an abort polls Redis for the aborted job's result.
_ABORT_POLL: Final = 0.05


class ArqAdapter(BackendAdapter):
    """Enqueue each run as an ARQ job; abort, inspect and close through ARQ's own client."""

    name: ClassVar[str] = "arq"
    settings_class = ArqSettings

    def __init__(self) -> None:
        super().__init__()
        self._pool: ArqRedis | None = None
        self._owns_pool = False
        self._function = DEFAULT_FUNCTION
        self._queue = default_queue_name
        self._enqueue_options: dict[str, Any] = {}
        self._abort_timeout = DEFAULT_ABORT_TIMEOUT

    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        """Connect once; the pool serves every later weave."""
        settings = self.configured(ArqSettings, environment_name, config)
        where = config_location(environment_name, self.name)
        self._function = settings.function
        options = settings.enqueue_options
        self._enqueue_options = {} if options is None else given_options(options)
        self._abort_timeout = settings.abort_timeout
        redis = _redis_settings(settings, where)
        if settings.pool is not None:
            self._queue = settings.queue or settings.pool.default_queue_name
            self._pool, self._owns_pool = settings.pool, False
            return
        self._queue = settings.queue or default_queue_name
        try:
            self._pool = await create_pool(redis, default_queue_name=self._queue)
        except Exception as error:
            raise ConnectionError(
                f"{where}: cannot reach Redis at {_describe(redis)}: "
                f"{type(error).__name__}: {error}. Start Redis or fix redis_url/redis_settings"
            ) from error
        self._owns_pool = True

    async def submit(self, job: BackendJob) -> Job:
        """Enqueue the payload under the run's job id; ``None`` back from ARQ is a duplicate."""
        pool = self._require_pool()
        enqueued = await pool.enqueue_job(
            self._function,
            job.payload,
            _job_id=job.job_id,
            _queue_name=self._queue,
            **self._enqueue_options,
        )
        if enqueued is None:
            raise DuplicateJobError(
                f"ARQ already holds job {job.job_id!r} in Redis (queued, running, or finished "
                "with its result kept for the worker's keep_result); use a new idempotency key "
                "to run the task again"
            )
        return enqueued

    async def cancel(self, job: BackendJob) -> bool:
        """Abort the job; ``True`` once the worker confirmed it dropped or cancelled it.

        An abort the worker does not confirm within ``abort_timeout`` (a worker without
        ``allow_abort_jobs``, or one too busy to poll) returns ``False``: the run's worker
        still sees the cancel in the answer to its next heartbeat.
        """
        handle: Job = job.handle
        try:
            aborted = await handle.abort(timeout=self._abort_timeout, poll_delay=_ABORT_POLL)
        except asyncio.TimeoutError:
            return False
        return aborted

    async def status(self, job: BackendJob) -> JobStatus:
        """Map ARQ's job status (and, for a finished job, its result record) onto Wove's."""
        handle: Job = job.handle
        state = await handle.status()
        if state in (ArqJobStatus.deferred, ArqJobStatus.queued):
            return JobStatus("pending", state.value)
        if state == ArqJobStatus.in_progress:
            return JobStatus("running")
        if state == ArqJobStatus.not_found:
            return JobStatus("missing", "ARQ has no record of the job (expired or removed)")
        info = await handle.result_info()
        if info is None:  # the result expired between the two calls
            return JobStatus("missing", "the job's result record expired")
        return _finished(info)

    async def close(self) -> None:
        """Close the pool this adapter created; a pool passed in belongs to its owner."""
        pool, self._pool = self._pool, None
        if pool is not None and self._owns_pool:
            await pool.aclose()
        await super().close()

    def _require_pool(self) -> ArqRedis:
        if self._pool is None:
            raise RuntimeError("the arq adapter is not started (or already closed)")
        return self._pool


class ArqExecutor(BackendExecutor):
    """The ``arq`` executor: Wove runs as ARQ jobs, results back through the callback server.

    Example:
        >>> import wove
        >>> wove.config(
        ...     environments={
        ...         "queue": {
        ...             "executor": "arq",
        ...             "executor_config": {
        ...                 "redis_url": "redis://127.0.0.1:6379/0",
        ...                 "security": "env:WOVE_SECRET",
        ...             },
        ...         }
        ...     }
        ... )
    """

    adapter_class = ArqAdapter


def _finished(info: JobResult) -> JobStatus:
    if info.success:
        return JobStatus("succeeded", f"returned {info.result!r}")
    result = info.result
    if isinstance(result, asyncio.CancelledError):
        return JobStatus("cancelled", "aborted in ARQ")
    return JobStatus("failed", f"{type(result).__name__}: {result}")


def _redis_settings(settings: ArqSettings, where: str) -> RedisSettings:
    """The one connection setting given, as :class:`RedisSettings` (unused when ``pool``)."""
    given = [
        key
        for key, value in (
            ("redis_settings", settings.redis_settings),
            ("redis_url", settings.redis_url),
            ("pool", settings.pool),
        )
        if value is not None
    ]
    if not given:
        raise InvalidOptionError(
            f"{where}: no Redis connection: set redis_url='redis://host:6379/0', "
            "redis_settings=arq.connections.RedisSettings(...) or pool=<an ArqRedis from "
            "arq.create_pool>; the workers must use the same Redis and queue"
        )
    if len(given) > 1:
        raise InvalidOptionError(
            f"{where}: {' and '.join(given)} both name a Redis connection; keep only one"
        )
    if settings.redis_settings is not None:
        return settings.redis_settings
    if settings.redis_url is not None:
        try:
            return RedisSettings.from_dsn(settings.redis_url)
        except ValueError as error:
            raise InvalidOptionError(
                f"{where}: redis_url {settings.redis_url!r} is malformed: {error}"
            ) from None
    return RedisSettings()  # pool given: never used


def _describe(settings: RedisSettings) -> str:
    if settings.unix_socket_path:
        return f"unix socket {settings.unix_socket_path} (database {settings.database})"
    return f"{settings.host}:{settings.port} (database {settings.database})"
