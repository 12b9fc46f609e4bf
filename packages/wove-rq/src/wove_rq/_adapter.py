"""The RQ adapter: each run becomes one RQ job on a Redis queue.

The job calls :func:`wove_rq.worker.run_payload` with the signed payload, named by its dotted
path so the submitting process never imports the worker's code. Results come back through the
callback server, not RQ's result store; RQ is asked only to hold, start, stop and describe jobs.
This is the only module of the package that imports ``redis`` and ``rq``; every call into them
blocks, so each one goes through :meth:`~wove.backends.BackendAdapter.call_blocking`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

import redis
from rq import Queue, Worker
from rq.command import send_stop_job_command
from rq.exceptions import DuplicateJobError as RQDuplicateJobError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from wove import InvalidOptionError
from wove.backends import (
    BACKEND_CONFIG_KEYS,
    BackendAdapter,
    BackendExecutor,
    BackendJob,
    BackendSettings,
    DuplicateJobError,
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

__all__ = [
    "DEFAULT_QUEUE",
    "ENQUEUE_OPTIONS",
    "RQ_CONFIG_KEYS",
    "WORKER_FUNCTION",
    "RQAdapter",
    "RQEnqueueOptions",
    "RQExecutor",
    "RQSettings",
    "rq_job_id",
]

logger = logging.getLogger("wove_rq")

#: The queue jobs go to when ``executor_config`` names none.
DEFAULT_QUEUE: Final = "wove"
#: What every job calls on the worker, by dotted path.
WORKER_FUNCTION: Final = "wove_rq.worker.run_payload"
#: RQ's own limit on running jobs is off unless ``enqueue_options`` sets one: Wove enforces the
#: task's ``timeout`` and ``delivery_timeout`` itself, and RQ's default (180 s) would kill any
#: longer task as a "failed" job.
NO_JOB_TIMEOUT: Final = -1


class RQEnqueueOptions(ExecutorSettings, kw_only=True):
    """``Queue.enqueue`` options an environment may set for every job. The job id, the
    function and its arguments are Wove's."""

    job_timeout: Annotated[
        int | str | None,
        setting(
            "how long RQ lets the job run (seconds, or a string such as `'1h'`)",
            default="none: Wove's `timeout` and `delivery_timeout` bound a task",
        ),
    ] = None
    result_ttl: Annotated[int | None, setting("seconds RQ keeps a finished job")] = None
    ttl: Annotated[int | None, setting("seconds a job may wait in the queue")] = None
    failure_ttl: Annotated[int | None, setting("seconds RQ keeps a failed job")] = None
    at_front: Annotated[bool | None, setting("put the job at the front of the queue")] = None
    description: Annotated[str | None, setting("the job's description in RQ")] = None
    meta: Annotated[Mapping[str, Any] | None, setting("the job's `meta` dict")] = None


class RQSettings(BackendSettings, kw_only=True):
    """The ``executor_config`` of an ``rq`` environment: ``redis_url`` *or* ``connection``,
    the adapter's other keys, and the ones every backend takes."""

    redis_url: Annotated[
        str | None,
        setting(
            "the Redis the workers use (`rq worker --url ...`)",
            expect="a redis://, rediss:// or unix:// URL such as 'redis://127.0.0.1:6379/0'",
            pattern=r"^(redis|rediss|unix)://",
        ),
    ] = None
    connection: Annotated[
        redis.Redis | None,
        setting(
            "a `redis.Redis` you created (`decode_responses=False`); you close it",
            expect="a redis.Redis instance (RQ needs the synchronous client; "
            "decode_responses=False), or set redis_url instead",
        ),
    ] = None
    queue: Annotated[
        str,
        setting(
            "the RQ queue your workers listen on (`rq worker ... <queue>`)",
            expect="a non-empty string naming the RQ queue your workers listen on",
            min_length=1,
        ),
    ] = DEFAULT_QUEUE
    enqueue_options: Annotated[
        RQEnqueueOptions | None, setting("passed to `Queue.enqueue_call` for every job")
    ] = None


#: ``executor_config`` keys of the adapter, beyond the ones every backend takes.
RQ_CONFIG_KEYS: Final = setting_keys(RQSettings) - BACKEND_CONFIG_KEYS
#: ``enqueue_options`` keys passed on to RQ. ``job_timeout`` is RQ's ``Queue.enqueue``
#: spelling of ``enqueue_call``'s ``timeout``.
ENQUEUE_OPTIONS: Final = setting_keys(RQEnqueueOptions)

_RQ_JOB_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
_NOT_RQ: Final = re.compile(r"[^A-Za-z0-9_-]+")
_URL_SCHEMES: Final = ("redis://", "rediss://", "unix://")

_PENDING: Final = frozenset(
    {"created", "queued", "deferred", "scheduled", "rate_limited", "ready_to_enqueue"}
)
_WAITING_OUTSIDE_THE_QUEUE: Final = frozenset({"deferred", "scheduled", "rate_limited"})


def rq_job_id(job_id: str) -> str:
    """The RQ job id Wove uses for ``job_id`` (an idempotency key, or a run id).

    RQ accepts only letters, digits, ``_`` and ``-``. An id made of those alone (at most 128
    characters) is used unchanged, so ``delivery_idempotency_key="invoice-42"`` is RQ job
    ``invoice-42``. Any other id has each run of other characters replaced by ``_``, is cut to
    100 characters, and gets ``-`` plus 16 hex digits of its SHA-256, so two keys that differ
    only in the replaced characters still get two jobs: ``"order 7/eu"`` becomes
    ``order_7_eu-<digest>``.

    Example:
        >>> rq_job_id("invoice-42")
        'invoice-42'
        >>> rq_job_id("order 7/eu").startswith("order_7_eu-")
        True
    """
    return safe_job_name(
        job_id, valid=_RQ_JOB_ID, invalid=_NOT_RQ, replacement="_", base_length=100
    )


class RQAdapter(BackendAdapter):
    """Enqueue, cancel and poll Wove runs as RQ jobs; see the module docstring."""

    name = "rq"
    settings_class = RQSettings

    def __init__(self) -> None:
        super().__init__()
        self._redis: redis.Redis | None = None
        self._owns_connection = False
        self._queue: Queue | None = None
        self._options: dict[str, Any] = {}
        self._where = "Redis"

    # -- the BackendAdapter contract -----------------------------------------------------------
    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        settings = self.configured(RQSettings, environment_name, config)
        where = config_location(environment_name, self.name)
        connection, owned = _connection(settings, where)
        queue_name = settings.queue
        options = settings.enqueue_options
        self._options = {} if options is None else given_options(options)
        self._redis, self._owns_connection = connection, owned
        self._where = _describe(connection)
        self._queue = Queue(queue_name, connection=connection)
        try:
            workers = await self.call_blocking(self._check, self._queue)
        except redis.exceptions.RedisError as error:
            await self.close()
            raise ConnectionError(
                f"{where}: cannot reach Redis at {self._where} ({type(error).__name__}: "
                f"{error}); start Redis or correct redis_url/connection"
            ) from error
        if not workers:
            logger.warning(
                "no RQ worker listens on queue %r at %s yet; jobs wait there until one starts "
                "(rq worker --url <redis url> %s)",
                queue_name,
                self._where,
                queue_name,
            )

    async def submit(self, job: BackendJob) -> Job:
        job_id = rq_job_id(job.job_id)
        try:
            return await self.call_blocking(self._enqueue, job_id, job.payload)
        except RQDuplicateJobError as error:
            raise DuplicateJobError(
                f"Redis at {self._where} already holds RQ job {job_id!r}; RQ keeps finished jobs "
                "for result_ttl and failed ones for failure_ttl (enqueue_options)"
            ) from error

    async def cancel(self, job: BackendJob) -> bool:
        rq_job: Job = job.handle
        return await self.call_blocking(self._cancel, rq_job)

    async def status(self, job: BackendJob) -> JobStatus:
        rq_job: Job = job.handle
        return await self.call_blocking(_status, rq_job)

    async def close(self) -> None:
        connection, self._redis = self._redis, None
        self._queue = None
        if connection is not None and self._owns_connection:
            try:
                await self.call_blocking(connection.close)
            except RuntimeError:
                # At interpreter exit no thread can be started any more; closing sockets does
                # not wait on the network, so it is done here instead.
                connection.close()
            except redis.exceptions.RedisError:
                logger.debug("closing the Redis connection failed", exc_info=True)
        await super().close()

    # -- blocking calls, run on the adapter's threads ------------------------------------------
    @staticmethod
    def _check(queue: Queue) -> int:
        queue.connection.ping()
        return Worker.count(connection=queue.connection, queue=queue)

    def _enqueue(self, job_id: str, payload: str) -> Job:
        if self._queue is None:
            raise RuntimeError("the rq adapter was closed")
        options = dict(self._options)
        timeout = options.pop("job_timeout", NO_JOB_TIMEOUT)
        return self._queue.enqueue_call(
            WORKER_FUNCTION,
            args=(payload,),
            timeout=timeout,
            job_id=job_id,
            unique=True,  # never overwrite a job that holds this id, perhaps running
            **options,
        )

    def _cancel(self, rq_job: Job) -> bool:
        queue = self._queue
        if queue is None:
            return False
        # LREM is atomic: when it removed the id, no worker has the job and none ever will.
        if queue.remove(rq_job.id):
            _mark_canceled(rq_job)
            return True
        try:
            state = _state(rq_job.get_status(refresh=True))
        except (NoSuchJobError, InvalidJobOperation):
            return False  # deleted: it ran and expired, or someone removed it
        if state in _WAITING_OUTSIDE_THE_QUEUE:
            _mark_canceled(rq_job)
            return True
        if state == "started":
            try:
                # Kills the work horse (a forking worker); a SimpleWorker cannot obey.
                send_stop_job_command(queue.connection, rq_job.id)
            except (NoSuchJobError, InvalidJobOperation):
                return False  # it ended meanwhile, after reporting its outcome
            return True
        return False  # dequeued but not started yet, or already over: the worker sees the flag


def _connection(settings: RQSettings, where: str) -> tuple[redis.Redis, bool]:
    """The Redis client from ``redis_url`` or ``connection``, and whether the adapter owns it."""
    url, connection = settings.redis_url, settings.connection
    if url is not None and connection is not None:
        raise InvalidOptionError(
            f"{where}: set redis_url or connection, not both; redis_url makes the adapter open "
            "its own connection, connection reuses a redis.Redis you created"
        )
    if connection is not None:
        if connection.connection_pool.connection_kwargs.get("decode_responses"):
            raise InvalidOptionError(
                f"{where}: connection was created with decode_responses=True, but RQ stores "
                "pickled jobs and needs bytes; create it with decode_responses=False"
            )
        return connection, False
    if url is None:
        raise InvalidOptionError(
            f"{where}: no Redis to enqueue to; set redis_url='redis://127.0.0.1:6379/0' (the "
            "Redis your `rq worker --url ...` uses) or connection=redis.Redis(...)"
        )
    try:
        return redis.Redis.from_url(url), True
    except ValueError as error:
        raise InvalidOptionError(f"{where}: redis_url {url!r} is not valid: {error}") from None


def _describe(connection: redis.Redis) -> str:
    """Where ``connection`` points, without its password, for messages."""
    kwargs = connection.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


def _state(status: Any) -> str:
    return str(getattr(status, "value", status))


def _mark_canceled(rq_job: Job) -> None:
    try:
        rq_job.cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass  # already cancelled, or gone: either way it will not run


def _status(rq_job: Job) -> JobStatus:
    try:
        state = _state(rq_job.get_status(refresh=True))
    except (NoSuchJobError, InvalidJobOperation):
        return JobStatus("missing", "RQ has no such job (deleted, or its TTL expired)")
    if state in _PENDING:
        return JobStatus("pending", state)
    if state == "started":
        return JobStatus("running")
    if state == "finished":
        return JobStatus("succeeded")
    if state == "failed":
        return JobStatus("failed", _failure(rq_job))
    if state in ("stopped", "canceled"):
        return JobStatus("cancelled", state)
    return JobStatus("unknown", state)


def _failure(rq_job: Job) -> str:
    """The last line of the job's exception, as RQ stored it."""
    try:
        result = rq_job.latest_result()
    except redis.exceptions.RedisError:
        return "RQ marked the job failed"
    text = (getattr(result, "exc_string", None) or "").strip()
    if not text:
        return "RQ marked the job failed"
    return text.splitlines()[-1]


class RQExecutor(BackendExecutor):
    """The ``rq`` executor: every run is an RQ job calling ``wove_rq.worker.run_payload``.

    Its ``executor_config`` keys are declared by :class:`RQSettings`.
    """

    adapter_class = RQAdapter
