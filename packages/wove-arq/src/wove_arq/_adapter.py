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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import default_queue_name
from arq.jobs import Job
from arq.jobs import JobStatus as ArqJobStatus

from wove import InvalidOptionError
from wove.backends import BackendAdapter, BackendExecutor, BackendJob, DuplicateJobError, JobStatus

if TYPE_CHECKING:
    from arq.jobs import JobResult

__all__ = ["ARQ_CONFIG_KEYS", "ENQUEUE_OPTIONS", "ArqAdapter", "ArqExecutor"]

#: ``executor_config`` keys of an ``arq`` environment, besides the shared backend keys.
ARQ_CONFIG_KEYS: Final = frozenset(
    {"redis_settings", "redis_url", "pool", "function", "queue", "enqueue_options", "abort_timeout"}
)
#: ``enqueue_job`` options an environment may set for every job it submits. ``_job_id`` and
#: ``_queue_name`` are Wove's to choose (idempotency and the ``queue`` key).
ENQUEUE_OPTIONS: Final = frozenset({"_defer_by", "_defer_until", "_expires", "_job_try"})
#: The worker function :func:`wove_arq.worker_settings` registers.
DEFAULT_FUNCTION: Final = "wove_run"
#: Seconds a cancel waits for the worker to confirm an abort before leaving it to heartbeats.
DEFAULT_ABORT_TIMEOUT: Final = 5.0
#: How often an abort polls Redis for the aborted job's result.
_ABORT_POLL: Final = 0.05


class ArqAdapter(BackendAdapter):
    """Enqueue each run as an ARQ job; abort, inspect and close through ARQ's own client."""

    name: ClassVar[str] = "arq"
    config_keys: ClassVar[frozenset[str]] = ARQ_CONFIG_KEYS

    def __init__(self) -> None:
        super().__init__()
        self._pool: ArqRedis | None = None
        self._owns_pool = False
        self._function = DEFAULT_FUNCTION
        self._queue = default_queue_name
        self._enqueue_options: dict[str, Any] = {}
        self._abort_timeout = DEFAULT_ABORT_TIMEOUT

    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        """Check the ARQ keys, then connect once; the pool serves every later weave."""
        where = f"executor_config of environment {environment_name!r} (executor 'arq')"
        self._function = _text(config, "function", DEFAULT_FUNCTION, where)
        self._enqueue_options = _enqueue_options(config.get("enqueue_options"), where)
        timeout = config.get("abort_timeout", DEFAULT_ABORT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise InvalidOptionError(
                f"{where}: abort_timeout must be a number of seconds >= 0, got {timeout!r}"
            )
        self._abort_timeout = float(timeout)
        pool = config.get("pool")
        settings = _redis_settings(config, where)
        if pool is not None:
            if not isinstance(pool, ArqRedis):
                raise InvalidOptionError(
                    f"{where}: pool must be an arq.connections.ArqRedis (from arq.create_pool), "
                    f"got a {type(pool).__module__}.{type(pool).__qualname__}"
                )
            self._queue = _text(config, "queue", pool.default_queue_name, where)
            self._pool, self._owns_pool = pool, False
            return
        self._queue = _text(config, "queue", default_queue_name, where)
        try:
            self._pool = await create_pool(settings, default_queue_name=self._queue)
        except Exception as error:
            raise ConnectionError(
                f"{where}: cannot reach Redis at {_describe(settings)}: "
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


def _redis_settings(config: Mapping[str, Any], where: str) -> RedisSettings:
    """The one connection setting given, as :class:`RedisSettings` (unused when ``pool``)."""
    given = [key for key in ("redis_settings", "redis_url", "pool") if config.get(key) is not None]
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
    settings = config.get("redis_settings")
    url = config.get("redis_url")
    if settings is not None:
        if not isinstance(settings, RedisSettings):
            raise InvalidOptionError(
                f"{where}: redis_settings must be an arq.connections.RedisSettings, got "
                f"{settings!r}; for a URL string use redis_url instead"
            )
        return settings
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise InvalidOptionError(
                f"{where}: redis_url must be a redis://, rediss:// or unix:// URL string, "
                f"got {url!r}"
            )
        try:
            return RedisSettings.from_dsn(url)
        except ValueError as error:
            raise InvalidOptionError(f"{where}: redis_url {url!r} is malformed: {error}") from None
    return RedisSettings()  # pool given: never used


def _enqueue_options(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidOptionError(
            f"{where}: enqueue_options must be a dict of enqueue_job options, got {value!r}"
        )
    reserved = sorted(key for key in value if key in ("_job_id", "_queue_name"))
    if reserved:
        raise InvalidOptionError(
            f"{where}: enqueue_options may not set {', '.join(reserved)}: Wove sets _job_id "
            "from the idempotency key (or run id), and the queue comes from the queue key"
        )
    unknown = sorted(str(key) for key in value if key not in ENQUEUE_OPTIONS)
    if unknown:
        raise InvalidOptionError(
            f"{where}: unknown enqueue_options {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(sorted(ENQUEUE_OPTIONS))}"
        )
    return dict(value)


def _text(config: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = config.get(key, default)
    if not isinstance(value, str) or not value:
        raise InvalidOptionError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _describe(settings: RedisSettings) -> str:
    if settings.unix_socket_path:
        return f"unix socket {settings.unix_socket_path} (database {settings.database})"
    return f"{settings.host}:{settings.port} (database {settings.database})"
