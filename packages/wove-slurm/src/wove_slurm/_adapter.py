"""The ``slurm`` backend adapter: each Wove run becomes one Slurm batch job.

The adapter reaches Slurm through a *transport*: with ``mode="cli"`` (the default) through
its command-line clients, each run as an asyncio subprocess on the dispatch loop (never a
blocking call, never a thread around one); with ``mode="rest"`` through ``slurmrestd``'s
JSON API on one aiohttp session (:mod:`wove_slurm._rest`). Everything else -- the batch
script, the payload file, the secret, job names, the duplicate check, the status snapshot
and the mapping of Slurm's states -- is the adapter's and the same in both modes. In CLI
terms:

* **submit** -- the signed payload is written to a 0600 file in ``payload_dir`` (a directory
  the compute nodes share) and ``sbatch --parsable`` gets the batch script of
  :func:`wove_slurm.job.job_script` on its stdin. The payload never appears on a command line,
  in the script or in the job's environment; the job deletes the file as it starts. A payload
  over ``max_inline_payload_bytes`` is replaced by the small signed reference the core makes,
  and the worker fetches the real one from the callback server.
* **names** -- the job is named ``job_name`` + ``job.job_id`` (the idempotency key, or the run
  id), made Slurm-safe. A task with an idempotency key is refused with
  :class:`DuplicateJobError` while Slurm holds a job of that name that is queued, running or
  completed (Slurm keeps finished jobs for ``MinJobAge``); failed and cancelled ones do not
  block a retry.
* **cancel** -- ``scancel <id>``: Slurm removes a queued job and kills a running one's
  processes, so the run certainly ends; sync task bodies stop too.
* **status** -- one ``squeue -t all -j <ids>`` per polling round answers for every job of the
  adapter; a job that ended is described from ``scontrol show job -o`` (state, reason, exit
  code), and one Slurm no longer knows from ``sacct`` where accounting is configured.
* **restarts** -- nothing is held open: every call runs a client command, so a restarted
  ``slurmctld`` is simply used again. (In REST mode the session's pooled connections to a
  restarted ``slurmrestd`` are dropped and new ones opened.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal, Protocol

from wove import InvalidOptionError
from wove.backends import (
    BACKEND_CONFIG_KEYS,
    BackendAdapter,
    BackendExecutor,
    BackendJob,
    BackendSettings,
    DuplicateJobError,
    JobStatus,
    worker_environment,
)
from wove.plugins import (
    FilePath,
    Security,
    config_location,
    secret_variable,
    setting,
    setting_keys,
)

from .job import job_script, slurm_job_name, write_payload

__all__ = ["SLURM_CONFIG_KEYS", "SlurmAdapter", "SlurmExecutor", "SlurmJob", "SlurmSettings"]

logger = logging.getLogger(__name__)

#: The client commands the adapter runs.
_COMMANDS: Final = ("sbatch", "squeue", "scontrol", "scancel")
#: Seconds one client command may take before it is killed and the call fails.
COMMAND_TIMEOUT: Final = 60.0
DEFAULT_JOB_NAME: Final = "wove-"
#: ``sbatch`` options Wove sets itself, and the key to use instead (or why not at all).
_RESERVED_OPTIONS: Final = {
    "--parsable": "Wove reads the job id from it",
    "--job-name": "set job_name (a prefix; Wove appends the job id)",
    "-J": "set job_name (a prefix; Wove appends the job id)",
    "--partition": "set partition",
    "-p": "set partition",
    "--account": "set account",
    "-A": "set account",
    "--time": "set time_limit",
    "-t": "set time_limit",
    "--wrap": "the batch script is Wove's",
    "--wait": "the adapter polls instead of blocking",
    "-W": "the adapter polls instead of blocking",
    "--array": "one Wove run is one job",
    "-a": "one Wove run is one job",
    "--hold": "the run would wait until its delivery deadline",
    "-H": "the run would wait until its delivery deadline",
    "--test-only": "the job would never run",
}
#: squeue/scontrol job states, mapped onto Wove's.
_PENDING: Final = frozenset(
    {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING"}
)
_RUNNING: Final = frozenset(
    {"RUNNING", "COMPLETING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESIZING", "STOPPED"}
)
_SUCCEEDED: Final = frozenset({"COMPLETED"})
_CANCELLED: Final = frozenset({"CANCELLED", "REVOKED"})
_FAILED: Final = frozenset(
    {"FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}
)
#: States in which a job with the same name makes a keyed submission a duplicate.
_HOLDS_KEY: Final = _PENDING | _RUNNING | _SUCCEEDED
#: A string that ends up in a command line: non-empty, no whitespace.
_WORD: Final = r"^\S+$"
#: slurmrestd's job description fields Wove sets itself, and the key to use instead.
_RESERVED_REST_FIELDS: Final = {
    "name": "set job_name (a prefix; Wove appends the job id)",
    "environment": "the job gets the submitting environment, with the secret",
    "partition": "set partition",
    "account": "set account",
    "time_limit": "set time_limit",
    "array": "one Wove run is one job",
    "hold": "the run would wait until its delivery deadline",
    "argv": "the batch script is Wove's",
}


def _rest_token(value: Any, key: str, where: str) -> Any:
    """``rest_token`` as given, once it is ``"env:NAME"`` or a callable; a literal token is
    refused without being shown."""
    if callable(value) or secret_variable(value) is not None:
        return value
    shown = "a literal token" if isinstance(value, str) and value else repr(value)
    raise InvalidOptionError(
        f"{where}: rest_token must be 'env:NAME' (the variable holding slurmrestd's JWT) or a "
        f"callable returning a fresh token, got {shown}; never put the token itself in the "
        "configuration"
    )


class SlurmSettings(BackendSettings, kw_only=True):
    """The ``executor_config`` of a ``slurm`` environment: the adapter's own keys (those of
    ``mode="rest"`` start with ``rest_``), and the ones every backend takes."""

    mode: Annotated[
        Literal["cli", "rest"],
        setting(
            "`'cli'`: submit through the Slurm client commands; `'rest'`: through slurmrestd's "
            "JSON API (no Slurm clients or munge needed on this host)",
            expect="'cli' (the Slurm client commands) or 'rest' (slurmrestd)",
        ),
    ] = "cli"
    job_name: Annotated[
        str,
        setting(
            "the prefix of every job's name; Wove appends the job id",
            expect="a prefix of at most 64 letters, digits, '.', '_' or '-' (Wove appends each "
            "job's id)",
            pattern=r"^[A-Za-z0-9._-]{0,64}$",
        ),
    ] = DEFAULT_JOB_NAME
    partition: Annotated[
        str | None,
        setting(
            "the partition jobs run in", expect="a non-empty string without spaces", pattern=_WORD
        ),
    ] = None
    account: Annotated[
        str | None,
        setting(
            "the account jobs are charged to",
            expect="a non-empty string without spaces",
            pattern=_WORD,
        ),
    ] = None
    time_limit: Annotated[
        int | str | None,
        setting(
            "each job's time limit: minutes, or a Slurm time (`'01:30:00'`, `'2-00:00:00'`, "
            "`'UNLIMITED'`)",
            expect="minutes (an int >= 1) or a Slurm time such as '01:30:00' or '2-00:00:00'",
            default="the partition's",
            ge=1,
        ),
    ] = None
    sbatch_options: Annotated[
        list[str] | None,
        setting(
            "more `sbatch` options, each with its value attached (`'--mem=2G'`, `'-c2'`); "
            "`mode='cli'` only",
            expect="a list of options, such as ['--mem=2G', '--cpus-per-task=2']",
        ),
    ] = None
    python: Annotated[
        str | None,
        setting(
            "the interpreter on the compute nodes",
            expect="a non-empty string without spaces",
            default="this process's `sys.executable`",
            pattern=_WORD,
        ),
    ] = None
    payload_dir: Annotated[
        FilePath | None,
        setting(
            "a directory the compute nodes share, where each job's payload file waits (0600, "
            "deleted as the job starts)",
            expect="the path of a directory the compute nodes share",
            default="`~/.wove/slurm-payloads`",
        ),
    ] = None
    secret_file: Annotated[
        FilePath | None,
        setting(
            "a file (mode 0600, on shared storage) holding the shared secret: jobs read it "
            "there, so the secret never passes through slurmctld",
            expect="the path of a file holding the shared secret (on storage the compute nodes "
            "share)",
        ),
    ] = None
    slurm_conf: Annotated[
        FilePath | None,
        setting(
            "a `slurm.conf` for the client commands (as `SLURM_CONF`); `mode='cli'` only",
            expect="the path of an existing slurm.conf",
        ),
    ] = None
    rest_url: Annotated[
        str | None,
        setting(
            "slurmrestd's address (`https://slurm.example.org:6820`); `mode='rest'` only",
            expect="an http:// or https:// URL with a host",
            pattern=r"^https?://[^/?#]",
        ),
    ] = None
    rest_token: Annotated[
        str | Callable[[], str | Awaitable[str]] | None,
        setting(
            "`'env:NAME'`, the variable holding slurmrestd's JWT, or a callable returning a "
            "fresh token; read for every request",
            expect="'env:NAME' or a callable returning a token",
            parse=_rest_token,
        ),
    ] = None
    rest_user: Annotated[
        str | None,
        setting(
            "sent as `X-SLURM-USER-NAME`",
            expect="a user name",
            default="the user running the weave",
            pattern=_WORD,
        ),
    ] = None
    rest_api_version: Annotated[
        str | None,
        setting(
            "the OpenAPI plugin slurmrestd serves",
            expect="an OpenAPI plugin version such as 'v0.0.38'",
            default='`"v0.0.38"`',
            pattern=r"^v[^/]*$",
        ),
    ] = None
    rest_job_fields: Annotated[
        Mapping[str, Any] | None,
        setting(
            "more fields of every job description (`{'memory_per_node': 2048}`); "
            "`mode='rest'` only",
            expect="a dict of job description fields, such as {'memory_per_node': 2048, "
            "'standard_output': '/shared/logs/%j.out'}",
            reserved=_RESERVED_REST_FIELDS,
        ),
    ] = None


#: ``executor_config`` keys of a ``slurm`` environment, besides the shared backend keys.
SLURM_CONFIG_KEYS: Final = setting_keys(SlurmSettings) - BACKEND_CONFIG_KEYS
_FIELD: Final = re.compile(r"(\w[\w/:]*)=(\S*)")


@dataclasses.dataclass
class SlurmJob:
    """The handle of one submitted job (``BackendJob.handle``).

    Attributes:
        slurm_id: Slurm's numeric job id, as ``sbatch --parsable`` printed it.
        name: the job's name (``job_name`` + the Wove job id).
        payload_file: where the payload waited for the job (deleted when the job starts).
        submitted_at: the loop time ``sbatch`` returned; older status snapshots miss the job.
    """

    slurm_id: str
    name: str
    payload_file: Path
    submitted_at: float


@dataclasses.dataclass(frozen=True)
class _Done:
    code: int
    out: str
    err: str


@dataclasses.dataclass(frozen=True)
class _Ended:
    """What Slurm says about a job that ended: its state, reason and exit code (``"3:0"``)."""

    state: str
    reason: str | None
    exit_code: str | None


class _Transport(Protocol):
    """How the adapter talks to Slurm: the client commands, or slurmrestd.

    Every method runs on the dispatch loop; none blocks it.
    """

    async def check(self) -> None:
        """Raise a clear error when Slurm cannot be reached (or refuses the credentials)."""

    async def submit(self, name: str, script: str) -> str:
        """Submit the batch ``script`` as job ``name``; return Slurm's job id."""

    async def cancel(self, slurm_id: str) -> bool:
        """Cancel the job; ``False`` when Slurm says it had already ended."""

    async def states(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """State and reason of each job of ``ids`` that Slurm still knows."""

    async def ended(self, slurm_id: str) -> _Ended | None:
        """State, reason and exit code of a finished job (``None``: not known)."""

    async def accounted(self, slurm_id: str) -> _Ended | None:
        """A job Slurm's controller forgot, from accounting where there is any."""

    async def named(self, name: str) -> list[tuple[str, str]]:
        """Id and state of every job of the submitting user called ``name``."""

    async def close(self) -> None:
        """Release what the transport holds open."""


class _CliTransport:
    """``sbatch``, ``squeue``, ``scontrol``, ``scancel`` (and ``sacct``), as subprocesses."""

    def __init__(self, adapter: SlurmAdapter) -> None:
        self._adapter = adapter

    async def _run(self, command: str, *args: str, **kwargs: Any) -> _Done:
        # Through the adapter, so one place runs (and a test can count) the commands.
        return await self._adapter._run(command, *args, **kwargs)

    async def check(self) -> None:
        adapter = self._adapter
        ping = await self._run("scontrol", "ping")
        if ping.code != 0 or "UP" not in ping.out:
            conf = adapter._env.get("SLURM_CONF", "(unset: the default slurm.conf)")
            answer = (ping.out + ping.err).strip().splitlines() or ["no answer"]
            raise ConnectionError(
                f"{adapter._where}: cannot reach slurmctld ({answer[0]}); SLURM_CONF={conf}. "
                "Start the controller, or point slurm_conf at the cluster's configuration"
            )

    async def submit(self, name: str, script: str) -> str:
        adapter = self._adapter
        done = await self._run(
            "sbatch",
            "--parsable",
            f"--job-name={name}",
            "--no-requeue",  # Wove retries; a requeued job would find its payload gone
            "--output=/dev/null",  # sbatch_options may name a log file instead
            *adapter._options,
            stdin=script.encode(),
            env=adapter._submit_env,
        )
        slurm_id = done.out.strip().split(";")[0]
        if done.code != 0 or not slurm_id.isdigit():
            raise RuntimeError(
                f"sbatch refused job {name!r} (exit status {done.code}): "
                f"{(done.err or done.out).strip()}"
            )
        return slurm_id

    async def cancel(self, slurm_id: str) -> bool:
        done = await self._run("scancel", slurm_id)
        if done.code == 0:
            return True
        if "already completing or completed" in done.err or "Invalid job id" in done.err:
            return False
        raise RuntimeError(
            f"scancel {slurm_id} failed (exit status {done.code}): {done.err.strip()}"
        )

    async def states(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        done = await self._run("squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r")
        if done.code != 0 and not (len(ids) == 1 and "Invalid job id" in done.err):
            raise RuntimeError(f"squeue failed (exit status {done.code}): {done.err.strip()}")
        states: dict[str, tuple[str, str]] = {}
        for line in done.out.splitlines():
            slurm_id, _, rest = line.strip().partition("|")
            state, _, reason = rest.partition("|")
            if slurm_id:
                states[slurm_id] = (state.split()[0] if state else "UNKNOWN", reason)
        return states

    async def ended(self, slurm_id: str) -> _Ended | None:
        done = await self._run("scontrol", "show", "job", slurm_id, "-o")
        fields = dict(_FIELD.findall(done.out)) if done.code == 0 else {}
        if "JobState" not in fields:
            return None
        return _Ended(fields["JobState"], fields.get("Reason"), fields.get("ExitCode"))

    async def accounted(self, slurm_id: str) -> _Ended | None:
        if "sacct" not in self._adapter._commands:
            return None
        done = await self._run("sacct", "-n", "-X", "-P", "-j", slurm_id, "-o", "State,ExitCode")
        line = done.out.strip().splitlines()[0] if done.code == 0 and done.out.strip() else ""
        if not line:
            return None
        state, _, exit_code = line.partition("|")
        return _Ended(state.split()[0], None, exit_code)

    async def named(self, name: str) -> list[tuple[str, str]]:
        done = await self._run("squeue", "-h", "--me", "-t", "all", "-n", name, "-o", "%i|%T")
        if done.code != 0:
            raise RuntimeError(f"squeue failed (exit status {done.code}): {done.err.strip()}")
        jobs = []
        for line in done.out.splitlines():
            slurm_id, _, state = line.strip().partition("|")
            jobs.append((slurm_id, state))
        return jobs

    async def close(self) -> None:
        return None


class SlurmAdapter(BackendAdapter):
    """Submit each run as a batch job, cancel it, watch it: through the Slurm client commands
    (``mode="cli"``) or slurmrestd (``mode="rest"``)."""

    name: ClassVar[str] = "slurm"
    settings_class = SlurmSettings

    def __init__(self) -> None:
        super().__init__()
        self._where = "executor_config (executor 'slurm')"
        self._prefix = DEFAULT_JOB_NAME
        self._python = sys.executable
        self._payload_dir = Path()
        self._secret_file: Path | None = None
        self._options: list[str] = []
        self._commands: dict[str, str] = {}
        self._env: dict[str, str] = {}
        self._submit_env: dict[str, str] = {}
        self._transport: _Transport = _CliTransport(self)
        # Jobs this adapter submitted that Slurm may still report on, by Slurm job id.
        self._active: dict[str, SlurmJob] = {}
        self._snapshot: dict[str, tuple[str, str]] = {}
        self._snapshot_at = float("-inf")
        self._snapshot_ttl = 1.0
        self._query_lock: asyncio.Lock | None = None

    @property
    def transport_name(self) -> str:
        """``"cli"`` or ``"rest"``: how this adapter reaches Slurm."""
        return "rest" if not isinstance(self._transport, _CliTransport) else "cli"

    # -- the adapter contract --------------------------------------------------------------------

    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        """Check the Slurm keys, set up the transport and ask Slurm whether it is up."""
        # Checking paths (payload_dir, secret_file, slurm_conf) touches the file system.
        try:
            await self.call_blocking(self._configure, environment_name, config)
            self._query_lock = asyncio.Lock()
            await self._transport.check()
        except BaseException:
            await self._transport.close()
            await super().close()  # the executor closes only adapters that started
            raise

    def _configure(self, environment_name: str, config: Mapping[str, Any]) -> None:
        settings = self.configured(SlurmSettings, environment_name, config)
        where = self._where = config_location(environment_name, self.name)
        mode = _check_mode(settings, where)
        self._prefix = settings.job_name
        self._python = settings.python or sys.executable
        env = dict(os.environ)
        if mode == "cli":
            self._options = [
                *_placement(settings, where),
                *_sbatch_options(settings.sbatch_options or [], where),
            ]
            slurm_conf = settings.slurm_conf
            if slurm_conf is not None:
                if not Path(slurm_conf).is_file():
                    raise InvalidOptionError(
                        f"{where}: slurm_conf must be the path of an existing slurm.conf (given "
                        f"to the Slurm commands as SLURM_CONF), got {slurm_conf!r}"
                    )
                env["SLURM_CONF"] = os.fspath(slurm_conf)
            self._commands = _find_commands(env, where)
        self._env = env
        self._payload_dir = _payload_dir(settings.payload_dir, where)
        self._secret_file = _secret_file(settings.secret_file, where)
        self._submit_env = _submit_env(env, self.security, settings, self._secret_file, where)
        interval = settings.status_interval
        self._snapshot_ttl = interval / 2 if interval else 1.0
        if mode == "rest":
            from ._rest import RestTransport, rest_settings

            rest = rest_settings(settings, where)
            # The job's environment is the submitting one, as with sbatch's --export=ALL,
            # but never the REST credential.
            if rest.token_variable is not None:
                self._submit_env.pop(rest.token_variable, None)
            job_fields = {
                **_rest_placement(settings, where),
                **rest.job_fields,
            }
            self._transport = RestTransport(
                rest,
                job_fields=job_fields,
                environment=self._submit_env,
                call_blocking=self.call_blocking,
                where=where,
            )
        else:
            self._transport = _CliTransport(self)

    async def submit(self, job: BackendJob) -> SlurmJob:
        """Write the payload file and submit the batch script that runs it.

        Raises:
            DuplicateJobError: the task has an idempotency key and Slurm holds a queued,
                running or completed job of the same name.
            RuntimeError: Slurm refused the job; its own message is quoted.
        """
        name = slurm_job_name(self._prefix, job.job_id)
        if job.idempotency_key is not None:
            await self._refuse_duplicate(name)
        path = await self.call_blocking(write_payload, self._payload_dir, name, job.payload)
        try:
            script = job_script(path, python=self._python, secret_file=self._secret_file)
            slurm_id = await self._transport.submit(name, script)
        except BaseException:
            await self.call_blocking(path.unlink, missing_ok=True)
            raise
        handle = SlurmJob(slurm_id, name, path, asyncio.get_running_loop().time())
        self._active[slurm_id] = handle
        return handle

    async def cancel(self, job: BackendJob) -> bool:
        """Cancel the job: a queued job is removed, a running one's processes killed.

        Returns ``False`` only when Slurm says the job had already ended by itself.
        """
        handle: SlurmJob = job.handle
        try:
            cancelled = await self._transport.cancel(handle.slurm_id)
        except RuntimeError as error:
            raise RuntimeError(f"cancelling job {handle.name!r}: {error}") from None
        finally:
            self._snapshot_at = float("-inf")  # the next status must see the cancel
            await self.call_blocking(handle.payload_file.unlink, missing_ok=True)
        return cancelled

    async def status(self, job: BackendJob) -> JobStatus:
        """Map Slurm's view of the job onto Wove's states (one query per polling round)."""
        handle: SlurmJob = job.handle
        states = await self._states(since=handle.submitted_at)
        entry = states.get(handle.slurm_id)
        if entry is None:
            status = await self._forgotten(handle)
        else:
            state, reason = entry
            if state in _PENDING:
                return JobStatus("pending", f"Slurm job {handle.slurm_id} {state} ({reason})")
            if state in _RUNNING or state not in (_SUCCEEDED | _CANCELLED | _FAILED):
                return JobStatus("running", f"Slurm job {handle.slurm_id} {state}")
            status = await self._ended(handle, state)
        self._active.pop(handle.slurm_id, None)
        await self.call_blocking(handle.payload_file.unlink, missing_ok=True)
        return status

    async def close(self) -> None:
        """Delete payload files of jobs that never started, close the transport (the REST
        session), then release the threads."""
        leftovers, self._active = list(self._active.values()), {}
        for handle in leftovers:
            await self.call_blocking(handle.payload_file.unlink, missing_ok=True)
        try:
            await self._transport.close()
        finally:
            await super().close()

    # -- Slurm's view ----------------------------------------------------------------------------

    async def _states(self, since: float) -> dict[str, tuple[str, str]]:
        """State and reason of every active job, from one query shared by all the status
        calls of a polling round (a snapshot older than the job is not used)."""
        assert self._query_lock is not None, "start() first"
        async with self._query_lock:
            now = asyncio.get_running_loop().time()
            if self._snapshot_at >= since and now - self._snapshot_at < self._snapshot_ttl:
                return self._snapshot
            ids = list(self._active)
            states = await self._transport.states(ids)
            for slurm_id in ids:  # Slurm forgot them: nothing more will be learnt
                if slurm_id not in states:
                    self._active.pop(slurm_id, None)
            self._snapshot, self._snapshot_at = states, now
            return states

    async def _ended(self, handle: SlurmJob, state: str) -> JobStatus:
        """Describe a finished job: state, reason, exit code."""
        ended = await self._transport.ended(handle.slurm_id) or _Ended(state, None, None)
        detail = f"Slurm job {handle.slurm_id} {ended.state}"
        if ended.reason not in (None, "None", "(null)", ""):
            detail += f", reason {ended.reason}"
        if ended.exit_code is not None:
            detail += f", exit code {ended.exit_code}"
        return JobStatus(_wove_state(ended.state), detail)

    async def _forgotten(self, handle: SlurmJob) -> JobStatus:
        """A job Slurm's controller no longer lists: ask accounting when there is some."""
        ended = await self._transport.accounted(handle.slurm_id)
        if ended is None:
            return JobStatus(
                "missing",
                f"Slurm no longer knows job {handle.slurm_id} (it ended more than MinJobAge "
                "ago, or was purged)",
            )
        return JobStatus(
            _wove_state(ended.state),
            f"Slurm job {handle.slurm_id} {ended.state}, exit code {ended.exit_code} "
            "(from accounting)",
        )

    async def _refuse_duplicate(self, name: str) -> None:
        for slurm_id, state in await self._transport.named(name):
            if state in _HOLDS_KEY:
                raise DuplicateJobError(
                    f"Slurm already holds job {slurm_id} named {name!r} ({state}); use a new "
                    "idempotency key to run the task again"
                )

    # -- running the clients -------------------------------------------------------------------

    async def _run(
        self,
        command: str,
        *args: str,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> _Done:
        """Run one Slurm client command on the loop; kill it after :data:`COMMAND_TIMEOUT`."""
        process = await asyncio.create_subprocess_exec(
            self._commands.get(command, command),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env if env is not None else self._env,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), COMMAND_TIMEOUT)
        except BaseException:
            if process.returncode is None:
                process.kill()
                await asyncio.shield(process.wait())
            raise
        assert process.returncode is not None
        return _Done(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


class SlurmExecutor(BackendExecutor):
    """The ``slurm`` executor: every Wove run is one Slurm batch job.

    See :class:`SlurmAdapter` for how jobs are submitted, cancelled and watched, and the
    ``slurm`` executor page of the documentation for every ``executor_config`` key.
    """

    adapter_class = SlurmAdapter


# -- configuration ---------------------------------------------------------------------------------


def _wove_state(state: str) -> Any:
    if state in _SUCCEEDED:
        return "succeeded"
    if state in _CANCELLED:
        return "cancelled"
    if state in _FAILED:
        return "failed"
    if state in _PENDING:
        return "pending"
    return "running" if state in _RUNNING else "unknown"


_REST_ONLY: Final = ("rest_url", "rest_token", "rest_user", "rest_api_version", "rest_job_fields")
_CLI_ONLY: Final = {
    "sbatch_options": "set rest_job_fields (fields of slurmrestd's job description, such as "
    "{'memory_per_node': 2048}) instead",
    "slurm_conf": "slurmrestd reads its own slurm.conf; remove it",
}


def _check_mode(settings: SlurmSettings, where: str) -> str:
    """``"cli"`` or ``"rest"``; keys of the other mode are refused, not silently ignored."""
    if settings.mode == "cli":
        for key in _REST_ONLY:
            if getattr(settings, key) is not None:
                raise InvalidOptionError(
                    f"{where}: {key} is only read with mode='rest'; set mode='rest' to submit "
                    "through slurmrestd, or remove it"
                )
    else:
        for key, fix in _CLI_ONLY.items():
            if getattr(settings, key) is not None:
                raise InvalidOptionError(f"{where}: {key} is not read with mode='rest'; {fix}")
    return settings.mode


def _time_limit(settings: SlurmSettings, where: str) -> str | None:
    """``time_limit`` as Slurm spells it, or ``None``."""
    limit = settings.time_limit
    if limit is None:
        return None
    if isinstance(limit, int):
        return str(limit)
    if not re.fullmatch(r"[0-9][0-9:-]*|UNLIMITED|INFINITE", limit):
        raise InvalidOptionError(
            f"{where}: time_limit {limit!r} is not a Slurm time; use minutes ('90'), "
            "'HH:MM:SS' or 'D-HH:MM:SS'"
        )
    return limit


def _placement(settings: SlurmSettings, where: str) -> list[str]:
    options = [
        f"{flag}={value}"
        for flag, value in (("--partition", settings.partition), ("--account", settings.account))
        if value is not None
    ]
    limit = _time_limit(settings, where)
    if limit is not None:
        options.append(f"--time={limit}")
    return options


def _rest_placement(settings: SlurmSettings, where: str) -> dict[str, Any]:
    """partition, account and time_limit as fields of slurmrestd's job description."""
    fields: dict[str, Any] = {
        key: value
        for key, value in (("partition", settings.partition), ("account", settings.account))
        if value is not None
    }
    limit = _time_limit(settings, where)
    if limit is not None:
        try:
            minutes = _minutes(limit)
        except ValueError:
            raise InvalidOptionError(
                f"{where}: time_limit {limit!r} is not a Slurm time; use minutes ('90'), "
                "'HH:MM:SS' or 'D-HH:MM:SS'"
            ) from None
        if minutes is not None:  # UNLIMITED: leave the partition's limit
            fields["time_limit"] = minutes
    return fields


def _minutes(limit: str) -> int | None:
    """A Slurm time (``90``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in whole minutes,
    rounded up; ``None`` for ``UNLIMITED``/``INFINITE``. slurmrestd 0.0.38 takes minutes."""
    if limit in ("UNLIMITED", "INFINITE"):
        return None
    days, _, clock = limit.rpartition("-")
    parts = [int(part or 0) for part in clock.split(":")]
    if days:
        hours, minutes, seconds = [*parts, 0, 0][:3]
        total = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    elif len(parts) == 1:
        total = parts[0] * 60
    elif len(parts) == 2:
        total = parts[0] * 60 + parts[1]
    else:
        total = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    return max(1, -(-total // 60))


def _sbatch_options(value: list[str], where: str) -> list[str]:
    options = []
    for option in value:
        if not option.startswith("-") or len(option) < 2:
            raise InvalidOptionError(
                f"{where}: every sbatch_options item must be one option with its value "
                f"attached ('--mem=2G', '-c2'); {option!r} is not (a separate word would be "
                "read as a script to run)"
            )
        name = option.split("=", 1)[0] if option.startswith("--") else option[:2]
        reason = _RESERVED_OPTIONS.get(name)
        if reason is not None:
            raise InvalidOptionError(f"{where}: sbatch_options may not contain {name}: {reason}")
        options.append(option)
    return options


def _find_commands(env: Mapping[str, str], where: str) -> dict[str, str]:
    path = env.get("PATH", os.defpath)
    found = {name: shutil.which(name, path=path) for name in (*_COMMANDS, "sacct")}
    missing = [name for name in _COMMANDS if found[name] is None]
    if missing:
        raise InvalidOptionError(
            f"{where}: the Slurm client commands {', '.join(missing)} are not on PATH; install "
            "the Slurm clients on this host (Debian: apt-get install slurm-client) or add their "
            "directory to PATH"
        )
    return {name: command for name, command in found.items() if command is not None}


def _payload_dir(value: str | os.PathLike[str] | None, where: str) -> Path:
    if value is None:
        directory = Path.home() / ".wove" / "slurm-payloads"
    elif str(value):
        directory = Path(value)
    else:
        raise InvalidOptionError(
            f"{where}: payload_dir must be the path of a directory the compute nodes share, "
            f"got {value!r}"
        )
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidOptionError(
            f"{where}: payload_dir {str(directory)!r} cannot be created ({error}); set it to a "
            "writable directory the compute nodes share"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidOptionError(f"{where}: payload_dir {str(directory)!r} is not writable")
    return directory


def _secret_file(value: str | os.PathLike[str] | None, where: str) -> Path | None:
    if value is None:
        return None
    if not Path(value).is_file():
        raise InvalidOptionError(
            f"{where}: secret_file must be the path of a file holding the shared secret (on "
            f"storage the compute nodes share), got {value!r}"
        )
    path = Path(value)
    if path.stat().st_mode & 0o077:
        raise InvalidOptionError(
            f"{where}: secret_file {str(path)!r} can be read by other users; run `chmod 600 {path}`"
        )
    return path


def _submit_env(
    env: Mapping[str, str],
    security: Security | None,
    settings: SlurmSettings,
    secret_file: Path | None,
    where: str,
) -> dict[str, str]:
    """The environment ``sbatch`` runs in, which Slurm exports to the job by default.

    Without ``secret_file`` the job finds the secret as ``WOVE_SECRET`` there; with it the
    secret is left out, so it never passes through ``slurmctld``.
    """
    submit = dict(env)
    if security is None:  # the executor refuses a backend environment without security
        return submit
    submit.update(worker_environment(security, callback_token=settings.callback_token, where=where))
    if secret_file is not None:
        submit.pop("WOVE_SECRET", None)
    return submit
