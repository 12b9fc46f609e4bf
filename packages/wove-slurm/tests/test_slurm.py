"""The ``slurm`` executor against a real single-node Slurm cluster: a job scancelled from
outside, the controller down while a job runs, job names, large payloads, configuration errors
and the batch script submitted by hand. A killed worker process, a restarted controller and
cancelling for real are scenarios of the conformance kit (test_conformance.py)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import wove
from wove.backends import BackendJob, DuplicateJobError
from wove.plugins import Delivery, LineCodec, RunTask, Security, dumps, new_run_id
from wove_slurm import SlurmAdapter, SlurmJob, job_script, slurm_job_name, write_payload

from .conftest import (
    GUARD,
    LATER,
    alive,
    backend_services,
    job_fields,
    jobs_named,
    only_job,
    payload_files,
    slurm_environment,
    slurm_service,
)

SECRET = "env:WOVE_SECRET"


def configure(**environments: dict[str, Any]) -> None:
    wove.config(environments=environments)


def wait_for(condition: Any, what: str, timeout: float = GUARD) -> None:
    backend_services.wait_until(condition, timeout, what)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# -- (a) a job killed from outside ---------------------------------------------------------------


def test_job_scancelled_from_outside_fails_the_weave_naming_the_slurm_state(
    slurm_cluster: slurm_service.SlurmCluster, tmp_path: Path, environments: list[str]
) -> None:
    """``scancel`` from outside; the worker process killed instead is the conformance kit's
    killed-worker scenario."""
    configure(cluster=slurm_environment(slurm_cluster))
    environments.append("cluster")
    key = unique("killed")
    pid_file = tmp_path / "pid"
    never = tmp_path / "never-created"
    message = (
        r"slurm reports job 'killed-\w+' cancelled \(Slurm job \d+ CANCELLED, exit code 0:15\)"
    )

    with (  # noqa: PT012 - the weave raises when its block ends
        pytest.raises(wove.DeliveryOrphanedError, match=message),
        wove.weave(delivery_timeout=GUARD) as w,
    ):

        @w.do(environment="cluster", delivery_idempotency_key=key)
        def waits() -> str:
            pid_file.write_text(str(os.getpid()))
            while not never.exists():
                time.sleep(0.05)
            return "released"

        @w.do
        def killer() -> None:
            wait_for(pid_file.exists, "the task started in its Slurm job")
            slurm_cluster.run("scancel", only_job(slurm_cluster, f"wove-{key}"))

    assert "waits" in str(w.result.exception)
    assert not alive(int(pid_file.read_text()))
    # The environment goes on working.
    with wove.weave(environment="cluster", delivery_timeout=GUARD) as again:

        @again.do
        def after() -> int:
            return 7

    assert again.result.after == 7


def test_a_failing_job_script_is_reported_with_its_exit_code(
    slurm_cluster: slurm_service.SlurmCluster, environments: list[str]
) -> None:
    """A job whose interpreter does not exist never reports; its Slurm state says why."""
    configure(cluster=slurm_environment(slurm_cluster, python="/nonexistent/python3"))
    environments.append("cluster")

    with (
        pytest.raises(
            wove.DeliveryOrphanedError,
            match=r"failed \(Slurm job \d+ FAILED, reason NonZeroExitCode, exit code 127:0\)",
        ),
        wove.weave(environment="cluster", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never_runs() -> None:
            return None

    assert payload_files(slurm_cluster) == []


# -- (b) the controller down while a job runs ----------------------------------------------------


def test_controller_down_while_a_job_runs_is_survived(
    slurm_cluster: slurm_service.SlurmCluster, tmp_path: Path, environments: list[str]
) -> None:
    """Status polls fail while slurmctld is away (they are only logged); the running job
    reports through the callback server all the same, and polling resumes afterwards."""
    configure(cluster=slurm_environment(slurm_cluster))
    environments.append("cluster")
    started = tmp_path / "started"
    release = tmp_path / "release"

    with wove.weave(delivery_timeout=GUARD) as w:

        @w.do(environment="cluster")
        def waits() -> str:
            started.touch()
            while not release.exists():
                time.sleep(0.05)
            return "done"

        @w.do
        def bounce() -> None:
            wait_for(started.exists, "the task started in its Slurm job")
            slurm_cluster.stop_controller()
            release.touch()
            slurm_cluster.start_controller()

    assert w.result.waits == "done"


# -- (c) job names come from the idempotency key ---------------------------------------------------


def test_job_name_is_the_idempotency_key_and_a_duplicate_is_refused(
    slurm_cluster: slurm_service.SlurmCluster, environments: list[str]
) -> None:
    configure(cluster=slurm_environment(slurm_cluster, job_name="nightly."))
    environments.append("cluster")
    key = unique("report/2026 11")

    with wove.weave(environment="cluster", delivery_timeout=GUARD) as w:

        @w.do(delivery_idempotency_key=key)
        def report() -> str:
            return "written"

    assert w.result.report == "written"
    # A key Slurm or a shell would stumble on is made safe, and stays distinct.
    name = slurm_job_name("nightly.", key)
    assert name.startswith("nightly." + key.replace("/", "_").replace(" ", "_") + "-")
    assert name != slurm_job_name("nightly.", key.replace("/", ":"))
    slurm_id = only_job(slurm_cluster, name)
    assert job_fields(slurm_cluster, slurm_id)["JobName"] == name
    wait_for(lambda: jobs_named(slurm_cluster, name)[slurm_id] == "COMPLETED", "job completed")

    # Slurm keeps the completed job for MinJobAge: the same key is refused meanwhile.
    with (
        pytest.raises(
            wove.EnvironmentExecutionError, match=r"refused job .* as a duplicate"
        ) as caught,
        wove.weave(environment="cluster", delivery_timeout=GUARD) as again,
    ):

        @again.do(delivery_idempotency_key=key)
        def report_again() -> str:
            return "written twice"

    assert f"Slurm already holds job {slurm_id} named {name!r} (COMPLETED)" in str(caught.value)
    assert "wove.DuplicateJobError" in str(caught.value)
    assert jobs_named(slurm_cluster, name) == {slurm_id: "COMPLETED"}


def test_adapter_maps_states_and_refuses_a_queued_duplicate(
    slurm_cluster: slurm_service.SlurmCluster,
) -> None:
    async def exercise() -> None:
        adapter = SlurmAdapter()
        config = slurm_environment(slurm_cluster, sbatch_options=[LATER])["executor_config"]
        await adapter.start("direct", config)
        key = unique("direct")
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
            assert handle.name == f"wove-{key}"
            assert handle.payload_file.read_text() == "not a payload\n"
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
            # A cancelled job does not hold its key: the retry is submitted.
            job.handle = await adapter.submit(job)
            assert job.handle.slurm_id != handle.slurm_id
            assert await adapter.cancel(job)
        finally:
            await adapter.close()

    asyncio.run(exercise())


class CountingAdapter(SlurmAdapter):
    """The real adapter, counting the Slurm commands it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[str] = []

    async def _run(self, command: str, *args: str, **kwargs: Any) -> Any:
        self.commands.append(command)
        return await super()._run(command, *args, **kwargs)


def test_one_squeue_answers_a_polling_round(slurm_cluster: slurm_service.SlurmCluster) -> None:
    async def exercise() -> None:
        adapter = CountingAdapter()
        config = slurm_environment(slurm_cluster, sbatch_options=[LATER])["executor_config"]
        await adapter.start("direct", config)
        jobs = []
        try:
            for _ in range(4):
                run_id = unique("round")
                job = BackendJob(
                    run_id=run_id,
                    task_id="t",
                    job_id=run_id,
                    idempotency_key=None,
                    attempt=1,
                    payload="not a payload",
                    environment="direct",
                )
                job.handle = await adapter.submit(job)
                jobs.append(job)
            adapter.commands.clear()
            statuses = await asyncio.gather(*(adapter.status(job) for job in jobs))
            assert [status.state for status in statuses] == ["pending"] * 4
            assert adapter.commands == ["squeue"]
        finally:
            for job in jobs:
                await adapter.cancel(job)
            await adapter.close()

    asyncio.run(exercise())


# -- large payloads --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "max_inline",
    [
        pytest.param(64 << 20, id="in the payload file"),
        pytest.param(None, id="fetched from the callback server"),
    ],
)
def test_ten_megabyte_argument_gets_through(
    max_inline: int | None, slurm_cluster: slurm_service.SlurmCluster, environments: list[str]
) -> None:
    extra = {} if max_inline is None else {"max_inline_payload_bytes": max_inline}
    configure(cluster=slurm_environment(slurm_cluster, **extra))
    environments.append("cluster")
    blob = secrets.token_bytes(10 << 20)

    with wove.weave(environment="cluster", delivery_timeout=GUARD) as w:

        @w.do
        def digest() -> tuple[int, bytes]:
            return len(blob), blob[-32:]

    assert w.result.digest == (len(blob), blob[-32:])
    assert payload_files(slurm_cluster) == []


# -- (d) configuration errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("executor_config", "message"),
    [
        ({"slurm_conf": "/nonexistent/slurm.conf"}, r"slurm_conf must be the path of an existing"),
        ({"mode": "ssh"}, r"mode must be 'cli' .* or 'rest'"),
        ({"rest_url": "http://127.0.0.1:6820"}, r"rest_url is only read with mode='rest'"),
        ({"sbatch_options": "--mem=1G"}, r"sbatch_options must be a list of options"),
        ({"sbatch_options": ["--mem", "1G"]}, r"'1G' is not .* read as a script"),
        ({"sbatch_options": ["--job-name=x"]}, r"may not contain --job-name: set job_name"),
        ({"sbatch_options": ["-pdebug"]}, r"may not contain -p: set partition"),
        ({"sbatch_options": ["--wait"]}, r"may not contain --wait"),
        ({"time_limit": "1 hour"}, r"time_limit '1 hour' is not a Slurm time"),
        ({"time_limit": 1.5}, r"time_limit must be minutes"),
        ({"job_name": "my job"}, r"job_name must be a prefix"),
        ({"partition": ""}, r"partition must be a non-empty string"),
        ({"account": 7}, r"account must be a non-empty string"),
        ({"python": "python3 -u"}, r"python must be a non-empty string without spaces"),
        ({"payload_dir": 3}, r"payload_dir must be the path of a directory"),
        ({"secret_file": "/nonexistent/secret"}, r"secret_file must be the path of a file"),
        ({"slurm_cluster": "x"}, r"slurm_cluster"),
    ],
)
def test_configuration_errors_name_the_problem_and_the_fix(
    executor_config: dict[str, Any],
    message: str,
    slurm_cluster: slurm_service.SlurmCluster,
    environments: list[str],
) -> None:
    environment = slurm_environment(slurm_cluster)
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


def test_a_secret_file_others_can_read_is_refused_and_a_private_one_is_used(
    slurm_cluster: slurm_service.SlurmCluster, tmp_path: Path, environments: list[str]
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(os.environ["WOVE_SECRET"])
    secret_file.chmod(0o644)
    configure(loose=slurm_environment(slurm_cluster, secret_file=str(secret_file)))
    environments.append("loose")
    with (
        pytest.raises(wove.InvalidOptionError, match=r"can be read by other users; run `chmod"),
        wove.weave(environment="loose", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None

    secret_file.chmod(0o600)
    key = unique("secret-file")
    configure(private=slurm_environment(slurm_cluster, secret_file=str(secret_file)))
    environments.append("private")
    with wove.weave(environment="private", delivery_timeout=GUARD) as ok:

        @ok.do(delivery_idempotency_key=key)
        def secret_from_the_file() -> bool:
            return bool(os.environ.get("WOVE_SECRET"))

    assert ok.result.secret_from_the_file
    # The secret went into the job through the file, not through slurmctld.
    slurm_id = only_job(slurm_cluster, f"wove-{key}")
    script = slurm_cluster.run("scontrol", "write", "batch_script", slurm_id, "-")
    assert str(secret_file) in script
    assert os.environ["WOVE_SECRET"] not in script


def test_unreachable_controller_says_where_it_looked(
    slurm_cluster: slurm_service.SlurmCluster, tmp_path: Path, environments: list[str]
) -> None:
    conf = tmp_path / "slurm.conf"
    port = backend_services.free_port()
    conf.write_text(
        slurm_cluster.conf.read_text().replace(
            f"SlurmctldPort={slurm_cluster.ctld_port}", f"SlurmctldPort={port}"
        )
    )
    configure(gone=slurm_environment(slurm_cluster, slurm_conf=str(conf)))
    environments.append("gone")

    with (
        pytest.raises(ConnectionError, match=rf"cannot reach slurmctld .*SLURM_CONF={conf}"),
        wove.weave(environment="gone", delivery_timeout=GUARD) as w,
    ):

        @w.do
        def never() -> None:
            return None


# -- (e) the batch script, submitted by hand -------------------------------------------------------


def test_job_script_submitted_by_hand_runs_a_payload_file(
    slurm_cluster: slurm_service.SlurmCluster, tmp_path: Path
) -> None:
    """The documented contract: write_payload + job_script on sbatch's stdin is a whole job.

    Without a callback server in the payload, ``wove.backend_worker`` prints the terminal event
    as the last line of its stdout; a forged payload ends the job with exit code 2.
    """
    security = Security(os.environ["WOVE_SECRET"])
    frame = RunTask(
        run_id=new_run_id("by-hand"),
        task_id="by-hand",
        callable=dumps(lambda: 6 * 7, "test"),
        args=dumps({}, "test"),
        delivery=Delivery(),
    )
    outcomes: dict[str, str] = {}
    for kind, codec in (
        ("genuine", LineCodec(security)),
        ("forged", LineCodec(Security(secrets.token_bytes(32)))),
    ):
        line = codec.encode(frame).decode()
        path = write_payload(tmp_path, f"by-hand-{kind}", line)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        log = tmp_path / f"{kind}.out"
        slurm_id = subprocess.run(
            ["sbatch", "--parsable", f"--output={log}", "--error=/dev/null"],
            input=job_script(path),
            env={**os.environ, **slurm_cluster.env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert line.strip() not in slurm_cluster.run("scontrol", "show", "job", slurm_id, "-o")
        assert line.strip() not in slurm_cluster.run(
            "scontrol", "write", "batch_script", slurm_id, "-"
        )
        wait_for(
            lambda slurm_id=slurm_id: (
                job_fields(slurm_cluster, slurm_id)["JobState"] in ("COMPLETED", "FAILED")
            ),
            f"the {kind} job ended",
        )
        outcomes[kind] = job_fields(slurm_cluster, slurm_id)["ExitCode"]
        assert not path.exists(), "the job did not delete its payload file"
        if kind == "genuine":
            event = json.loads(log.read_text().splitlines()[-1])
            assert event["type"] == "task_result"
    assert outcomes == {"genuine": "0:0", "forged": "2:0"}
