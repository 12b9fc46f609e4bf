"""The ``arq`` executor against real ARQ workers and a real Redis: lost workers, a restarted
Redis, cancelling for real, job ids, configuration errors and the worker-side helpers."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import default_queue_name
from arq.jobs import Job, JobResult
from arq.jobs import JobStatus as ArqJobStatus

import wove
from wove import FrameRejectedError
from wove.backends import DuplicateJobError
from wove.plugins import Delivery, LineCodec, RunTask, Security, dumps, new_run_id
from wove.testing import executor_of, free_port, stop_environments
from wove_arq import WORKER_DEFAULTS, ArqExecutor, worker_settings, wove_run

from .conftest import backend_services, start_worker

SECRET = "env:WOVE_SECRET"
#: A guard so that no test can hang: every weave fails after this many seconds.
GUARD = 30.0


def arq_environment(redis_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "executor": "arq",
        "executor_config": {
            "redis_url": redis_url,
            "security": SECRET,
            "worker_heartbeat_seconds": 0.5,
            "status_interval": 0.25,
            **extra,
        },
    }


def configure(**environments: dict[str, Any]) -> None:
    wove.config(environments=environments)


@pytest.fixture
def environments() -> Iterator[list[str]]:
    """Names of environments a test configured; their executors are stopped afterwards."""
    names: list[str] = []
    yield names
    stop_environments(*names, timeout=GUARD)


def wait_for(condition: Any, what: str, timeout: float = GUARD) -> None:
    backend_services.wait_until(condition, timeout, what)


def arq_view(redis_url: str, job_id: str) -> tuple[ArqJobStatus, JobResult | None, float | None]:
    """ARQ's own view of a job: its status, its result record, its score in the queue."""

    async def look() -> tuple[ArqJobStatus, JobResult | None, float | None]:
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            job = Job(job_id, pool)
            score = await pool.zscore(default_queue_name, job_id)
            return await job.status(), await job.result_info(), score
        finally:
            await pool.aclose()

    return asyncio.run(look())


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# -- (a) a worker killed mid-task ----------------------------------------------------------------


def test_worker_killed_mid_task_fails_the_weave_as_orphaned(
    redis_url: str,
    arq_worker: backend_services.WorkerProcess,
    tmp_path: Path,
    environments: list[str],
) -> None:
    configure(queue=arq_environment(redis_url))
    environments.append("queue")
    started = tmp_path / "started"
    never = tmp_path / "never-created"
    restarts = arq_worker.restarts

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(wove.DeliveryOrphanedError, match=r"sent nothing .* probably killed"),
        wove.weave(delivery_timeout=GUARD) as w,
    ):

        @w.do(environment="queue")
        def waits() -> str:
            started.touch()
            while not never.exists():
                time.sleep(0.05)
            return "released"

        @w.do
        def killer() -> None:
            wait_for(started.exists, "the task started on the worker")
            arq_worker.kill()

    assert "waits" in str(w.result.exception)
    wait_for(lambda: arq_worker.restarts > restarts, "the killed worker was restarted")
    # The restarted worker takes new runs.
    with wove.weave(environment="queue", delivery_timeout=GUARD) as again:

        @again.do
        def after() -> int:
            return 7

    assert again.result.after == 7


# -- (b) Redis restarted between two weaves ------------------------------------------------------


def test_redis_restart_between_weaves_reconnects(environments: list[str]) -> None:
    server = backend_services.Redis.private()
    worker = None
    try:
        url = server.url(0)
        worker = start_worker(url)
        configure(private=arq_environment(url))
        environments.append("private")

        with wove.weave(environment="private", delivery_timeout=GUARD) as first:

            @first.do
            def before() -> str:
                return "before"

        assert first.result.before == "before"
        # The executor's pool must reconnect by itself. An ARQ worker whose poll hits the
        # outage exits with a ConnectionError instead; WorkerProcess restarts it, as a
        # supervisor would in production.
        server.restart()

        with wove.weave(environment="private", delivery_timeout=GUARD) as second:

            @second.do
            def after() -> str:
                return "after"

        assert second.result.after == "after"
    finally:
        stop_environments(*environments)
        environments.clear()
        if worker is not None:
            worker.stop()
        server.stop()


# -- (c) cancelling for real ---------------------------------------------------------------------


@pytest.mark.usefixtures("arq_worker")
def test_running_job_cancelled_by_a_failing_sibling_is_aborted_in_arq(
    redis_url: str, tmp_path: Path, environments: list[str]
) -> None:
    # A long heartbeat: the worker would only hear of the cancel seconds later, so the job
    # stops because ARQ aborted it.
    configure(queue=arq_environment(redis_url, worker_heartbeat_seconds=10))
    environments.append("queue")
    key = unique("cancel-running")
    started = tmp_path / "started"
    finished = tmp_path / "finished"
    release = tmp_path / "release"

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(RuntimeError, match="sibling failed"),
        wove.weave(delivery_timeout=GUARD) as w,
    ):

        @w.do(environment="queue", delivery_idempotency_key=key)
        async def long_async() -> str:
            started.touch()
            while not release.exists():  # noqa: ASYNC110 - a file, not an event, across processes
                await asyncio.sleep(0.05)
            finished.touch()
            return "not cancelled"

        @w.do
        def fails() -> None:
            wait_for(started.exists, "the async task started on the worker")
            raise RuntimeError("sibling failed on purpose")

    assert "long_async" in w.result.cancelled
    wait_for(lambda: arq_view(redis_url, key)[1] is not None, "ARQ recorded the aborted job")
    status, info, score = arq_view(redis_url, key)
    assert status == ArqJobStatus.complete
    assert info is not None
    assert not info.success
    assert isinstance(info.result, asyncio.CancelledError), info.result
    assert score is None
    release.touch()
    with wove.weave(environment="queue", delivery_timeout=GUARD) as probe:

        @probe.do
        def later() -> bool:
            time.sleep(0.3)  # the aborted task would have seen the release file by now
            return True

    assert probe.result.later
    assert not finished.exists(), "the aborted async task kept running"


@pytest.mark.usefixtures("arq_worker")
def test_queued_job_cancelled_by_a_failing_sibling_never_runs(
    redis_url: str, tmp_path: Path, environments: list[str]
) -> None:
    # _defer_by keeps the job in ARQ's queue, not yet due, when the sibling fails.
    configure(queue=arq_environment(redis_url, enqueue_options={"_defer_by": 120}))
    environments.append("queue")
    key = unique("cancel-queued")
    ran = tmp_path / "ran"

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(RuntimeError, match="sibling failed"),
        wove.weave(delivery_timeout=GUARD) as w,
    ):

        @w.do(environment="queue", delivery_idempotency_key=key)
        def deferred() -> None:
            ran.touch()

        @w.do
        async def fails() -> None:
            pool = await create_pool(RedisSettings.from_dsn(redis_url))
            try:
                job = Job(key, pool)
                while await job.status() != ArqJobStatus.deferred:  # noqa: ASYNC110 - Redis
                    await asyncio.sleep(0.05)
            finally:
                await pool.aclose()
            raise RuntimeError("sibling failed on purpose")

    assert "deferred" in w.result.cancelled
    wait_for(lambda: arq_view(redis_url, key)[1] is not None, "ARQ recorded the aborted job")
    status, info, score = arq_view(redis_url, key)
    assert score is None, "the aborted job is still in ARQ's queue"
    assert status == ArqJobStatus.complete
    assert info is not None
    assert isinstance(info.result, asyncio.CancelledError)
    assert not ran.exists(), "the cancelled job ran"


# -- (d) job ids come from the idempotency key ---------------------------------------------------


@pytest.mark.usefixtures("arq_worker")
def test_job_id_is_the_idempotency_key_and_a_duplicate_is_refused(
    redis_url: str, environments: list[str]
) -> None:
    configure(queue=arq_environment(redis_url))
    environments.append("queue")
    key = unique("order")

    with wove.weave(environment="queue", delivery_timeout=GUARD) as first:

        @first.do(delivery_idempotency_key=key)
        def charge() -> str:
            return "charged once"

    assert first.result.charge == "charged once"
    wait_for(lambda: arq_view(redis_url, key)[1] is not None, "ARQ kept the job's result")
    _, kept, _ = arq_view(redis_url, key)
    assert kept is not None
    assert (kept.function, kept.success, kept.result) == ("wove_run", True, "task_result")

    # The adapter raises DuplicateJobError; the weave reports it as the run's failure.
    with (
        pytest.raises(
            wove.EnvironmentExecutionError, match=rf"refused job '{key}' as a duplicate"
        ) as caught,
        wove.weave(environment="queue", delivery_timeout=GUARD) as second,
    ):

        @second.do(delivery_idempotency_key=key)
        def charge_again() -> str:
            return "charged twice"

    assert caught.value.kind == "wove.DuplicateJobError"
    assert caught.value.source == "transport"
    assert "ARQ already holds job" in str(caught.value)
    _, still, _ = arq_view(redis_url, key)
    assert still is not None
    assert (still.success, still.result, still.enqueue_time) == (
        True,
        "task_result",
        kept.enqueue_time,
    )


@pytest.mark.usefixtures("arq_worker")
def test_adapter_raises_duplicate_job_error_for_a_held_job_id(redis_url: str) -> None:
    from wove.backends import BackendJob
    from wove_arq import ArqAdapter

    async def twice() -> None:
        adapter = ArqAdapter()
        await adapter.start(
            "direct", {"redis_url": redis_url, "enqueue_options": {"_defer_by": 60}}
        )
        job_id = unique("direct")
        job = BackendJob(
            run_id=job_id,
            task_id="t",
            job_id=job_id,
            idempotency_key=job_id,
            attempt=1,
            payload="not a payload",
            environment="direct",
        )
        try:
            handle = await adapter.submit(job)
            assert handle.job_id == job_id
            job.handle = handle
            assert (await adapter.status(job)).state == "pending"
            with pytest.raises(DuplicateJobError, match=rf"ARQ already holds job '{job_id}'"):
                await adapter.submit(job)
            assert await adapter.cancel(job) is True
            assert (await adapter.status(job)).state == "cancelled"
        finally:
            await adapter.close()

    asyncio.run(twice())


# -- (e) configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("executor_config", "message"),
    [
        ({}, r"no Redis connection: set redis_url="),
        (
            {"redis_settings": "redis://127.0.0.1:6379/4"},
            r"redis_settings must be an arq.connections.RedisSettings.*use redis_url instead",
        ),
        ({"redis_url": "http://127.0.0.1:6379"}, r"redis_url must be a redis://"),
        (
            {"redis_url": "redis://127.0.0.1/4", "redis_settings": RedisSettings()},
            r"redis_settings and redis_url both name a Redis connection; keep only one",
        ),
        ({"pool": "redis://127.0.0.1/4"}, r"pool must be an arq.connections.ArqRedis"),
        (
            {"redis_url": "redis://127.0.0.1/4", "enqueue_options": {"_job_id": "x"}},
            r"enqueue_options may not set _job_id: Wove sets _job_id from the idempotency key",
        ),
        (
            {"redis_url": "redis://127.0.0.1/4", "enqueue_options": {"_defer": 1}},
            r"enqueue_options does not take '_defer'; it takes _defer_by, _defer_until.*"
            r"Did you mean '_defer_by'",
        ),
        ({"redis_url": "redis://127.0.0.1/4", "function": 3}, r"function must be a non-empty"),
        ({"redis_url": "redis://127.0.0.1/4", "abort_timeout": -1}, r"abort_timeout must be"),
        ({"redis_url": "redis://127.0.0.1/4", "redis_host": "x"}, r"redis_host"),
    ],
)
def test_configuration_errors_name_the_problem_and_the_fix(
    executor_config: dict[str, Any], message: str, environments: list[str]
) -> None:
    configure(
        broken={"executor": "arq", "executor_config": {"security": SECRET, **executor_config}}
    )
    environments.append("broken")

    with (
        pytest.raises(wove.WoveError, match=message),
        wove.weave(environment="broken", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None


def test_unreachable_redis_says_where_it_looked(environments: list[str]) -> None:
    port = free_port()
    settings = RedisSettings(host="127.0.0.1", port=port, conn_retries=0)
    configure(
        gone={
            "executor": "arq",
            "executor_config": {"security": SECRET, "redis_settings": settings},
        }
    )
    environments.append("gone")

    with (
        pytest.raises(ConnectionError, match=rf"cannot reach Redis at 127.0.0.1:{port}"),
        wove.weave(environment="gone", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None


def test_executor_uses_a_given_pool_and_leaves_it_open(redis_url: str) -> None:
    from wove_arq import ArqAdapter

    async def with_pool() -> None:
        pool: ArqRedis = await create_pool(
            RedisSettings.from_dsn(redis_url), default_queue_name="q-pool"
        )
        try:
            adapter = ArqAdapter()
            await adapter.start("pooled", {"pool": pool})
            assert adapter._queue == "q-pool"
            await adapter.close()
            assert await pool.ping()  # still open: it belongs to its creator
        finally:
            await pool.aclose()

    asyncio.run(with_pool())
    assert issubclass(ArqExecutor, wove.Executor)


# -- (f) the worker-side helpers -----------------------------------------------------------------


def test_worker_settings_builds_a_class_arq_can_run() -> None:
    async def extra(ctx: dict[str, Any]) -> int:
        return 1

    settings = worker_settings("redis://127.0.0.1:6379/4", max_jobs=3, functions=[extra])

    assert settings.functions == [wove_run, extra]
    assert settings.allow_abort_jobs is True
    assert settings.poll_delay == WORKER_DEFAULTS["poll_delay"]
    assert settings.max_jobs == 3
    assert settings.redis_settings.database == 4
    assert "redis_settings" not in vars(worker_settings())


def test_worker_settings_refuses_what_arq_would_not_accept() -> None:
    with pytest.raises(TypeError, match=r"'max_job'.*which arq.worker.Worker does not accept"):
        worker_settings(max_job=3)
    with pytest.raises(
        TypeError, match=r"takes an arq.connections.RedisSettings or a redis:// URL"
    ):
        worker_settings(redis_settings=6379)  # type: ignore[arg-type]


@pytest.mark.usefixtures("arq_worker")
def test_wove_run_skips_a_run_nobody_waits_for_and_refuses_forgeries(
    redis_url: str, environments: list[str]
) -> None:
    configure(queue=arq_environment(redis_url))
    environments.append("queue")
    with wove.weave(environment="queue", delivery_timeout=GUARD) as w:

        @w.do
        def warm() -> int:
            return 1

    assert w.result.warm == 1
    executor: Any = executor_of("queue")
    frame = RunTask(
        run_id=new_run_id("orphan"),
        task_id="orphan",
        callable=dumps(lambda: 1, "test"),
        args=dumps({}, "test"),
        delivery=Delivery(callback=executor.callback_server.url),
    )
    line = LineCodec(executor.security).encode(frame).decode()
    assert asyncio.run(wove_run({"job_id": "x"}, line)) == "not_claimed"

    forged = LineCodec(Security(secrets.token_bytes(32))).encode(frame).decode()
    with pytest.raises(FrameRejectedError):
        asyncio.run(wove_run({}, forged))
