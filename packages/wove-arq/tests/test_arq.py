"""The ``arq`` executor against real ARQ workers and a real Redis: job ids, configuration
errors and the worker-side helpers. A killed worker, a restarted Redis and cancelling for real
are scenarios of the conformance kit (test_conformance.py)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool

import wove
from wove import FrameRejectedError
from wove.backends import DuplicateJobError
from wove.plugins import Delivery, LineCodec, RunTask, Security, dumps, new_run_id
from wove.testing import executor_of, free_port, stop_environments
from wove_arq import WORKER_DEFAULTS, ArqExecutor, worker_settings, wove_run

from .conftest import arq_view, backend_services

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


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# -- (a) job ids come from the idempotency key ---------------------------------------------------


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


# -- (b) configuration errors --------------------------------------------------------------------


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


# -- (c) the worker-side helpers -----------------------------------------------------------------


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
