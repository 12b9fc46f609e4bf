"""The ``rq`` executor against real Redis and real ``rq worker`` processes: what the conformance
suite cannot see from outside -- RQ's own view of jobs, killed workers, a restarted Redis,
configuration mistakes, and the worker-side helper."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job

import wove
import wove.testing
from wove import weave
from wove.testing import blocker, waiter
from wove_rq import RQExecutor, rq_job_id

from .conftest import QUEUE, backend_services, start_worker

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
    wove.config(
        environments={
            name: {"executor": "rq", "executor_config": config}
            for name, config in environments.items()
        }
    )


def executor_of(name: str) -> RQExecutor:
    executor = wove.testing.executor_of(name)
    assert isinstance(executor, RQExecutor)
    return executor


def answer_in(environment: str, **options: Any) -> int:
    with weave(environment=environment, delivery_timeout=HANG_GUARD) as w:

        @w.do(**options)
        def answer() -> int:
            return 42

    result: int = w.result.answer
    return result


def wait_for_status(job: Job, *states: str) -> str:
    backend_services.wait_until(
        lambda: job.get_status(refresh=True) in states, HANG_GUARD, f"RQ job {job.id} {states}"
    )
    return str(job.get_status(refresh=False).value)


# -- (a) a worker killed from outside ---------------------------------------------------------
@pytest.fixture(scope="module")
def lone_worker(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[backend_services.WorkerProcess]:
    """The only worker on its own queue, so the test knows which process runs the task."""
    worker = start_worker(redis_url, "wove-lone", "lone", tmp_path_factory)
    yield worker
    worker.stop()


def pid_reporting_blocker(started: Path, release: Path) -> Callable[[], int]:
    """A task body that writes its process id to ``started``, then waits for ``release``."""
    started_at, release_at = str(started), str(release)

    def stuck() -> int:
        with open(started_at + ".tmp", "w") as marker:
            marker.write(str(os.getpid()))
        os.replace(started_at + ".tmp", started_at)  # whole, or not there at all
        deadline = time.monotonic() + 60
        while not os.path.exists(release_at) and time.monotonic() < deadline:
            time.sleep(0.01)
        return os.getpid()

    return stuck


def test_worker_killed_mid_task_fails_the_weave_with_orphaned_error(
    redis_url: str, lone_worker: backend_services.WorkerProcess, tmp_path: Path
) -> None:
    """The worker and its work horse die together, as when their machine or container does.

    RQ runs each job in a horse with its own process group; ``WorkerProcess.kill()`` kills
    the worker's descendants too, and the horse is also killed by the PID it reported, in case
    it was not yet listed as a child when the worker died.
    """
    configure(lone=rq_config(redis_url, "wove-lone"))
    started, release = tmp_path / "started", tmp_path / "release"
    body = pid_reporting_blocker(started, release)
    restarts = lone_worker.restarts

    def kill_once_started() -> None:
        backend_services.wait_until(started.exists, HANG_GUARD, "the task starting")
        lone_worker.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(started.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_once_started)
    killer.start()
    try:
        with (
            pytest.raises(wove.DeliveryOrphanedError) as caught,
            weave(environment="lone", delivery_timeout=HANG_GUARD) as w,
        ):
            w.do(body)
    finally:
        killer.join(HANG_GUARD)
        release.touch()
    message = str(caught.value)
    assert "stuck" in message
    assert "sent nothing" in message
    assert "probably killed" in message
    # The killed worker was replaced, and the queue is served again.
    backend_services.wait_until(
        lambda: lone_worker.restarts > restarts, HANG_GUARD, "the worker restarting"
    )
    assert answer_in("lone") == 42


# -- (b) Redis restarted between two weaves -------------------------------------------------
def test_redis_restart_between_weaves_reconnects(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = backend_services.Redis.private()
    try:
        worker = start_worker(server.url(0), QUEUE, "private", tmp_path_factory)
        try:
            configure(private=rq_config(server.url(0)))
            assert answer_in("private") == 42
            executor = executor_of("private")

            server.restart()

            assert answer_in("private") == 42
            assert executor_of("private") is executor, "a new executor, not a reconnect"
        finally:
            worker.stop()
    finally:
        server.stop()


# -- (c) cancellation reaches RQ ------------------------------------------------------------
def test_sibling_failure_stops_the_running_rq_job(
    redis_url: str, rq_workers: object, connection: redis.Redis, tmp_path: Path
) -> None:
    configure(rq=rq_config(redis_url))
    key = f"cancel-running-{secrets.token_hex(4)}"
    started, finished, release = tmp_path / "started", tmp_path / "finished", tmp_path / "release"
    block = blocker(release, started=started, finished=finished)
    wait_started = waiter(started)

    try:
        with (  # noqa: PT012 - the weave raises when its block ends
            pytest.raises(RuntimeError, match="sibling failed on purpose"),
            weave(environment="rq", delivery_timeout=HANG_GUARD) as w,
        ):

            @w.do(delivery_idempotency_key=key)
            def long_sync() -> bool:
                return block()

            @w.do
            def fails() -> None:
                wait_started()
                raise RuntimeError("sibling failed on purpose")

        assert "long_sync" in w.result.cancelled
        job = Job.fetch(key, connection=connection)
        # RQ marks a job "stopped" once the work horse it killed has been reaped.
        assert wait_for_status(job, "stopped", "finished", "failed") == "stopped"
    finally:
        release.touch()
    assert not finished.exists(), "the sync task ran on after its horse was killed"


def test_cancel_removes_a_queued_job_from_rq(redis_url: str, connection: redis.Redis) -> None:
    queue_name = f"wove-nobody-{secrets.token_hex(4)}"  # no worker listens here
    configure(idle=rq_config(redis_url, queue_name))
    key = f"cancel-queued-{secrets.token_hex(4)}"
    url = redis_url

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(RuntimeError, match="sibling failed on purpose"),
        weave(delivery_timeout=HANG_GUARD) as w,
    ):

        @w.do(environment="idle", delivery_idempotency_key=key)
        def never_runs() -> int:
            return 1

        @w.do  # in the local default environment, next to the test
        def fails() -> None:
            with redis.Redis.from_url(url) as client:
                backend_services.wait_until(
                    lambda: Job.exists(key, connection=client), HANG_GUARD, "the job enqueued"
                )
            raise RuntimeError("sibling failed on purpose")

    assert "never_runs" in w.result.cancelled
    job = Job.fetch(key, connection=connection)
    # The cancel reaches RQ from the dispatch loop, after the weave has already returned.
    backend_services.wait_until(
        lambda: job.get_status(refresh=True) == "canceled", HANG_GUARD, "the job cancelled"
    )
    assert key not in Queue(queue_name, connection=connection).job_ids


# -- (d) job ids ----------------------------------------------------------------------------
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


# -- (e) configuration ----------------------------------------------------------------------
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


# -- (f) the worker-side helper -------------------------------------------------------------
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
