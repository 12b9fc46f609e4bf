"""The taskiq executor against real Redis and real ``taskiq worker`` processes: dead workers, a
restarted broker, cancellation as Taskiq sees it, job ids, config errors and the worker helper.

Taskiq's own view of a job is its result backend: the worker task stores what the run ended
with (``task_result``, ``task_cancelled``, ``not_claimed``...) under the job's task id, with
the run id in its labels; the tests read it back with a ``RedisAsyncResultBackend``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from taskiq import InMemoryBroker
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

import backend_services
import wove
from wove.testing import async_blocker, blocker, free_port, reset_state
from wove_taskiq import RUN_ID_LABEL, register_wove_task

HANG_GUARD = 30.0


def configure(**environments: dict[str, Any]) -> None:
    wove.config(environments=environments)


def taskiq_environment(broker_url: str | None = None, **config: Any) -> dict[str, Any]:
    executor_config: dict[str, Any] = {
        "security": "env:WOVE_SECRET",
        "worker_heartbeat_seconds": 0.5,
        "status_interval": 0.25,
        **config,
    }
    if broker_url is not None:
        executor_config["broker_url"] = broker_url
    return {"executor": "taskiq", "executor_config": executor_config}


def stored_result(url: str, task_id: str) -> Any:
    """What Taskiq's result backend holds for ``task_id`` (``None`` when nothing yet)."""

    async def fetch() -> Any:
        backend: RedisAsyncResultBackend[Any] = RedisAsyncResultBackend(url)
        try:
            if not await backend.is_result_ready(task_id):
                return None
            return await backend.get_result(task_id)
        finally:
            await backend.shutdown()

    return asyncio.run(fetch())


def wait_for_result(url: str, task_id: str) -> Any:
    found: list[Any] = []

    def ready() -> bool:
        result = stored_result(url, task_id)
        if result is not None:
            found.append(result)
        return bool(found)

    backend_services.wait_until(ready, HANG_GUARD, f"a stored result for job {task_id!r}")
    return found[0]


@pytest.fixture
def jobs(redis_url: str, taskiq_worker: Any) -> str:
    """A ``jobs`` environment on the session's worker; returns the broker URL."""
    configure(jobs=taskiq_environment(redis_url))
    return redis_url


# -- (a) a worker killed from outside -----------------------------------------------------


def test_worker_killed_mid_task_fails_the_weave_with_orphaned_error(
    jobs: str, taskiq_worker: Any, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    block = blocker(tmp_path / "never", started=started)
    restarts = taskiq_worker.restarts

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(wove.DeliveryOrphanedError, match="probably killed") as caught,
        wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as w,
    ):

        @w.do
        def stuck() -> bool:
            return block()

        @w.do(environment="default")
        def killer() -> None:
            backend_services.wait_until(started.exists, HANG_GUARD, "the task starting")
            taskiq_worker.kill()  # SIGKILL to the whole process group: taskiq cannot restart it

    message = str(caught.value)
    assert "sent nothing" in message, message
    assert "heartbeat every 0.5s" in message, message
    backend_services.wait_until(
        lambda: taskiq_worker.restarts > restarts, HANG_GUARD, "the worker restarting"
    )
    with wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as again:

        @again.do
        def after() -> str:
            return "worker is back"

    assert again.result.after == "worker is back"


# -- (b) the broker restarted between two weaves ------------------------------------------


def test_broker_restarted_between_weaves_is_reconnected(worker_factory: Any) -> None:
    server = backend_services.Redis.private()
    worker = None
    try:
        worker = worker_factory(server.url(0), workers=1)
        configure(jobs=taskiq_environment(server.url(0)))

        def one_weave(value: int) -> int:
            with wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as w:

                @w.do
                def double() -> int:
                    return value * 2

            result: int = w.result.double
            return result

        assert one_weave(1) == 2
        server.restart()
        assert one_weave(2) == 4
    finally:
        reset_now()
        if worker is not None:
            worker.stop()
        server.stop()


def reset_now() -> None:
    """Stop every environment while its broker is still up (before the fixture does it)."""
    reset_state()


# -- (c) cancellation ----------------------------------------------------------------------


def test_running_async_task_cancelled_by_a_failing_sibling_stops_on_the_worker(
    jobs: str, tmp_path: Path
) -> None:
    key = f"cancel-running-{secrets.token_hex(4)}"
    started, finished, release = tmp_path / "started", tmp_path / "finished", tmp_path / "go"
    ablock = async_blocker(release, started=started, finished=finished)

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(RuntimeError, match="sibling failed on purpose"),
        wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as w,
    ):

        @w.do(delivery_idempotency_key=key)
        async def long_async() -> bool:
            return await ablock()

        @w.do(environment="default")
        def fails() -> None:
            backend_services.wait_until(started.exists, HANG_GUARD, "the task starting")
            raise RuntimeError("sibling failed on purpose")

    assert "long_async" in w.result.cancelled
    # Taskiq's view: the job ended, and what it ended with was the cancellation.
    result = wait_for_result(jobs, key)
    assert not result.is_err
    assert result.return_value == "task_cancelled"
    release.touch()
    assert not finished.exists(), "the cancelled coroutine went on running"


def test_cancelled_sync_task_is_reported_at_once_but_its_thread_runs_to_the_end(
    jobs: str, tmp_path: Path
) -> None:
    """The documented limit: a thread cannot be interrupted, so the sync body finishes."""
    key = f"cancel-sync-{secrets.token_hex(4)}"
    started, finished, release = tmp_path / "started", tmp_path / "finished", tmp_path / "go"
    block = blocker(release, started=started, finished=finished)

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(RuntimeError, match="sibling failed on purpose"),
        wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as w,
    ):

        @w.do(delivery_idempotency_key=key)
        def long_sync() -> bool:
            return block()

        @w.do(environment="default")
        def fails() -> None:
            backend_services.wait_until(started.exists, HANG_GUARD, "the task starting")
            raise RuntimeError("sibling failed on purpose")

    assert "long_sync" in w.result.cancelled
    assert wait_for_result(jobs, key).return_value == "task_cancelled"
    release.touch()
    backend_services.wait_until(finished.exists, HANG_GUARD, "the abandoned thread finishing")


def test_queued_job_cancelled_before_a_worker_takes_it_never_runs(
    redis_url: str, tmp_path: Path, worker_factory: Any
) -> None:
    queue = f"wove-idle-{secrets.token_hex(4)}"  # no worker listens here yet
    key = f"queued-{secrets.token_hex(4)}"
    marker = tmp_path / "ran"
    marker_at = str(marker)
    configure(jobs=taskiq_environment(redis_url, labels={"queue_name": queue}))
    client = redis.Redis.from_url(redis_url)
    worker = None
    try:
        with (  # noqa: PT012 - the weave raises when its block ends
            pytest.raises(RuntimeError, match="sibling failed on purpose"),
            wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as w,
        ):

            @w.do(delivery_idempotency_key=key)
            def queued() -> None:
                open(marker_at, "a").close()

            @w.do(environment="default")
            def fails() -> None:
                backend_services.wait_until(
                    lambda: client.llen(queue) == 1, HANG_GUARD, "the job waiting in its queue"
                )
                raise RuntimeError("sibling failed on purpose")

        assert "queued" in w.result.cancelled
        assert client.llen(queue) == 1, "the job left its queue, but no worker listens there"

        worker = worker_factory(redis_url, queue=queue, workers=1)
        result = wait_for_result(redis_url, key)
        assert client.llen(queue) == 0
        assert result.return_value == "not_claimed"
        assert "no longer waits for it" in worker.output()
        assert not marker.exists(), "a job cancelled while queued ran its body"
    finally:
        if worker is not None:
            worker.stop()
        client.delete(queue)
        client.close()


# -- (d) job ids -----------------------------------------------------------------------------


def test_job_id_is_the_idempotency_key(jobs: str) -> None:
    key = f"order-{secrets.token_hex(4)}"

    with wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as w:

        @w.do(delivery_idempotency_key=key)
        def order() -> int:
            return 7

    assert w.result.order == 7
    result = wait_for_result(jobs, key)
    assert result.return_value == "task_result"
    assert result.labels[RUN_ID_LABEL].startswith("order")


def test_a_reused_idempotency_key_is_not_confused_with_the_earlier_job(jobs: str) -> None:
    """The earlier job's stored result (same task id) must not end the new run as orphaned."""
    key = f"reused-{secrets.token_hex(4)}"

    def run_once(value: int) -> int:
        with wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as w:

            @w.do(delivery_idempotency_key=key)
            def slow() -> int:
                time.sleep(1.0)  # several status polls see the earlier job's result
                return value

        result: int = w.result.slow
        return result

    assert run_once(1) == 1
    wait_for_result(jobs, key)  # stored after the outcome reached the weave
    assert run_once(2) == 2


def test_job_that_fails_in_taskiq_fails_the_weave_with_taskiq_s_words(
    redis_url: str, worker_factory: Any
) -> None:
    """A worker that cannot reach the callback server fails its Taskiq job; the status poll
    reads that from the result backend and the weave fails saying so."""
    queue = f"wove-unreachable-{secrets.token_hex(4)}"
    worker_factory(redis_url, queue=queue, workers=1, env={"WOVE_CALLBACK_RETRY_SECONDS": "0.5"})
    nowhere = f"http://127.0.0.1:{free_port()}"
    configure(
        jobs=taskiq_environment(redis_url, labels={"queue_name": queue}, callback_url=nowhere)
    )

    with pytest.raises(wove.DeliveryOrphanedError, match=r"taskiq reports job .* failed") as caught:
        run_probe()

    assert "ConnectionError" in str(caught.value)


# -- (e) configuration errors -----------------------------------------------------------------


def run_probe() -> None:
    with wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as w:

        @w.do
        def probe() -> int:
            return 1


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "no broker: set broker_url="),
        ({"broker": "redis://127.0.0.1:6379/5"}, "broker must be a taskiq AsyncBroker"),
        ({"broker_url": "amqp://guest@127.0.0.1//"}, "broker_url must be a Redis URL"),
        ({"broker_url": 6379}, "broker_url must be a Redis URL"),
        (
            {"broker_url": "redis://127.0.0.1:6379/5", "broker": InMemoryBroker()},
            "either broker or broker_url, not both",
        ),
        (
            {"broker_url": "redis://127.0.0.1:6379/5", "labels": ["queue_name"]},
            "labels must be a dict",
        ),
        ({"broker_url": "redis://127.0.0.1:6379/5", "task_name": ""}, "task_name must be"),
        (
            {"broker_url": "redis://127.0.0.1:6379/5", "labels": {RUN_ID_LABEL: "x"}},
            "is set by Wove",
        ),
    ],
)
def test_config_errors_name_the_problem_and_the_fix(config: dict[str, Any], expected: str) -> None:
    configure(jobs=taskiq_environment(**config))

    with pytest.raises(wove.InvalidOptionError, match=expected):
        run_probe()


def test_unreachable_redis_fails_when_the_environment_starts() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    configure(jobs=taskiq_environment(url))

    with pytest.raises(ConnectionError, match="cannot reach Redis at broker_url"):
        run_probe()


def test_misspelt_key_is_refused_with_a_suggestion(redis_url: str) -> None:
    configure(jobs=taskiq_environment(redis_url, task_nme="wove.run"))

    with pytest.raises(wove.UnknownOptionError, match="task_name"):
        run_probe()


# -- (f) the worker-side helper ----------------------------------------------------------------


def test_register_wove_task_registers_under_the_given_name() -> None:
    broker = InMemoryBroker()
    default = register_wove_task(broker)
    custom = register_wove_task(broker, task_name="billing.wove")

    assert default.task_name == "wove.run"
    assert custom.task_name == "billing.wove"
    assert broker.find_task("wove.run") is not None
    assert broker.find_task("billing.wove") is not None
    with pytest.raises(ValueError, match="task_name must be a non-empty string"):
        register_wove_task(broker, task_name="")


def test_an_environment_given_its_own_broker_object(redis_url: str, taskiq_worker: Any) -> None:
    """``broker=``: the user's broker, set up as the worker module sets up its own."""
    broker = ListQueueBroker(redis_url).with_result_backend(
        RedisAsyncResultBackend(redis_url, result_ex_time=600)
    )
    configure(jobs=taskiq_environment(broker=broker))
    key = f"own-broker-{secrets.token_hex(4)}"

    with wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as w:

        @w.do(delivery_idempotency_key=key)
        async def where() -> int:
            return os.getpid()

    assert w.result.where != os.getpid()
    assert wait_for_result(redis_url, key).return_value == "task_result"


def test_without_a_result_backend_status_is_unknown_and_runs_still_work(
    redis_url: str, taskiq_worker: Any
) -> None:
    configure(jobs=taskiq_environment(broker=ListQueueBroker(redis_url)))

    with wove.weave(environment="jobs", delivery_timeout=HANG_GUARD) as w:

        @w.do
        def slow() -> str:
            time.sleep(0.6)  # status polls happen meanwhile and must not end the run
            return "done"

    assert w.result.slow == "done"
