"""What only Celery shows: killed workers, a restarted broker, revokes, job ids, configuration
errors and the worker-side helper -- against real brokers and real worker processes."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wove
from wove import weave
from wove_celery._adapter import close_app

from .conftest import (
    BACKEND_DB,
    BROKER_DB,
    CeleryWorker,
    _alive,
    backend_services,
    environment_for,
    queue_name,
)

GUARD = 30.0


def _result_app(worker: CeleryWorker) -> Any:
    """A Celery app on the worker's broker and backend, to read the backend's own view."""
    from celery import Celery

    return Celery("wove-celery-test-reader", broker=worker.broker, backend=worker.backend)


@pytest.fixture
def reader(redis_worker: CeleryWorker) -> Iterator[Any]:
    app = _result_app(redis_worker)
    yield app
    close_app(app)


def _blocker(started: Path, release: Path, finished: Path) -> Callable[[], bool]:
    started_at, release_at, finished_at = str(started), str(release), str(finished)

    def block() -> bool:
        with open(started_at, "w") as marker:
            marker.write(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not os.path.exists(release_at) and time.monotonic() < deadline:
            time.sleep(0.02)
        open(finished_at, "w").close()
        return True

    return block


def _waiter(path: Path) -> Callable[[], None]:
    at = str(path)

    def wait() -> None:
        deadline = time.monotonic() + 30
        while not (os.path.exists(at) and os.path.getsize(at)) and time.monotonic() < deadline:
            time.sleep(0.02)

    return wait


def _state(app: Any, job_id: str) -> str:
    return str(app.AsyncResult(job_id).state)


def _use(**environments: dict[str, Any]) -> None:
    wove.config(environments=environments)


def _cancel_running_sync_task(worker: CeleryWorker, folder: Path) -> None:
    """A failing sibling cancels a running sync task: its pool process is killed and Celery
    records the job REVOKED."""
    _use(celery=environment_for(worker))
    started, release, finished = folder / "started", folder / "release", folder / "finished"
    block = _blocker(started, release, finished)
    wait_started = _waiter(started)
    key = f"wove-celery-cancel-{uuid.uuid4().hex[:12]}"

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(RuntimeError, match="sibling failed on purpose"),
        weave(environment="celery", delivery_timeout=GUARD) as w,
    ):

        @w.do(delivery_idempotency_key=key)
        def long_sync() -> bool:
            return block()

        @w.do
        def fails() -> None:
            wait_started()
            raise RuntimeError("sibling failed on purpose")

    assert "long_sync" in w.result.cancelled
    pid = int(started.read_text())
    app = _result_app(worker)
    try:
        backend_services.wait_until(lambda: not _alive(pid), 30, "the pool process to die")
        backend_services.wait_until(
            lambda: _state(app, key) == "REVOKED", 30, "Celery to record the job REVOKED"
        )
    finally:
        close_app(app)
    release.touch()
    assert not finished.exists(), "the cancelled task ran on after its process was killed"


# -- (a) a worker killed from outside ---------------------------------------------------------


def test_killed_worker_fails_the_weave_with_a_clear_orphan_error(
    redis_worker: CeleryWorker, tmp_path: Path
) -> None:
    redis_worker.wait_ready()
    _use(celery=environment_for(redis_worker))
    started, release, finished = tmp_path / "started", tmp_path / "release", tmp_path / "finished"
    block = _blocker(started, release, finished)

    def kill_when_started() -> None:
        backend_services.wait_until(
            lambda: started.exists() and started.stat().st_size > 0, 30, "the task to start"
        )
        redis_worker.process.kill()

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    try:
        with (
            pytest.raises(wove.DeliveryOrphanedError) as caught,
            weave(environment="celery", delivery_timeout=GUARD) as w,
        ):

            @w.do
            def waits() -> bool:
                return block()

    finally:
        killer.join(35)
        release.touch()
    message = str(caught.value)
    assert "waits" in message
    assert "sent nothing" in message
    assert "probably killed" in message
    assert not finished.exists()
    redis_worker.wait_ready()  # the next test gets a live worker again
    with weave(environment="celery", delivery_timeout=GUARD) as again:

        @again.do
        def fine() -> int:
            return 7

    assert again.result.fine == 7


# -- (b) the broker restarted between two weaves -------------------------------------------------


def test_broker_restart_between_weaves(tmp_path: Path) -> None:
    server = backend_services.Redis.private()
    worker: CeleryWorker | None = None
    try:
        worker = CeleryWorker(
            server.url(BROKER_DB), server.url(BACKEND_DB), queue_name("private"), tmp_path
        )
        _use(celery=environment_for(worker))

        def one_weave(value: int) -> int:
            with weave(environment="celery", delivery_timeout=GUARD) as w:

                @w.do
                def double() -> int:
                    return value * 2

            result: int = w.result.double
            return result

        assert one_weave(1) == 2
        server.restart()
        assert one_weave(2) == 4  # the adapter's client app and the worker reconnected
    finally:
        if worker is not None:
            worker.stop()
        server.stop()


# -- (c) cancel for real ------------------------------------------------------------------------


def test_cancel_kills_a_running_task_in_celery(redis_worker: CeleryWorker, tmp_path: Path) -> None:
    redis_worker.wait_ready()
    _cancel_running_sync_task(redis_worker, tmp_path)


def test_cancel_revokes_a_queued_job_which_then_never_runs(
    redis_worker: CeleryWorker, reader: Any, tmp_path: Path, workers_folder: Path
) -> None:
    redis_worker.wait_ready()
    idle_queue = queue_name("idle")  # no worker consumes it until the end of the test
    _use(
        celery=environment_for(redis_worker),
        idle=environment_for(redis_worker, queue=idle_queue),
    )
    ran = tmp_path / "ran"
    ran_at = str(ran)
    key = f"wove-celery-queued-{uuid.uuid4().hex[:12]}"
    broker_url = redis_worker.broker

    def queued_in_broker() -> None:
        import redis

        with redis.Redis.from_url(broker_url) as client:
            deadline = time.monotonic() + 30
            while client.llen(idle_queue) < 5 and time.monotonic() < deadline:
                time.sleep(0.02)

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(RuntimeError, match="sibling failed on purpose"),
        weave(environment="celery", delivery_timeout=GUARD) as w,
    ):

        @w.do(environment="idle", delivery_idempotency_key=key)
        def queued() -> None:
            open(ran_at, "w").close()

        @w.do(range(4), environment="idle")
        def more_queued(item: int) -> None:  # cancelled together: one revoke broadcast
            open(f"{ran_at}.{item}", "w").close()

        @w.do
        def fails() -> None:
            queued_in_broker()
            raise RuntimeError("sibling failed on purpose")

    assert {"queued", "more_queued"} <= w.result.cancelled
    # The worker that got the revoke broadcast marked the still-pending job REVOKED.
    backend_services.wait_until(
        lambda: _state(reader, key) == "REVOKED", 30, "Celery to record the queued job REVOKED"
    )
    # Celery cannot take a message out of a broker queue; a worker that later consumes it
    # (one that never saw the revoke) is refused the run by the callback server.
    late = CeleryWorker(redis_worker.broker, redis_worker.backend, idle_queue, workers_folder)
    try:
        backend_services.wait_until(
            lambda: (
                reader.AsyncResult(key).result == "not_claimed"
                or (_queue_length(broker_url, idle_queue) == 0 and _state(reader, key) == "REVOKED")
            ),
            60,
            "the late worker to dispose of the revoked job",
        )
    finally:
        late.stop()
    assert not list(tmp_path.glob("ran*")), "a cancelled, queued job ran"


def _queue_length(broker_url: str, queue: str) -> int:
    import redis

    with redis.Redis.from_url(broker_url) as client:
        length: int = client.llen(queue)
        return length


# -- (d) job ids come from delivery_idempotency_key ----------------------------------------------


def test_job_id_is_the_idempotency_key(redis_worker: CeleryWorker, reader: Any) -> None:
    redis_worker.wait_ready()
    _use(celery=environment_for(redis_worker))
    key = f"wove-celery-key-{uuid.uuid4().hex[:12]}"

    with weave(environment="celery", delivery_timeout=GUARD) as w:

        @w.do(delivery_idempotency_key=key)
        def keyed() -> str:
            return "done"

    assert w.result.keyed == "done"
    # Celery knows the job under the key, and its own result is only the outcome's word.
    backend_services.wait_until(
        lambda: _state(reader, key) == "SUCCESS", 30, "Celery to record the job SUCCESS"
    )
    assert reader.AsyncResult(key).result == "task_result"

    # The same key again is a new job under the same id; stale state is not misread.
    with weave(environment="celery", delivery_timeout=GUARD) as again:

        @again.do(delivery_idempotency_key=key)
        def keyed_again() -> str:
            return "again"

    assert again.result.keyed_again == "again"


# -- (e) configuration errors -------------------------------------------------------------------


def _start_error(config: dict[str, Any]) -> str:
    _use(bad={"executor": "celery", "executor_config": {"security": "env:WOVE_SECRET", **config}})
    with pytest.raises(Exception) as caught, weave(environment="bad", delivery_timeout=GUARD) as w:

        @w.do
        def never() -> int:
            return 1

    return str(caught.value)


def test_missing_broker_names_the_settings() -> None:
    message = _start_error({})
    assert "no broker" in message
    assert "broker_url" in message
    assert "app" in message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"broker_url": 6379}, "broker_url must be a URL string"),
        ({"broker_url": "redis://127.0.0.1:1/1", "result_backend": 2}, "result_backend must be"),
        ({"app": "tasks:app"}, "app must be a celery.Celery instance"),
        ({"broker_url": "redis://127.0.0.1:1/1", "task_name": ""}, "task_name must be"),
        ({"broker_url": "redis://127.0.0.1:1/1", "queue": 3}, "queue must be"),
        ({"broker_url": "redis://127.0.0.1:1/1", "apply_async_options": [1]}, "must be a dict"),
        (
            {"broker_url": "redis://127.0.0.1:1/1", "apply_async_options": {"task_id": "x"}},
            "may not set task_id",
        ),
        ({"broker_url": "redis://127.0.0.1:1/1", "brokr": "x"}, "brokr"),
    ],
)
def test_wrong_settings_are_named(config: dict[str, Any], expected: str) -> None:
    assert expected in _start_error(config)


def test_app_and_broker_url_together_are_refused() -> None:
    from celery import Celery

    app = Celery("both", broker="redis://127.0.0.1:1/1", set_as_current=False)
    try:
        message = _start_error({"app": app, "broker_url": "redis://127.0.0.1:1/1"})
    finally:
        close_app(app)
    assert "either app or broker_url" in message


def test_unreachable_broker_fails_at_start_with_the_url() -> None:
    port = backend_services.free_port()
    message = _start_error({"broker_url": f"redis://127.0.0.1:{port}/1"})
    assert "cannot reach the Celery broker" in message
    assert str(port) in message


# -- (f) the worker-side helper -----------------------------------------------------------------


def test_register_wove_task_registers_one_named_task() -> None:
    from celery import Celery

    from wove_celery import register_wove_task

    app = Celery("helper", broker="memory://", set_as_current=False)
    try:
        task = register_wove_task(app)
        custom = register_wove_task(app, name="jobs.wove", acks_late=True)
        assert task.name == "wove.run"
        assert custom.name == "jobs.wove"
        assert {"wove.run", "jobs.wove"} <= set(app.tasks)
        assert app.tasks["jobs.wove"].acks_late
        with pytest.raises(TypeError, match="non-empty string"):
            register_wove_task(app, name="")
        # A forged payload is refused before anything is unpickled, loudly.
        with pytest.raises(wove.FrameRejectedError):
            task.run("forged\tpayload")
    finally:
        app.close()


def test_app_given_directly_is_used(redis_worker: CeleryWorker) -> None:
    redis_worker.wait_ready()
    app = _result_app(redis_worker)
    try:
        _use(
            celery={
                "executor": "celery",
                "executor_config": {
                    "app": app,
                    "queue": redis_worker.queue,
                    "task_name": "wove.run",
                    "apply_async_options": {"priority": 3},
                    "security": "env:WOVE_SECRET",
                    "worker_heartbeat_seconds": 0.5,
                    "status_interval": 0.25,
                },
            }
        )
        with weave(environment="celery", delivery_timeout=GUARD) as w:

            @w.do([1, 2, 3])
            def square(item: int) -> int:
                return item * item

        assert w.result.square == [1, 4, 9]
    finally:
        close_app(app)


# -- the same against RabbitMQ ------------------------------------------------------------------


class TestRabbitMQBroker:
    """A few weaves, a cancel included, through a RabbitMQ broker (Redis result backend), on a
    worker and queue of their own."""

    @pytest.fixture(autouse=True)
    def environment(self, rabbitmq_worker: CeleryWorker) -> None:
        rabbitmq_worker.wait_ready()
        _use(celery=environment_for(rabbitmq_worker))

    def test_mapped_weave(self) -> None:
        with weave(environment="celery", delivery_timeout=GUARD) as w:

            @w.do([1, 2, 3, 4])
            def triple(item: int) -> int:
                return item * 3

            @w.do
            async def total(triple: list[int]) -> int:
                return sum(triple)

        assert w.result.total == 30

    def test_task_error_comes_back(self) -> None:
        with (
            pytest.raises(ValueError, match="over amqp"),
            weave(environment="celery", delivery_timeout=GUARD) as w,
        ):

            @w.do
            def broken() -> None:
                raise ValueError("over amqp")

    def test_cancel_kills_a_running_task(
        self, rabbitmq_worker: CeleryWorker, tmp_path: Path
    ) -> None:
        _cancel_running_sync_task(rabbitmq_worker, tmp_path)
