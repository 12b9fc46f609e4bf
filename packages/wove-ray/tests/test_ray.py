"""The ``ray`` executor against a real ``ray start --head`` cluster: what the conformance suite
cannot see from outside -- Ray's own view of tasks, a restarted head, configuration mistakes,
and the worker-side helper. A killed Ray worker is a scenario of the conformance kit
(test_conformance.py)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError

import wove
import wove.testing
from wove import weave
from wove.backends import BackendJob
from wove.testing import attempt_counter, blocker, configure_executor, waiter
from wove_ray import RayExecutor, run_payload
from wove_ray._adapter import RayHandle

from .conftest import backend_services, ray_config, ray_service

HANG_GUARD = 60.0


def configure(**environments: dict[str, Any]) -> None:
    configure_executor("ray", **environments)


def executor_of(name: str) -> RayExecutor:
    executor = wove.testing.executor_of(name)
    assert isinstance(executor, RayExecutor)
    return executor


def answer_in(environment: str, **options: Any) -> int:
    return wove.testing.answer_in(environment, delivery_timeout=HANG_GUARD, **options)


def submitted_job(environment: str, task_id: str) -> BackendJob:
    """The executor's job for ``task_id`` once Ray has it; called from a sibling task that runs
    in this process (the local environment) while the Ray task is in flight."""
    found: list[BackendJob] = []

    def handed_over() -> bool:
        jobs = list(executor_of(environment)._jobs.values())
        found[:] = [job for job in jobs if job.task_id == task_id and job.submitted]
        return bool(found)

    backend_services.wait_until(handed_over, HANG_GUARD, f"Ray holding task {task_id!r}")
    return found[0]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return False
    return state != "Z"


# -- (b) the head restarted between two weaves -------------------------------------------------
def test_head_restart_between_weaves_reconnects(ray_head: ray_service.RayHead) -> None:
    configure(ray=ray_config(ray_head.address))
    assert answer_in("ray") == 42
    executor = executor_of("ray")
    old_cluster = ray.get_runtime_context().gcs_address, ray_head.starts

    ray_head.restart()

    assert answer_in("ray") == 42
    assert executor_of("ray") is executor, "a new executor, not a reconnect"
    assert ray_head.starts == old_cluster[1] + 1
    assert ray.get_runtime_context().gcs_address == old_cluster[0]  # same address, new cluster


def test_head_down_fails_the_submission_clearly(ray_head: ray_service.RayHead) -> None:
    configure(ray=ray_config(ray_head.address))
    assert answer_in("ray") == 42
    ray_head.stop()
    try:
        with pytest.raises(wove.EnvironmentExecutionError) as caught:
            answer_in("ray")
        assert f"cannot reach the Ray cluster's GCS at {ray_head.address}" in str(caught.value)
    finally:
        ray_head.start()
    assert answer_in("ray") == 42


# -- (c) cancellation reaches Ray ----------------------------------------------------------
def test_sibling_failure_kills_the_running_ray_task(
    ray_head: ray_service.RayHead, tmp_path: Path
) -> None:
    configure(ray=ray_config(ray_head.address))
    started, finished, release = tmp_path / "started", tmp_path / "finished", tmp_path / "release"
    pid_file = tmp_path / "pid"
    block = blocker(release, started=started, finished=finished)
    wait_started = waiter(started)
    pid_at = str(pid_file)
    handles: list[RayHandle] = []

    try:
        with (  # noqa: PT012 - the weave raises when its block ends
            pytest.raises(RuntimeError, match="sibling failed on purpose"),
            weave(delivery_timeout=HANG_GUARD) as w,
        ):

            @w.do(environment="ray")
            def long_sync() -> bool:
                with open(pid_at, "w") as marker:
                    marker.write(str(os.getpid()))
                return block()

            @w.do  # in the local environment, next to the test
            def fails() -> None:
                wait_started()
                handles.append(submitted_job("ray", "long_sync").handle)
                raise RuntimeError("sibling failed on purpose")

        assert "long_sync" in w.result.cancelled
        # Ray's own view: the task was cancelled, and its worker process killed.
        with pytest.raises((TaskCancelledError, WorkerCrashedError)):
            ray.get(handles[0].ref, timeout=HANG_GUARD)
        worker = int(pid_file.read_text())
        backend_services.wait_until(lambda: not alive(worker), HANG_GUARD, "the worker dying")
    finally:
        release.touch()
    assert not finished.exists(), "the sync task ran on after its worker was killed"


def test_cancel_removes_a_queued_task_from_ray(ray_head: ray_service.RayHead) -> None:
    # No node has this resource: Ray holds the task as infeasible, queued forever.
    nowhere = {"num_cpus": 0.5, "resources": {"wove-test-nowhere": 1}}
    configure(idle=ray_config(ray_head.address, remote_options=nowhere))
    handles: list[RayHandle] = []

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(RuntimeError, match="sibling failed on purpose"),
        weave(delivery_timeout=HANG_GUARD) as w,
    ):

        @w.do(environment="idle")
        def never_runs() -> int:
            return 1

        @w.do  # in the local default environment, next to the test
        def fails() -> None:
            handles.append(submitted_job("idle", "never_runs").handle)
            raise RuntimeError("sibling failed on purpose")

    assert "never_runs" in w.result.cancelled
    # The cancel reaches Ray from the dispatch loop, perhaps after the weave returned.
    with pytest.raises(TaskCancelledError):
        ray.get(handles[0].ref, timeout=HANG_GUARD)


def test_cancel_without_force_leaves_the_worker_alive(
    ray_head: ray_service.RayHead, tmp_path: Path
) -> None:
    configure(ray=ray_config(ray_head.address, cancel_force=False))
    started = tmp_path / "started"
    wait_started = waiter(started)
    pid_at, started_at = str(tmp_path / "pid"), str(started)

    def mark_started() -> None:  # sync, for the async body below
        with open(pid_at, "w") as marker:
            marker.write(str(os.getpid()))
        os.replace(pid_at, started_at)  # started, once the pid is written

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(RuntimeError, match="sibling failed on purpose"),
        weave(delivery_timeout=HANG_GUARD) as w,
    ):

        @w.do(environment="ray")
        async def long_async() -> None:
            import asyncio

            mark_started()
            await asyncio.sleep(HANG_GUARD)

        @w.do
        def fails() -> None:
            wait_started()
            raise RuntimeError("sibling failed on purpose")

    assert "long_async" in w.result.cancelled
    worker = int(started.read_text())
    assert alive(worker), "cancel_force=False killed the worker"
    assert answer_in("ray") == 42


# -- (d) task names ------------------------------------------------------------------------
def test_task_name_comes_from_the_idempotency_key(ray_head: ray_service.RayHead) -> None:
    """Ray titles a worker process ``ray::<task name>`` while it runs a task (what ``ps`` and
    the dashboard show); the body reads its own process's title."""
    configure(ray=ray_config(ray_head.address))
    key = f"invoice-{secrets.token_hex(4)}"

    def ray_title() -> str:
        with open("/proc/self/cmdline", "rb") as cmdline:
            return cmdline.read().split(b"\0")[0].decode()

    with weave(environment="ray", delivery_timeout=HANG_GUARD) as w:

        @w.do(delivery_idempotency_key=key)
        def named() -> str:
            return ray_title()

        @w.do
        def unkeyed() -> str:
            return ray_title()

    assert w.result.named == f"ray::{key}"
    assert w.result.unkeyed.startswith("ray::unkeyed-")  # the run id, without a key


def test_ray_does_not_deduplicate_a_key_used_twice(
    ray_head: ray_service.RayHead, tmp_path: Path
) -> None:
    """Ray has no job ids to refuse a duplicate by: two weaves with one key run twice."""
    configure(ray=ray_config(ray_head.address))
    key = f"twice-{secrets.token_hex(4)}"
    count = attempt_counter(tmp_path / "count")

    for _ in range(2):
        with weave(environment="ray", delivery_timeout=HANG_GUARD) as w:

            @w.do(delivery_idempotency_key=key)
            def counted() -> int:
                return count()

    assert (tmp_path / "count").stat().st_size == 2


# -- (e) configuration ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"address": 6380}, r"address must be the head's GCS address as a string"),
        ({"address": ""}, r"address must be the head's GCS address"),
        ({"address": "ray://127.0.0.1:10001"}, r"is a Ray Client address"),
        ({"namespace": ""}, r"namespace must be a non-empty string"),
        ({"cancel_force": "yes"}, r"cancel_force must be True"),
        ({"remote_options": 1}, r"remote_options must be a dict of ray\.remote options"),
        ({"remote_options": {"name": "x"}}, r"remote_options does not take 'name'; it takes"),
        ({"remote_options": {"num_cpus": "two"}}, r"remote_options refused by Ray: .*num_cpus"),
        ({"remote_options": {"max_retries": -5}}, r"refused by Ray: .*max_retries"),
    ],
)
def test_configuration_errors_name_the_problem_and_the_fix(
    ray_head: ray_service.RayHead, config: dict[str, Any], message: str
) -> None:
    configure(bad={**ray_config(ray_head.address), **config})

    with pytest.raises(wove.InvalidOptionError, match=message):
        answer_in("bad")


def test_missing_address_without_a_connection_names_the_fix(
    ray_head: ray_service.RayHead,
) -> None:
    ray.shutdown()  # no environment uses it between tests; the next one connects again
    configure(bad=ray_config(None))

    with pytest.raises(wove.InvalidOptionError, match=r"no Ray cluster to submit to; set addr"):
        answer_in("bad")


def test_unreachable_address_fails_when_the_environment_starts() -> None:
    ray.shutdown()
    address = f"127.0.0.1:{backend_services.free_port()}"
    configure(gone=ray_config(address))

    with pytest.raises(ConnectionError, match=rf"cannot reach the Ray cluster at '{address}'"):
        answer_in("gone")


def test_second_address_in_one_process_is_refused(ray_head: ray_service.RayHead) -> None:
    other = f"127.0.0.1:{backend_services.free_port()}"
    configure(ok=ray_config(ray_head.address), other=ray_config(other))
    assert answer_in("ok") == 42

    with pytest.raises(wove.InvalidOptionError, match="Ray connects a process to one cluster"):
        answer_in("other")


def test_connection_made_by_the_application_is_reused_and_kept(
    ray_head: ray_service.RayHead,
) -> None:
    ray.shutdown()
    ray.init(address=ray_head.address, namespace="app", log_to_driver=False)
    try:
        context = ray.get_runtime_context()
        configure(mine=ray_config(None))  # no address: the application's connection

        assert answer_in("mine") == 42

        configure(clash=ray_config(None, namespace="other"))
        with pytest.raises(wove.InvalidOptionError, match="namespace 'other' differs"):
            answer_in("clash")
        assert ray.is_initialized()
        assert ray.get_runtime_context().namespace == context.namespace == "app"
    finally:
        ray.shutdown()


# -- (f) the worker-side helper -------------------------------------------------------------
def test_run_payload_reports_once_and_refuses_copies(
    ray_head: ray_service.RayHead, tmp_path: Path
) -> None:
    configure(ray=ray_config(ray_head.address))
    count = attempt_counter(tmp_path / "count")
    release = tmp_path / "release"
    wait_release = waiter(release)
    captured: list[BackendJob] = []

    with weave(delivery_timeout=HANG_GUARD) as w:

        @w.do(environment="ray")
        def counted() -> int:
            wait_release()
            return count()

        @w.do
        def capture() -> None:
            captured.append(submitted_job("ray", "counted"))
            release.touch()

    assert w.result.counted == 1
    job = captured[0]
    # Ray's object store holds only a note; the result itself went to the callback server.
    assert ray.get(job.handle.ref, timeout=HANG_GUARD) == "task_result"

    # A second copy of the same signed payload, submitted with Ray's own API, does not run: the
    # callback server refuses its claim, or -- on the worker that ran the original -- the
    # signature's replay cache refuses it first.
    remote = ray.remote(run_payload).options(num_cpus=0.5, max_retries=0)
    try:
        outcome = ray.get(remote.remote(job.payload), timeout=HANG_GUARD)
    except RayTaskError as error:
        outcome = type(error.cause).__name__
    assert outcome in ("not_claimed", "FrameRejectedError")
    assert (tmp_path / "count").stat().st_size == 1, "the copy ran the task again"

    # A payload nobody signed is refused before anything is unpickled; Ray records the failure.
    with pytest.raises(RayTaskError, match="FrameRejectedError"):
        ray.get(remote.remote("not a signed payload\n"), timeout=HANG_GUARD)


def test_ray_worker_environment_has_the_secret(ray_head: ray_service.RayHead) -> None:
    """The documented setup: workers get WOVE_SECRET from the environment of `ray start`."""
    configure(ray=ray_config(ray_head.address))
    with weave(environment="ray", delivery_timeout=HANG_GUARD) as w:

        @w.do
        def secret_seen() -> bool:
            return bool(os.environ.get("WOVE_SECRET"))

    assert w.result.secret_seen is True
