"""The weave side of the ``taskiq`` executor: one Taskiq job per run, kicked by name.

Each run becomes one message for the task the workers registered with
:func:`wove_taskiq.register_wove_task` (``wove.run`` unless told otherwise), whose only argument
is the run's signed payload line. The job's Taskiq task id is :attr:`BackendJob.job_id` -- the
task's ``delivery_idempotency_key`` when it has one -- and the run id travels as the label
:data:`RUN_ID_LABEL`, which Taskiq copies into the job's stored result; that is how a status
poll tells this run's result from an older job's under the same key.

What Taskiq cannot do, and what Wove does instead:

* **cancel** -- Taskiq has no revoke. A job still in the queue is cancelled on the spot: the
  run is unregistered from the callback server, which refuses the job's claim when a worker
  takes it, so its body never runs. A running job is flagged instead, and sees the flag in the
  answer to its next heartbeat (async bodies stop; sync bodies run in a thread and finish on
  their own, their result discarded).
* **duplicates** -- Taskiq does not deduplicate task ids; a second copy of a job is refused by
  the callback server's claim (the first claim wins), so it never runs either.
* **status** -- only a result backend knows how a job ended. Without one every poll answers
  ``unknown``, and a dead worker is noticed by heartbeat silence alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

from taskiq import AsyncBroker
from taskiq.exceptions import SendTaskError
from taskiq.kicker import AsyncKicker
from taskiq.result_backends.dummy import DummyResultBackend

from wove import InvalidOptionError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend
from wove.backends import (
    BACKEND_CONFIG_KEYS,
    BackendAdapter,
    BackendExecutor,
    BackendJob,
    BackendSettings,
    JobStatus,
)
from wove.plugins import config_location, setting, setting_keys
from wove.worker import NOT_CLAIMED

__all__ = [
    "DEFAULT_TASK_NAME",
    "NOT_CLAIMED",
    "RUN_ID_LABEL",
    "TASKIQ_CONFIG_KEYS",
    "TaskiqAdapter",
    "TaskiqExecutor",
    "TaskiqSettings",
]

logger = logging.getLogger(__name__)

#: The Taskiq task name workers register and the adapter kicks, unless ``task_name`` says.
DEFAULT_TASK_NAME: Final = "wove.run"
#: The label carrying the run id; Taskiq stores a job's labels with its result.
RUN_ID_LABEL: Final = "wove_run_id"
#: Seconds results stay in Redis when the adapter builds the broker from ``broker_url``.
RESULT_TTL_SECONDS: Final = 3600
#: A failed send is tried this many times in all, so a broker that restarts between weaves
#: (its pooled connections now dead) costs a reconnect, not a failed run. A send that went
#: through twice is harmless: the callback server lets only one copy claim the run.
_SEND_ATTEMPTS: Final = 3
_SEND_BACKOFF: Final = 0.25
#: How long closing waits for broker calls still in flight.
_CLOSE_WAIT_SECONDS: Final = 5.0

T = TypeVar("T")


class TaskiqSettings(BackendSettings, kw_only=True):
    """The ``executor_config`` of a ``taskiq`` environment: ``broker`` *or* ``broker_url``,
    the adapter's other keys, and the ones every backend takes."""

    broker: Annotated[
        AsyncBroker | None,
        setting(
            "a `taskiq.AsyncBroker` (such as `taskiq_redis.ListQueueBroker` with a result "
            "backend) configured like the one the workers run; the environment starts it and "
            "shuts it down on Wove's dispatch loop, so give it a broker object of its own",
            expect="a taskiq AsyncBroker (e.g. taskiq_redis.ListQueueBroker(url))",
        ),
    ] = None
    broker_url: Annotated[
        str | None,
        setting(
            "instead of `broker`, a Redis URL: the adapter builds a `ListQueueBroker` with a "
            "`RedisAsyncResultBackend` on it (needs `pip install 'wove-taskiq[redis]'`); "
            "workers use the same URL and the default queue",
            expect="a Redis URL such as 'redis://127.0.0.1:6379/0' (for another broker pass "
            "broker=<a taskiq AsyncBroker>)",
            pattern=r"^(redis|rediss|unix)://",
        ),
    ] = None
    task_name: Annotated[
        str,
        setting(
            "the name the workers registered `wove_taskiq.register_wove_task` under",
            expect="the non-empty name the workers registered with wove_taskiq.register_wove_task",
            min_length=1,
        ),
    ] = DEFAULT_TASK_NAME
    labels: Annotated[
        Mapping[str, Any],
        setting(
            "Taskiq labels sent with every job (`queue_name` picks the Redis list of a "
            "`ListQueueBroker`; `priority`, `timeout`... whatever the broker reads)",
            expect="a dict of Taskiq labels with string keys, e.g. {'queue_name': 'wove'}",
            reserved={RUN_ID_LABEL: "it is set by Wove on every job; remove it"},
        ),
    ] = {}


#: ``executor_config`` keys of the taskiq adapter (besides the shared backend keys).
TASKIQ_CONFIG_KEYS: Final = setting_keys(TaskiqSettings) - BACKEND_CONFIG_KEYS


class TaskiqAdapter(BackendAdapter):
    """Kick one Taskiq job per run, ask the result backend how jobs ended; the environment's
    keys are declared by :class:`TaskiqSettings`."""

    name = "taskiq"
    settings_class = TaskiqSettings

    def __init__(self) -> None:
        super().__init__()
        self._broker: AsyncBroker | None = None
        self._task_name = DEFAULT_TASK_NAME
        self._labels: dict[str, Any] = {}
        self._has_results = False
        self._in_flight: set[asyncio.Task[Any]] = set()

    @property
    def broker(self) -> AsyncBroker:
        """The started broker jobs are kicked through."""
        if self._broker is None:
            raise RuntimeError("the taskiq adapter was not started")
        return self._broker

    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        settings = self.configured(TaskiqSettings, environment_name, config)
        where = config_location(environment_name, self.name)
        broker, url = settings.broker, settings.broker_url
        if broker is not None and url is not None:
            raise InvalidOptionError(
                f"{where}: give either broker or broker_url, not both; broker_url only builds "
                "a Redis ListQueueBroker for you"
            )
        if broker is None and url is None:
            raise InvalidOptionError(
                f"{where}: no broker: set broker_url='redis://HOST:6379/0' (a Redis "
                "ListQueueBroker with a result backend; pip install 'wove-taskiq[redis]'), or "
                "broker=<a taskiq AsyncBroker configured like the one your workers run with "
                "`taskiq worker module:broker`>"
            )
        if url is not None:
            broker = await _redis_broker(url, where)
        assert broker is not None
        self._task_name = settings.task_name
        self._labels = dict(settings.labels)
        self._has_results = not isinstance(broker.result_backend, DummyResultBackend)
        await broker.startup()
        self._broker = broker

    async def submit(self, job: BackendJob) -> Any:

        broker = self.broker
        for attempt in range(1, _SEND_ATTEMPTS + 1):
            kicker: AsyncKicker[[str], str] = AsyncKicker(
                task_name=self._task_name,
                broker=broker,
                labels={**self._labels, RUN_ID_LABEL: job.run_id},
            )
            try:
                return await self._finish_anyway(kicker.with_task_id(job.job_id).kiq(job.payload))
            except SendTaskError as error:
                cause = error.__cause__ or error
                if attempt == _SEND_ATTEMPTS:
                    raise ConnectionError(
                        f"taskiq could not send job {job.job_id!r} to its broker after "
                        f"{attempt} attempts: {type(cause).__name__}: {cause}"
                    ) from cause
                logger.info(
                    "sending job %r to the taskiq broker failed (%r); trying again",
                    job.job_id,
                    cause,
                )
                await asyncio.sleep(_SEND_BACKOFF * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def cancel(self, job: BackendJob) -> bool:
        """Taskiq has no revoke; say whether the job is certain never to run its task.

        A job no worker has claimed yet (still queued, or on its way to a worker) is: once
        this returns ``True`` the executor reports the run cancelled and unregisters it, so
        the callback server answers the claim of the job, whenever a worker takes it, with
        404 -- and :func:`~wove_taskiq.register_wove_task` drops it unrun. This runs on the
        dispatch loop, like the server's handling of a claim, so the two cannot interleave. A
        claimed job is running: it sees the cancel in the answer to its next heartbeat.
        """
        return not job.started

    async def status(self, job: BackendJob) -> JobStatus:
        if not self._has_results:
            return JobStatus("unknown", "the broker has no result backend")
        backend = self.broker.result_backend
        if not await self._finish_anyway(backend.is_result_ready(job.job_id)):
            return JobStatus("unknown", "no result yet (queued or running)")
        result = await self._finish_anyway(backend.get_result(job.job_id))
        if result.labels.get(RUN_ID_LABEL) != job.run_id:
            # An earlier job under the same id (a reused idempotency key) left its result.
            return JobStatus("unknown", "the stored result belongs to another run")
        if result.is_err:
            error = result.error
            detail = f"{type(error).__name__}: {error}" if error is not None else "no error given"
            return JobStatus("failed", detail)
        if result.return_value == NOT_CLAIMED:
            # Another copy claimed the run, or nobody waited for it: says nothing about this run.
            return JobStatus("unknown", "a copy of the job was not run")
        return JobStatus("succeeded", f"returned {result.return_value!r}")

    async def _finish_anyway(self, call: Coroutine[Any, Any, T]) -> T:
        """Await a broker call that finishes even if the caller is cancelled meanwhile.

        A Redis command cut off half-way leaves its connection neither returned to the pool
        nor closed; the executor cancels submissions and polls when a weave ends, so each call
        is shielded and :meth:`close` waits for the ones still going before it disconnects.
        """
        task = asyncio.ensure_future(call)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return await asyncio.shield(task)

    async def close(self) -> None:
        broker, self._broker = self._broker, None
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=_CLOSE_WAIT_SECONDS)
        try:
            if broker is not None:
                await broker.shutdown()
        finally:
            await super().close()


def _redis_support() -> tuple[
    type[Redis], type[ListQueueBroker], type[RedisAsyncResultBackend[Any]]
]:
    """taskiq-redis's broker and result backend, and redis-py's asyncio client."""
    from redis.asyncio import Redis
    from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

    return Redis, ListQueueBroker, RedisAsyncResultBackend


async def _redis_broker(url: str, where: str) -> AsyncBroker:
    """A ``ListQueueBroker`` with a Redis result backend on ``url``, checked to answer."""
    try:
        # A first import costs a quarter of a second: not on the dispatch loop.
        redis_client, queue_broker, result_backend = await asyncio.to_thread(_redis_support)
    except ImportError as error:
        raise InvalidOptionError(
            f"{where}: broker_url needs taskiq-redis, which is not installed "
            f"({error}); run `pip install 'wove-taskiq[redis]'`"
        ) from error
    backend = result_backend(url, result_ex_time=RESULT_TTL_SECONDS)
    broker = queue_broker(url).with_result_backend(backend)
    try:
        async with redis_client(connection_pool=broker.connection_pool) as client:
            await client.ping()
    except Exception as error:
        await broker.connection_pool.disconnect()
        await backend.redis_pool.disconnect()
        raise ConnectionError(
            f"{where}: cannot reach Redis at broker_url={url!r}: {type(error).__name__}: "
            f"{error}. Start Redis there or fix the URL."
        ) from error
    return broker


class TaskiqExecutor(BackendExecutor):
    """The ``taskiq`` executor: runs go to Taskiq workers through the broker.

    Example:
        >>> wove.config(  # doctest: +SKIP
        ...     environments={
        ...         "jobs": {
        ...             "executor": "taskiq",
        ...             "executor_config": {
        ...                 "broker_url": "redis://127.0.0.1:6379/0",
        ...                 "security": "env:WOVE_SECRET",
        ...             },
        ...         }
        ...     }
        ... )
    """

    adapter_class = TaskiqAdapter
