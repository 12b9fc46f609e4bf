"""The backend adapter base: what a task-system plugin writes, and everything Wove does for it.

A task system (Celery, RQ, ARQ, Taskiq, Dask, Ray, Temporal, Slurm, AWS Batch, Kubernetes Jobs,
or one a third party adds) cannot hold a channel open to the weave. So an adapter does only
what is specific to its backend -- :meth:`BackendAdapter.start`, :meth:`~BackendAdapter.submit`,
:meth:`~BackendAdapter.cancel`, :meth:`~BackendAdapter.status`, :meth:`~BackendAdapter.close` --
and :class:`BackendExecutor` does the rest, the same way for every backend:

* **payload** -- each run becomes one signed line naming the callback server the worker reports
  to; a line larger than the adapter's ``max_inline_payload_bytes`` stays on the callback server
  and the backend carries a signed reference the worker fetches it with;
* **callback routing** -- the process-wide callback server (``wove._callback_server``) receives
  the worker's signed events and hands them to the weave's dispatcher;
* **delivery policy** -- deadlines, retries, orphan policies and the cap on runs in flight stay
  in the dispatcher (``wove._delivery``), exactly as for the other executors;
* **status polling** -- every ``status_interval`` seconds the adapter is asked about each run
  that has not reported its end; a job the backend says failed, was cancelled, vanished or even
  succeeded without an outcome reaching the callback server is reported *orphaned*, so the weave
  fails with a clear error instead of waiting forever;
* **silence** -- a run whose worker stops posting for three heartbeat intervals (the task's
  ``delivery_heartbeat_seconds``, else ``worker_heartbeat_seconds``) is orphaned too, which
  catches a worker killed mid-task on backends that never notice;
* **idempotency** -- :attr:`BackendJob.job_id` comes from the idempotency key (or the run id),
  so backends that deduplicate by job id do; :class:`DuplicateJobError` reports a duplicate;
* **cancellation** -- a cancel both asks the adapter to stop the job for real and flags the run
  on the callback server, where the worker sees it in the answer to its next heartbeat.

Every adapter call runs on the dispatch loop (``wove._delivery.dispatch_loop``); a blocking
client library goes through :meth:`BackendAdapter.call_blocking`, which runs it on the adapter's
own small thread pool so the loop, and event intake, never stall.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

from ._callback_server import CallbackServer, acquire_callback_server
from ._errors import InvalidOptionError, WoveError
from ._executor import Executor, ExecutorKind
from ._frames import (
    TERMINAL_EVENTS,
    CancelTask,
    Delivery,
    Frame,
    NormalizedError,
    PayloadRef,
    RunTask,
    TaskCancelled,
    TaskError,
    TaskStarted,
    decode_json,
)
from ._network import server_ssl_context
from ._security import LineCodec, Security, is_loopback_host
from ._settings import (
    ExecutorSettings,
    FilePath,
    Seconds,
    SecuritySetting,
    config_location,
    setting,
    setting_keys,
    validate_executor_config,
)

__all__ = [
    "BACKEND_CONFIG_KEYS",
    "BackendAdapter",
    "BackendExecutor",
    "BackendJob",
    "BackendSettings",
    "DuplicateJobError",
    "JobState",
    "JobStatus",
    "safe_job_name",
    "worker_environment",
]

logger = logging.getLogger("wove.backend")

T = TypeVar("T")
_S = TypeVar("_S", bound="BackendSettings")


class BackendSettings(ExecutorSettings, kw_only=True):
    """``executor_config`` keys every backend environment takes, besides its adapter's own.

    An adapter declares its own keys in a subclass, named as its ``settings_class``; a subclass
    may declare a shared key again to give it another default or bound (the Kubernetes adapter
    keeps ``max_inline_payload_bytes`` within what a Secret holds).
    """

    # Required for every backend environment (the executor says so, naming the backend), and
    # left optional here so that an adapter started on its own, in a test, needs none.
    security: Annotated[
        SecuritySetting | None,
        setting(
            "the shared secret that signs payloads and the events workers send back; workers "
            "get the same secret as `WOVE_SECRET`",
            default="**required**",
        ),
    ] = None
    callback_host: Annotated[
        str,
        setting(
            "where the weave's callback server listens; a non-loopback host needs "
            "`callback_cert_file` or `insecure=True`",
            expect="a host name or address",
            min_length=1,
        ),
    ] = "127.0.0.1"
    callback_port: Annotated[
        int, setting("the callback server's port; `0` picks a free one", ge=0, le=65535)
    ] = 0
    callback_url: Annotated[
        str | None,
        setting(
            "the base URL workers reach the callback server at, when it is not "
            "`http://callback_host:port` (behind a proxy or a published port)",
            expect="an http:// or https:// URL",
            default="`http://callback_host:port`",
            pattern=r"^https?://",
        ),
    ] = None
    callback_token: Annotated[
        str | None,
        setting(
            "a bearer token every callback request must carry; workers send it as "
            "`WOVE_CALLBACK_TOKEN`",
            min_length=1,
        ),
    ] = None
    callback_cert_file: Annotated[
        FilePath | None, setting("a certificate: the callback server speaks HTTPS")
    ] = None
    callback_key_file: Annotated[
        FilePath | None, setting("the certificate's private key, when not in the same file")
    ] = None
    insecure: Annotated[
        bool,
        setting(
            "allow a non-loopback `callback_host` without HTTPS (behind a TLS-terminating "
            "proxy on a private network)"
        ),
    ] = False
    status_interval: Annotated[
        Seconds,
        setting(
            "how often each unfinished job's status is read from the backend; `0` turns "
            "polling off",
            ge=0,
        ),
    ] = 2.0
    worker_heartbeat_seconds: Annotated[
        Seconds,
        setting(
            "how often workers heartbeat when the task sets no `delivery_heartbeat_seconds`; "
            "a run silent for three heartbeats is orphaned",
            gt=0,
        ),
    ] = 5.0
    max_inline_payload_bytes: Annotated[
        int | None,
        setting(
            "payloads larger than this stay on the callback server and the job carries a "
            "signed reference the worker fetches them with; `0` fetches every payload",
            default="1 MiB",
            ge=0,
        ),
    ] = None
    submit_concurrency: Annotated[
        int,
        setting(
            "submissions and status reads at once (also the adapter's thread count for "
            "blocking client calls)",
            ge=1,
        ),
    ] = 8


#: ``executor_config`` keys every backend environment accepts, besides its adapter's own.
BACKEND_CONFIG_KEYS: Final = setting_keys(BackendSettings)
#: Default seconds between status polls of unfinished jobs.
DEFAULT_STATUS_INTERVAL: Final = 2.0
#: Default heartbeat of backend workers when the task sets no ``delivery_heartbeat_seconds``.
DEFAULT_WORKER_HEARTBEAT: Final = 5.0
#: A started run silent for this many heartbeat intervals is orphaned.
SILENT_INTERVALS: Final = 3.0

JobState = Literal["pending", "running", "succeeded", "failed", "cancelled", "missing", "unknown"]
#: States in which a job will never report anything more.
FINAL_STATES: Final = frozenset({"succeeded", "failed", "cancelled", "missing"})


class DuplicateJobError(WoveError, RuntimeError):
    """Raised by :meth:`BackendAdapter.submit` when the backend refused the job as a duplicate
    of one it already holds under the same job id (the same idempotency key)."""


# Tracebacks and pickles name the public path from the moment the error is raised.
DuplicateJobError.__module__ = "wove.backends"


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """What the backend says about a job.

    Attributes:
        state: ``pending`` (queued), ``running``, ``succeeded``, ``failed``, ``cancelled``,
            ``missing`` (the backend has no such job) or ``unknown`` (cannot tell; not acted on).
        detail: the backend's own words, quoted in the error when the job ended without
            reporting (an exit code, ``WorkerLostError``, a Slurm state reason...).
    """

    state: JobState
    detail: str = ""


@dataclasses.dataclass(eq=False)
class BackendJob:
    """One run as the adapter sees it.

    Attributes:
        run_id: the run (unique; ``[a-z0-9-]``, at most 63 characters, so a valid Kubernetes
            name, RQ job id or Slurm job name).
        task_id: the task's name in the weave.
        job_id: the id to give the backend job: the idempotency key when the task has one
            (with ``-attempt<n>`` for a requeue), else the run id.
        idempotency_key: the task's key for this run, or ``None``.
        attempt: 1 for the first submission, 2 after a requeue.
        payload: the signed line to hand to the worker's ``wove.integrations.worker.run``.
        environment: the environment's name.
        handle: whatever :meth:`BackendAdapter.submit` returned (an ``AsyncResult``, a job).
    """

    run_id: str
    task_id: str
    job_id: str
    idempotency_key: str | None
    attempt: int
    payload: str
    environment: str
    handle: Any = None
    # Bookkeeping of the executor; adapters leave these alone.
    submitted: bool = False
    started: bool = False
    finished: bool = False
    cancel_requested: bool = False
    heartbeat: float = DEFAULT_WORKER_HEARTBEAT
    last_seen: float = dataclasses.field(default_factory=time.monotonic)


class BackendAdapter(abc.ABC):
    """The part of a backend executor that knows the backend.

    Subclass it, then register a :class:`BackendExecutor` subclass naming it::

        class PigeonExecutor(BackendExecutor):
            adapter_class = PigeonAdapter

    All methods are awaited on the dispatch loop. ``submit`` may be called many times at once
    (up to ``submit_concurrency``), ``status`` too.
    """

    #: The executor name, used in messages.
    name: ClassVar[str] = "backend"
    #: The declaration of the environment's ``executor_config``: :class:`BackendSettings` or a
    #: subclass holding the adapter's own keys. The executor checks the configuration against
    #: it and sets :attr:`settings` before :meth:`start`.
    settings_class: ClassVar[type[BackendSettings]] = BackendSettings
    #: ``executor_config`` keys the adapter reads, beyond :data:`BACKEND_CONFIG_KEYS`: derived
    #: from :attr:`settings_class`. An adapter without a declaration may list keys here; they
    #: are accepted unchecked and read from ``start``'s ``config``.
    config_keys: ClassVar[frozenset[str]] = frozenset()
    #: Payload lines larger than this are fetched from the callback server by the worker: the
    #: environment's ``max_inline_payload_bytes`` (when its declaration gives none, this
    #: default), set before :meth:`start`, where the adapter may lower it (0: fetch every
    #: payload).
    max_inline_payload_bytes: int = 1024 * 1024

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("settings_class")
        if declared is not None and "config_keys" not in cls.__dict__:
            cls.config_keys = setting_keys(declared) - BACKEND_CONFIG_KEYS

    def __init__(self) -> None:
        #: The environment's checked ``security`` setting, set by the executor before
        #: :meth:`start`; adapters that start workers themselves hand it on with
        #: :func:`worker_environment` instead of reading the setting again.
        self.security: Security | None = None
        #: The environment's checked ``executor_config``, an instance of
        #: :attr:`settings_class`, set by the executor before :meth:`start`; read it there with
        #: :meth:`configured`.
        self.settings: BackendSettings | None = None
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread_count = 8

    @abc.abstractmethod
    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        """Connect to the backend; raise a clear error here, before anything is submitted.

        ``config`` is the environment's whole ``executor_config``; :meth:`configured` gives it
        checked against the adapter's declaration. (An adapter without a declaration reads its
        own keys, listed in :attr:`config_keys`, from ``config``.)
        """

    def configured(
        self, settings_class: type[_S], environment_name: str, config: Mapping[str, Any]
    ) -> _S:
        """The environment's checked ``executor_config``, as ``settings_class`` (the adapter's
        declaration): what the executor checked before :meth:`start`, or, for an adapter
        started on its own (as tests and tools do), ``config`` checked now.

        Example:
            >>> async def start(self, environment_name, config):  # doctest: +SKIP
            ...     settings = self.configured(PigeonSettings, environment_name, config)
            ...     self._loft = await connect(settings.loft)
        """
        if isinstance(self.settings, settings_class):
            return self.settings
        return validate_executor_config(
            settings_class, config, environment=environment_name, executor=self.name
        )

    @abc.abstractmethod
    async def submit(self, job: BackendJob) -> Any:
        """Hand ``job.payload`` to the backend and return a handle for :meth:`cancel` and
        :meth:`status` (it is stored in ``job.handle``).

        Raises:
            DuplicateJobError: the backend already holds a job with ``job.job_id``.
            Exception: anything else fails the run as undeliverable (``source="transport"``).
        """

    @abc.abstractmethod
    async def cancel(self, job: BackendJob) -> bool:
        """Stop the job for real (revoke, abort, delete, scancel).

        Returns:
            ``True`` when the job certainly will not run any further nor report (it was removed
            from the queue, or its process was killed); the executor then reports the run
            cancelled itself. ``False`` when the worker must notice the cancel on its own.
        """

    @abc.abstractmethod
    async def status(self, job: BackendJob) -> JobStatus:
        """Ask the backend how the job is doing; return ``JobStatus("unknown")`` when unsure."""

    async def close(self) -> None:
        """Release clients and connections; the default shuts the blocking-call threads down."""
        threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)

    async def call_blocking(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking client call on the adapter's threads, never on the dispatch loop."""
        if self._threads is None:
            self._threads = concurrent.futures.ThreadPoolExecutor(
                self._thread_count, thread_name_prefix=f"wove-{self.name}"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._threads, functools.partial(function, *args, **kwargs)
        )


_STOPPED: Final = object()


class BackendExecutor(Executor):
    """The executor of every backend environment; subclasses only name their adapter.

    Its ``executor_config`` is declared by the adapter's ``settings_class``: the keys of
    :class:`BackendSettings` (``security``, the callback server, status polling, heartbeats,
    the inline payload limit, submission concurrency) and the adapter's own.
    """

    kind: ClassVar[ExecutorKind] = "backend"
    #: The adapter class this executor drives; set by every subclass.
    adapter_class: ClassVar[type[BackendAdapter]]
    settings_class: ClassVar[type[ExecutorSettings] | None] = BackendSettings
    config_keys: ClassVar[frozenset[str] | None] = BACKEND_CONFIG_KEYS

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        adapter = cls.__dict__.get("adapter_class")
        if adapter is not None:
            cls.settings_class = adapter.settings_class
            cls.config_keys = BACKEND_CONFIG_KEYS | adapter.config_keys

    def __init__(self) -> None:
        self.adapter: BackendAdapter = self.adapter_class()
        self.environment_name = ""
        self.security: Security | None = None
        self.callback_server: CallbackServer | None = None
        self._codec = LineCodec(None)
        self._jobs: dict[str, BackendJob] = {}
        self._events: asyncio.Queue[Any] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._status_interval = DEFAULT_STATUS_INTERVAL
        self._worker_heartbeat = DEFAULT_WORKER_HEARTBEAT
        self._adapter_started = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.environment_name!r}, {len(self._jobs)} jobs>"

    # -- the Executor contract -------------------------------------------------------------
    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        self.environment_name = environment_name
        adapter = self.adapter
        declared = adapter.settings_class
        settings = validate_executor_config(
            declared,
            environment_config,
            environment=environment_name,
            executor=adapter.name,
            extra_keys=adapter.config_keys - setting_keys(declared),
        )
        where = config_location(environment_name, adapter.name)
        security = settings.security
        if security is None:
            raise InvalidOptionError(
                f"{where}: security is required: payloads travel through {adapter.name}'s "
                "queue and events come back over HTTP, so both are signed. Set "
                "security='env:NAME' (a secret of at least 16 bytes in environment variable "
                "NAME) and give workers the same secret as WOVE_SECRET"
            )
        self.security = security
        self._codec = LineCodec(security)
        self._status_interval = settings.status_interval
        self._worker_heartbeat = settings.worker_heartbeat_seconds
        # The setting replaces the adapter's default before start(), where the adapter may
        # check it against what its backend can carry, or lower it (0: fetch every payload).
        if settings.max_inline_payload_bytes is not None:
            adapter.max_inline_payload_bytes = settings.max_inline_payload_bytes
        self._slots = asyncio.Semaphore(settings.submit_concurrency)
        adapter._thread_count = settings.submit_concurrency
        self._events = asyncio.Queue()

        host = settings.callback_host
        cert_file = settings.callback_cert_file
        if not is_loopback_host(host) and cert_file is None and not settings.insecure:
            raise ValueError(
                f"{where}: callback_host={host!r} is not a loopback address, so the callback "
                "server must use TLS (callback_cert_file and callback_key_file) -- results "
                "come back through it; set insecure=True to serve plain HTTP anyway (for "
                "example behind a TLS-terminating proxy on a private network)"
            )
        context = (
            server_ssl_context(
                cert_file=os.fspath(cert_file),
                key_file=None
                if settings.callback_key_file is None
                else os.fspath(settings.callback_key_file),
            )
            if cert_file is not None
            else None
        )
        self.callback_server = await acquire_callback_server(
            host,
            settings.callback_port,
            security=security,
            public_url=settings.callback_url,
            callback_token=settings.callback_token,
            ssl_context=context,
        )
        adapter.security = security
        adapter.settings = settings
        try:
            await adapter.start(environment_name, environment_config)
        except BaseException:
            await self._release_server()
            raise
        self._adapter_started = True
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def send(self, frame: Any) -> None:
        if isinstance(frame, RunTask):
            self._submit(frame)
        elif isinstance(frame, CancelTask):
            job = self._jobs.get(frame.run_id)
            if job is not None and not job.finished:
                self._spawn(self._cancel(job))
        # ``shutdown`` means nothing to a backend: its workers outlive the weave.

    async def recv(self) -> Any:
        assert self._events is not None, "start() first"
        return await self._events.get()

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        unfinished = [job for job in self._jobs.values() if not job.finished and job.submitted]
        if unfinished and self._adapter_started:
            # Nobody will wait for these any more: do not leave them running in the backend.
            await asyncio.gather(
                *(self._cancel(job, report=False) for job in unfinished), return_exceptions=True
            )
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for job in list(self._jobs.values()):
            self._forget(job)
        if self._adapter_started:
            self._adapter_started = False
            try:
                await self.adapter.close()
            except Exception:
                logger.warning("closing the %s adapter failed", self.adapter.name, exc_info=True)
        await self._release_server()

    # -- for tests and tools -------------------------------------------------------------------
    async def submit_raw(self, line: bytes) -> None:
        """Hand ``line`` to the backend as a payload exactly as given.

        For conformance tests that push forged and replayed payloads. The run id is read from
        the line's body *without* verifying it, only to let a correctly signed line's worker
        claim its run on the callback server; its events are dropped.
        """
        body = line.rstrip(b"\r\n").rpartition(b"\t")[2]
        run_id = decode_json(body).run_id
        server = self._server()
        if server._run(run_id) is None:
            server.register_run(run_id, lambda frame: None)
        job = BackendJob(
            run_id=run_id,
            task_id="raw",
            job_id=f"{run_id}-raw{time.monotonic_ns() % 1_000_000:x}",
            idempotency_key=None,
            attempt=1,
            payload=line.decode(),
            environment=self.environment_name,
            finished=True,  # nobody waits for its outcome
        )
        job.handle = await self.adapter.submit(job)

    # -- submitting ------------------------------------------------------------------------
    def _submit(self, frame: RunTask) -> None:
        server = self._server()
        heartbeat = frame.delivery.heartbeat_seconds or self._worker_heartbeat
        delivery = Delivery(
            heartbeat_seconds=heartbeat,
            timeout=frame.delivery.timeout,
            idempotency_key=frame.delivery.idempotency_key,
            attempt=frame.delivery.attempt,
            callback=server.url,
        )
        sent = RunTask(
            run_id=frame.run_id,
            task_id=frame.task_id,
            callable=frame.callable,
            args=frame.args,
            delivery=delivery,
            is_async=frame.is_async,
            timeout=frame.timeout,
        )
        line = self._codec.encode(sent)
        stored: bytes | None = None
        if len(line) > self.adapter.max_inline_payload_bytes:
            stored = line
            reference = PayloadRef(run_id=frame.run_id, url=server.payload_url(frame.run_id))
            line = self._codec.encode(reference)
        key = frame.delivery.idempotency_key
        job = BackendJob(
            run_id=frame.run_id,
            task_id=frame.task_id,
            job_id=_job_id(key, frame.delivery.attempt, frame.run_id),
            idempotency_key=key,
            attempt=frame.delivery.attempt,
            payload=line.rstrip(b"\n").decode(),
            environment=self.environment_name,
            heartbeat=heartbeat,
        )
        self._jobs[job.run_id] = job
        # Registered before the backend can possibly start the job and post to it.
        server.register_run(job.run_id, functools.partial(self._on_event, job), stored)
        self._spawn(self._submit_job(job))

    async def _submit_job(self, job: BackendJob) -> None:
        assert self._slots is not None
        async with self._slots:
            if job.finished:  # cancelled while waiting for a slot
                return
            try:
                job.handle = await self.adapter.submit(job)
            except Exception as error:
                if isinstance(error, DuplicateJobError):
                    message = (
                        f"{self.adapter.name} refused job {job.job_id!r} as a duplicate: a job "
                        "with the same idempotency key is queued or was kept after it ran, and "
                        f"its events go to the weave that submitted it ({error})"
                    )
                    kind = "wove.DuplicateJobError"
                else:
                    message = (
                        f"could not submit run {job.run_id!r} to {self.adapter.name} "
                        f"(environment {self.environment_name!r}): {type(error).__name__}: {error}"
                    )
                    kind = f"{type(error).__module__}.{type(error).__qualname__}"
                self._report(job, _error_frame(job, kind, message, "transport"))
                return
            job.submitted = True
            job.last_seen = time.monotonic()
            if job.cancel_requested:  # the cancel came before the backend had the job
                await self._cancel(job)

    # -- events ------------------------------------------------------------------------------
    def _on_event(self, job: BackendJob, frame: Frame) -> None:
        """Called by the callback server, on the dispatch loop, with each verified event."""
        if job.finished:
            return
        job.last_seen = time.monotonic()
        if isinstance(frame, TaskStarted):
            job.started = True
        self._deliver(job, frame)

    def _report(self, job: BackendJob, frame: Frame) -> None:
        """An outcome the executor decided on itself (the worker will not report one)."""
        if not job.finished:
            self._deliver(job, frame)

    def _deliver(self, job: BackendJob, frame: Frame) -> None:
        assert self._events is not None
        self._events.put_nowait(frame)
        if isinstance(frame, TERMINAL_EVENTS):
            job.finished = True
            self._forget(job)

    def _forget(self, job: BackendJob) -> None:
        self._jobs.pop(job.run_id, None)
        if self.callback_server is not None:
            self.callback_server.unregister_run(job.run_id)

    # -- cancelling ----------------------------------------------------------------------------
    async def _cancel(self, job: BackendJob, *, report: bool = True) -> None:
        job.cancel_requested = True
        if self.callback_server is not None:
            self.callback_server.request_cancel(job.run_id)
        if not job.submitted:
            return  # not handed over yet: _submit_job sees the flag and cancels after submitting
        try:
            stopped = await self.adapter.cancel(job)
        except Exception:
            logger.warning(
                "%s could not cancel job %r of run %s",
                self.adapter.name,
                job.job_id,
                job.run_id,
                exc_info=True,
            )
            return
        if stopped and report:
            self._report(job, TaskCancelled(run_id=job.run_id))

    # -- watching for jobs that end without a word ------------------------------------------
    async def _watch(self) -> None:
        next_poll = time.monotonic() + self._status_interval
        while True:
            beats = [job.heartbeat for job in self._jobs.values() if job.started]
            tick = min([self._status_interval or 1.0, *beats]) / 2
            await asyncio.sleep(max(tick, 0.05))
            now = time.monotonic()
            for job in list(self._jobs.values()):
                silent = now - job.last_seen
                if job.started and silent > SILENT_INTERVALS * job.heartbeat:
                    self._report(
                        job,
                        _orphaned(
                            job,
                            f"its worker sent nothing for {silent:.1f}s (heartbeat every "
                            f"{job.heartbeat:g}s); it was probably killed",
                        ),
                    )
            if self._status_interval and now >= next_poll:
                next_poll = now + self._status_interval
                await self._poll_statuses()

    async def _poll_statuses(self) -> None:
        jobs = [job for job in self._jobs.values() if job.submitted and not job.finished]
        if not jobs:
            return
        assert self._slots is not None
        slots = self._slots

        async def one(job: BackendJob) -> None:
            async with slots:
                try:
                    status = await self.adapter.status(job)
                except Exception as error:
                    logger.debug("status of %s job %r failed: %r", self.adapter.name, job, error)
                    return
            # Checked after the await: an outcome that arrived meanwhile wins.
            if job.finished or status.state not in FINAL_STATES:
                return
            if job.cancel_requested:
                self._report(job, TaskCancelled(run_id=job.run_id))
                return
            detail = f" ({status.detail})" if status.detail else ""
            if status.state == "succeeded":
                reason = (
                    f"{self.adapter.name} reports job {job.job_id!r} finished, but no outcome "
                    f"reached the callback server at {self._server().url}; check that workers "
                    "can reach callback_url"
                )
            else:
                reason = f"{self.adapter.name} reports job {job.job_id!r} {status.state}{detail}"
            self._report(job, _orphaned(job, reason))

        await asyncio.gather(*(one(job) for job in jobs))

    # -- helpers -----------------------------------------------------------------------------
    def _server(self) -> CallbackServer:
        if self.callback_server is None:
            raise RuntimeError(f"the {self.adapter.name} executor was not started")
        return self.callback_server

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release_server(self) -> None:
        server, self.callback_server = self.callback_server, None
        if server is not None:
            await server.release()


def safe_job_name(
    job_id: str,
    *,
    valid: re.Pattern[str],
    invalid: re.Pattern[str],
    replacement: str,
    base_length: int,
    digest_length: int = 16,
) -> str:
    """``job_id`` as a name a backend accepts, distinct for distinct ids.

    An id ``valid`` matches in full is used unchanged, so idempotency keys and run ids name
    their jobs directly. Any other id has every ``invalid`` match replaced by ``replacement``,
    is cut to ``base_length`` characters and gets ``-`` plus ``digest_length`` hex digits of
    its SHA-256: two keys that differ only in replaced characters still name two jobs.
    """
    if valid.fullmatch(job_id):
        return job_id
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:digest_length]
    return f"{invalid.sub(replacement, job_id)[:base_length]}-{digest}"


def worker_environment(
    security: Security, *, callback_token: str | None = None, where: str = "the environment"
) -> dict[str, str]:
    """The variables a backend worker reads (``WOVE_SECRET``, and ``WOVE_SECRET_KEY_ID`` and
    ``WOVE_CALLBACK_TOKEN`` when they apply), for adapters that start the worker themselves:
    a Slurm job, a Kubernetes Pod.

    Raises:
        InvalidOptionError: the secret is bytes that are not text, which no environment
            variable can carry.
    """
    try:
        secret = bytes.fromhex(security.secret_hex).decode()
    except UnicodeDecodeError:
        raise InvalidOptionError(
            f"{where}: the security secret is not text, so it cannot be handed to workers as "
            "WOVE_SECRET; use a text secret"
        ) from None
    variables = {"WOVE_SECRET": secret}
    if security.key_id != "default":
        variables["WOVE_SECRET_KEY_ID"] = security.key_id
    if callback_token:
        variables["WOVE_CALLBACK_TOKEN"] = callback_token
    return variables


def _job_id(key: str | None, attempt: int, run_id: str) -> str:
    if key is None:
        return run_id
    return key if attempt <= 1 else f"{key}-attempt{attempt}"


def _error_frame(job: BackendJob, kind: str, message: str, source: str) -> TaskError:
    return TaskError(
        run_id=job.run_id,
        error=NormalizedError(kind=kind, message=message, retryable=True, source=source),
    )


def _orphaned(job: BackendJob, reason: str) -> TaskError:
    # source "orphaned" hands the run to the dispatcher's delivery_orphan_policy.
    return _error_frame(job, "wove.DeliveryOrphanedError", reason, "orphaned")
