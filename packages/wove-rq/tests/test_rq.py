"""The ``rq`` executor against real Redis and real ``rq worker`` processes: what the conformance
suite cannot see from outside -- job ids in RQ's own view, configuration mistakes, and the
worker-side helper. Killed workers, a restarted Redis and cancelling for real are scenarios of
the conformance kit (test_conformance.py)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job

import wove
import wove.testing
from wove import weave
from wove.testing import configure_executor
from wove_rq import RQExecutor, rq_job_id

from .conftest import QUEUE, backend_services

HANG_GUARD = 60.0


def rq_config(redis_url: str | None, queue: str = QUEUE, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "security": "env:WOVE_SECRET",
        "worker_heartbeat_seconds": 0.5,
        "status_interval": 0.25,
        "queue": queue,
        **extra,
    }
    if redis_url is not None:
        config["redis_url"] = redis_url
    return config


def configure(**environments: dict[str, Any]) -> None:
    configure_executor("rq", **environments)


def executor_of(name: str) -> RQExecutor:
    executor = wove.testing.executor_of(name)
    assert isinstance(executor, RQExecutor)
    return executor


def answer_in(environment: str, **options: Any) -> int:
    return wove.testing.answer_in(environment, delivery_timeout=HANG_GUARD, **options)


def wait_for_status(job: Job, *states: str) -> str:
    backend_services.wait_until(
        lambda: job.get_status(refresh=True) in states, HANG_GUARD, f"RQ job {job.id} {states}"
    )
    return str(job.get_status(refresh=False).value)


# -- (a) job ids ----------------------------------------------------------------------------
def test_job_id_comes_from_the_idempotency_key(
    redis_url: str, rq_workers: object, connection: redis.Redis
) -> None:
    configure(rq=rq_config(redis_url))
    key = f"invoice-{secrets.token_hex(4)}"

    assert answer_in("rq", delivery_idempotency_key=key) == 42

    job = Job.fetch(key, connection=connection)
    assert job.func_name == "wove_rq.worker.run_payload"
    assert job.origin == QUEUE
    assert wait_for_status(job, "finished", "failed") == "finished"

    # A key RQ would refuse is made safe, deterministically, and stays distinct.
    odd = f"order {key}/eu"
    assert answer_in("rq", delivery_idempotency_key=odd) == 42
    safe = rq_job_id(odd)
    assert safe.startswith(f"order_{key}_eu-")
    assert rq_job_id(odd) == safe != rq_job_id(f"order {key}:eu")
    assert wait_for_status(Job.fetch(safe, connection=connection), "finished") == "finished"

    # RQ keeps the finished job for result_ttl, and refuses a second job with its id.
    with pytest.raises(
        wove.EnvironmentExecutionError, match=f"refused job '{key}' as a duplicate"
    ) as caught:
        answer_in("rq", delivery_idempotency_key=key)
    assert f"already holds RQ job '{key}'" in str(caught.value)
    assert "wove.DuplicateJobError" in str(caught.value)


def test_run_id_is_the_job_id_without_a_key(
    redis_url: str, rq_workers: object, connection: redis.Redis
) -> None:
    configure(rq=rq_config(redis_url))
    token = secrets.token_hex(4)

    def body() -> int:
        return 42

    body.__name__ = body.__qualname__ = f"unkeyed_{token}"
    with weave(environment="rq", delivery_timeout=HANG_GUARD) as w:
        w.do(body)

    assert w.result[f"unkeyed_{token}"] == 42
    # Run ids fold the task name in and are valid RQ job ids as they are.
    keys = connection.keys(f"rq:job:unkeyed-{token}-*")
    assert len(keys) == 1, keys
    job_id = keys[0].decode().removeprefix("rq:job:")
    assert rq_job_id(job_id) == job_id


# -- (b) configuration ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, r"no Redis to enqueue to; set redis_url='redis://"),
        ({"connection": "redis://127.0.0.1:6379/3"}, r"connection must be a redis\.Redis"),
        ({"redis_url": 6379}, r"redis_url must be a redis://, rediss:// or unix:// URL"),
        ({"redis_url": "127.0.0.1:6379"}, r"got '127\.0\.0\.1:6379'"),
        (
            {"redis_url": "redis://127.0.0.1:6379/3", "connection": redis.Redis()},
            "set redis_url or connection, not both",
        ),
        ({"redis_url": "redis://127.0.0.1:6379/3", "queue": ""}, "queue must be a non-empty"),
        (
            {"redis_url": "redis://127.0.0.1:6379/3", "enqueue_options": 600},
            "enqueue_options must be a dict",
        ),
        (
            {"redis_url": "redis://127.0.0.1:6379/3", "enqueue_options": {"job_id": "x"}},
            "enqueue_options does not take 'job_id'; it takes at_front, description",
        ),
    ],
)
def test_configuration_errors_name_the_problem_and_the_fix(
    redis_url: str, config: dict[str, Any], message: str
) -> None:
    configure(bad={**rq_config(None), **config})

    with pytest.raises(wove.InvalidOptionError, match=message):
        answer_in("bad")


def test_rq_options_outside_enqueue_options_are_unknown(redis_url: str) -> None:
    configure(bad=rq_config(redis_url, result_ttl=5))

    with pytest.raises(wove.UnknownOptionError, match=r"unknown option 'result_ttl'.*enqueue_opt"):
        answer_in("bad")


def test_decoding_connection_is_refused(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url, decode_responses=True) as decoding:
        configure(bad=rq_config(None, connection=decoding))

        with pytest.raises(wove.InvalidOptionError, match="decode_responses=False"):
            answer_in("bad")


def test_unreachable_redis_fails_when_the_environment_starts() -> None:
    url = f"redis://127.0.0.1:{backend_services.free_port()}/0"
    configure(gone=rq_config(url))

    with pytest.raises(ConnectionError, match=r"cannot reach Redis at redis://127\.0\.0\.1:"):
        answer_in("gone")


def test_own_connection_and_enqueue_options_are_used(
    redis_url: str, rq_workers: object, connection: redis.Redis
) -> None:
    key = f"options-{secrets.token_hex(4)}"
    with redis.Redis.from_url(redis_url) as mine:
        options = {"job_timeout": 600, "result_ttl": 30, "meta": {"team": "billing"}}
        configure(rq=rq_config(None, connection=mine, enqueue_options=options))

        assert answer_in("rq", delivery_idempotency_key=key) == 42

        assert mine.ping()  # the adapter uses it but leaves it open: it is the caller's
    job = Job.fetch(key, connection=connection)
    assert job.timeout == 600
    assert job.result_ttl == 30
    assert job.meta == {"team": "billing"}


# -- (c) the worker-side helper -------------------------------------------------------------
def test_run_payload_reports_once_and_refuses_copies(
    redis_url: str, rq_workers: object, connection: redis.Redis
) -> None:
    configure(rq=rq_config(redis_url))
    key = f"helper-{secrets.token_hex(4)}"
    assert answer_in("rq", delivery_idempotency_key=key) == 42

    original = Job.fetch(key, connection=connection)
    assert wait_for_status(original, "finished", "failed") == "finished"
    # RQ's result store holds only a note; the result itself went to the callback server.
    assert original.return_value() == "task_result"

    # A second copy of the same signed payload, enqueued with RQ's own API, does not run.
    queue = Queue(QUEUE, connection=connection)
    copy = queue.enqueue("wove_rq.worker.run_payload", original.args[0])
    assert wait_for_status(copy, "finished", "failed") == "finished"
    assert copy.return_value() == "not_claimed"

    # A payload nobody signed is refused before anything is unpickled; RQ records the failure.
    forged = queue.enqueue("wove_rq.worker.run_payload", "not a signed payload\n")
    assert wait_for_status(forged, "finished", "failed") == "failed"
    result = forged.latest_result()
    assert result is not None
    assert "FrameRejectedError" in (result.exc_string or "")


def test_rq_job_id_rule() -> None:
    assert rq_job_id("run-abc123") == "run-abc123"
    assert rq_job_id("Key_With-Dashes") == "Key_With-Dashes"
    long = "k" * 129
    assert len(rq_job_id(long)) == 100 + 1 + 16
    assert rq_job_id("a b") != rq_job_id("a:b")
    assert rq_job_id("a b").startswith("a_b-")
    assert rq_job_id("") != ""
