"""``mode="rest"`` against the same real cluster, through a real slurmrestd: a job deleted from
outside, a wrong or expired token, slurmrestd restarted between weaves, unreachable
slurmrestd, the REST job description, duplicates, and configuration errors."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import wove
from wove.backends import BackendJob, DuplicateJobError
from wove.testing import executor_of
from wove_slurm import SlurmAdapter, SlurmJob

from .conftest import GUARD, TOKEN_VARIABLE, backend_services, slurm_rest_environment, slurm_service
from .test_slurm import (
    alive,
    configure,
    job_fields,
    jobs_named,
    only_job,
    payload_files,
    unique,
    wait_for,
)


def rest_delete(cluster: slurm_service.SlurmCluster, slurm_id: str) -> None:
    """``DELETE /slurm/v0.0.38/job/<id>``, as another REST client would."""
    import urllib.request

    request = urllib.request.Request(
        f"{cluster.rest_url}/slurm/{slurm_service.REST_API_VERSION}/job/{slurm_id}",
        method="DELETE",
        headers={"X-SLURM-USER-NAME": "root", "X-SLURM-USER-TOKEN": cluster.token()},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response)["errors"] == []


def test_job_deleted_through_rest_from_outside_fails_the_weave(
    slurm_cluster: slurm_service.SlurmCluster, tmp_path: Path, environments: list[str]
) -> None:
    configure(cluster=slurm_rest_environment(slurm_cluster))
    environments.append("cluster")
    key = unique("deleted")
    pid_file = tmp_path / "pid"
    never = tmp_path / "never-created"

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(
            wove.DeliveryOrphanedError,
            match=r"slurm reports job 'deleted-\w+' cancelled \(Slurm job \d+ CANCELLED",
        ),
        wove.weave(delivery_timeout=GUARD) as w,
    ):

        @w.do(environment="cluster", delivery_idempotency_key=key)
        def waits() -> str:
            pid_file.write_text(str(os.getpid()))
            while not never.exists():
                time.sleep(0.05)
            return "released"

        @w.do
        def deleter() -> None:
            wait_for(pid_file.exists, "the task started in its Slurm job")
            rest_delete(slurm_cluster, only_job(slurm_cluster, f"wove-{key}"))

    assert "waits" in str(w.result.exception)
    wait_for(lambda: not alive(int(pid_file.read_text())), "the task's process is gone")


def test_running_job_cancelled_by_a_failing_sibling_is_killed_through_rest(
    slurm_cluster: slurm_service.SlurmCluster, tmp_path: Path, environments: list[str]
) -> None:
    configure(cluster=slurm_rest_environment(slurm_cluster))
    environments.append("cluster")
    key = unique("rest-running")
    pid_file = tmp_path / "pid"
    never = tmp_path / "never-created"

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(RuntimeError, match="sibling failed"),
        wove.weave(delivery_timeout=GUARD) as w,
    ):

        @w.do(environment="cluster", delivery_idempotency_key=key)
        def long_sync() -> None:
            pid_file.write_text(str(os.getpid()))
            while not never.exists():
                time.sleep(0.05)

        @w.do
        def fails() -> None:
            wait_for(pid_file.exists, "the task started in its Slurm job")
            raise RuntimeError("sibling failed on purpose")

    assert "long_sync" in w.result.cancelled
    slurm_id = only_job(slurm_cluster, f"wove-{key}")
    wait_for(
        lambda: jobs_named(slurm_cluster, f"wove-{key}")[slurm_id] == "CANCELLED",
        "Slurm shows the job cancelled",
    )
    wait_for(lambda: not alive(int(pid_file.read_text())), "the task's process is gone")


def fake_jwt(**claims: Any) -> str:
    """A token shaped like Slurm's JWTs but signed with nothing slurmctld knows."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param(
            fake_jwt(exp=int(time.time()) + 3600, iat=int(time.time()), sun="root"),
            r"could not reach slurmctld with the token from rest_token for user 'root' .*"
            r"renew the token",
            id="forged",
        ),
        pytest.param(
            fake_jwt(exp=1700000000, iat=1699990000, sun="root"),
            rf"token from the environment variable {TOKEN_VARIABLE} expired at 2023-11-14",
            id="expired",
        ),
    ],
)
def test_wrong_token_is_a_clear_error_when_the_environment_starts(
    token: str,
    message: str,
    slurm_cluster: slurm_service.SlurmCluster,
    monkeypatch: pytest.MonkeyPatch,
    environments: list[str],
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, token)
    configure(badtoken=slurm_rest_environment(slurm_cluster))
    environments.append("badtoken")

    with (
        pytest.raises(PermissionError, match=message),
        wove.weave(environment="badtoken", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None


def test_token_from_a_callable_is_fetched_for_each_request(
    slurm_cluster: slurm_service.SlurmCluster, environments: list[str]
) -> None:
    calls: list[float] = []

    def fresh_token() -> str:
        calls.append(time.monotonic())
        return slurm_cluster.token(lifespan=600)

    configure(cluster=slurm_rest_environment(slurm_cluster, rest_token=fresh_token))
    environments.append("cluster")

    with wove.weave(environment="cluster", delivery_timeout=GUARD) as w:

        @w.do
        def hello() -> str:
            return "hello"

    assert w.result.hello == "hello"
    assert len(calls) >= 2  # the ping, the submission, status polls


def test_slurmrestd_restarted_between_weaves_keeps_working(
    slurm_cluster: slurm_service.SlurmCluster, environments: list[str]
) -> None:
    configure(cluster=slurm_rest_environment(slurm_cluster))
    environments.append("cluster")

    with wove.weave(environment="cluster", delivery_timeout=GUARD) as first:

        @first.do(delivery_idempotency_key=unique("before"))
        def before() -> str:
            return "before"

    assert first.result.before == "before"
    executor = executor_of("cluster")
    assert slurm_cluster.restd is not None
    old_pid = slurm_cluster.restd.process.pid
    slurm_cluster.restart_rest()  # same port, a new process
    assert slurm_cluster.restd is not None
    assert slurm_cluster.restd.process.pid != old_pid

    with wove.weave(environment="cluster", delivery_timeout=GUARD) as second:

        @second.do(delivery_idempotency_key=unique("after"))
        def after() -> str:
            return "after"

    assert second.result.after == "after"
    assert executor_of("cluster") is executor


def test_unreachable_slurmrestd_names_the_url(
    slurm_cluster: slurm_service.SlurmCluster, environments: list[str]
) -> None:
    url = f"http://127.0.0.1:{backend_services.free_port()}"
    configure(gone=slurm_rest_environment(slurm_cluster, rest_url=url))
    environments.append("gone")

    with (
        pytest.raises(ConnectionError, match=rf"cannot reach slurmrestd at {url} .*rest_url"),
        wove.weave(environment="gone", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None


def test_slurm_errors_in_the_response_are_quoted(
    slurm_cluster: slurm_service.SlurmCluster, environments: list[str]
) -> None:
    configure(cluster=slurm_rest_environment(slurm_cluster, partition="no-such-partition"))
    environments.append("cluster")

    with (
        pytest.raises(
            wove.EnvironmentExecutionError,
            match=r"slurmrestd refused job .*Invalid partition name specified",
        ),
        wove.weave(environment="cluster", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None

    assert payload_files(slurm_cluster) == []


def test_rest_adapter_names_jobs_refuses_duplicates_and_sets_fields(
    slurm_cluster: slurm_service.SlurmCluster,
) -> None:
    async def exercise() -> None:
        adapter = SlurmAdapter()
        config = slurm_rest_environment(
            slurm_cluster,
            time_limit="01:30:00",
            rest_job_fields={"begin_time": "now+3600", "comment": "from-wove"},
        )["executor_config"]
        await adapter.start("direct", config)
        assert adapter.transport_name == "rest"
        key = unique("rest-direct")
        job = BackendJob(
            run_id=key,
            task_id="t",
            job_id=key,
            idempotency_key=key,
            attempt=1,
            payload="not a payload",
            environment="direct",
        )
        try:
            job.handle = await adapter.submit(job)
            handle: SlurmJob = job.handle
            fields = job_fields(slurm_cluster, handle.slurm_id)
            assert fields["JobName"] == f"wove-{key}"
            assert fields["Reason"] == "BeginTime"
            assert fields["TimeLimit"] == "01:30:00"
            assert fields["Comment"] == "from-wove"
            status = await adapter.status(job)
            assert status.state == "pending"
            assert "BeginTime" in status.detail
            with pytest.raises(DuplicateJobError, match=rf"job {handle.slurm_id} .*PENDING"):
                await adapter.submit(job)
            assert await adapter.cancel(job)
            assert not handle.payload_file.exists()
            status = await adapter.status(job)
            assert status.state == "cancelled", status
            assert f"Slurm job {handle.slurm_id} CANCELLED" in status.detail
            # Cancelling again: Slurm says it had ended.
            assert not await adapter.cancel(job)
            job.handle = await adapter.submit(job)  # a cancelled job does not hold its key
            assert job.handle.slurm_id != handle.slurm_id
            assert await adapter.cancel(job)
        finally:
            await adapter.close()

    asyncio.run(exercise())


@pytest.mark.parametrize(
    ("executor_config", "message"),
    [
        ({"rest_url": None}, r"mode='rest' needs rest_url"),
        ({"rest_url": "ftp://127.0.0.1:6820"}, r"rest_url must be an http:// or https:// URL"),
        ({"rest_url": "http://10.1.2.3:6820"}, r"plain HTTP to another host.*insecure=True"),
        ({"rest_token": "eyJhbGciOi.xyz.abc"}, r"got a literal token; never put the token"),
        ({"rest_token": None}, r"rest_token must be 'env:NAME'"),
        ({"rest_token": "env:WOVE_TEST_UNSET_TOKEN"}, r"WOVE_TEST_UNSET_TOKEN, which is not set"),
        ({"rest_user": "two words"}, r"rest_user must be a user name"),
        ({"rest_api_version": "0.0.38"}, r"rest_api_version must be .* 'v0.0.38'"),
        ({"rest_api_version": "v0.0.99"}, r"has no GET /slurm/v0.0.99/ping .*rest_api_version"),
        ({"rest_job_fields": ["x"]}, r"rest_job_fields must be a dict"),
        ({"rest_job_fields": {"name": "x"}}, r"rest_job_fields may not set name: set job_name"),
        ({"sbatch_options": ["--mem=1G"]}, r"sbatch_options is not read with mode='rest'"),
        ({"slurm_conf": "/etc/slurm.conf"}, r"slurm_conf is not read with mode='rest'"),
    ],
)
def test_rest_configuration_errors_name_the_problem_and_the_fix(
    executor_config: dict[str, Any],
    message: str,
    slurm_cluster: slurm_service.SlurmCluster,
    environments: list[str],
) -> None:
    environment = slurm_rest_environment(slurm_cluster)
    environment["executor_config"].update(executor_config)
    configure(broken=environment)
    environments.append("broken")

    with (
        pytest.raises(wove.WoveError, match=message),
        wove.weave(environment="broken", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None
