"""The ``stdio`` executor: a pool of worker processes that speak signed JSON lines.

Each worker is ``python -m wove.stdio_worker`` (or the configured ``command``). Commands go to
its stdin and events come back on its stdout, one :class:`~wove.plugins.LineCodec` line each,
signed with a secret made fresh for this executor and handed to the workers in their
environment. Nothing a worker writes is passed on before its signature has been verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final, Literal

from wove import InvalidOptionError, WeaveUsageError, WoveError
from wove.plugins import (
    CancelTask,
    Executor,
    ExecutorKind,
    ExecutorSettings,
    FilePath,
    FrameRejectedError,
    Heartbeat,
    LineCodec,
    LogRecord,
    NormalizedError,
    RunTask,
    Seconds,
    Security,
    Shutdown,
    TaskCancelled,
    TaskError,
    TaskResult,
    TaskStarted,
    config_location,
    setting,
    validate_executor_config,
)

__all__ = ["StdioExecutor", "StdioSettings", "StdioWorkerStartError", "default_processes"]

logger = logging.getLogger(__name__)

#: Longest line a worker may write. Results of 10+ MB are normal; this only stops a runaway.
LINE_LIMIT: Final = 2**30
#: How long ``stop()`` waits for the workers to exit on their own before killing them.
STOP_TIMEOUT_SECONDS: Final = 5.0
#: How long a worker whose stdout ended may take to exit before it is killed.
EXIT_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_START_TIMEOUT_SECONDS: Final = 30.0

TERMINAL_EVENTS: Final = (TaskResult, TaskError, TaskCancelled)
_EVENTS: Final = (TaskStarted, TaskResult, TaskError, TaskCancelled, Heartbeat, LogRecord)
_STOPPED: Final = object()  # queued by stop() to wake and end every pending recv()
_PROBE_TASK: Final = "wove-stdio-probe"


def default_processes() -> int:
    """How many workers an environment gets when ``processes`` is not set: ``min(4, CPUs)``."""
    return min(4, os.cpu_count() or 1)


class StdioWorkerStartError(WoveError, RuntimeError):
    """A worker process could not be started, or exited before it answered its first run."""


#: The worker command line when the environment names none.
DEFAULT_COMMAND: Final = (sys.executable, "-m", "wove.stdio_worker")


class StdioSettings(ExecutorSettings, kw_only=True):
    """The ``executor_config`` of a stdio environment, declared once: read it with
    :meth:`from_config`, which also fills in the worker command and the pool size."""

    command: Annotated[
        tuple[str, ...],
        setting(
            "the worker command line",
            expect="a non-empty list of strings, such as ['python', '-m', 'wove.stdio_worker']",
            default='`[sys.executable, "-m", "wove.stdio_worker"]`',
            min_length=1,
        ),
    ] = DEFAULT_COMMAND
    processes: Annotated[
        int,
        setting(
            "how many worker processes the pool keeps", default="`min(4, os.cpu_count())`", ge=1
        ),
    ] = default_processes()
    max_threads: Annotated[
        int | None,
        setting(
            "passed as `--max-threads` to the default command: the sync tasks one worker runs "
            "at once",
            default="the worker's",
            ge=1,
        ),
    ] = None
    env: Annotated[
        Mapping[str, str],
        setting(
            "extra environment variables for the workers, on top of this process's",
            expect="a dict mapping variable names to string values",
        ),
    ] = {}
    cwd: Annotated[
        FilePath | None, setting("the workers' working directory", default="this process's")
    ] = None
    start_timeout: Annotated[
        Seconds, setting("how long every worker has to start and answer its first run", gt=0)
    ] = DEFAULT_START_TIMEOUT_SECONDS

    @classmethod
    def from_config(cls, config: Mapping[str, Any], environment: str) -> StdioSettings:
        """Check ``config`` (an environment's ``executor_config``) and return the settings,
        with ``max_threads`` added to the default command.

        Raises:
            UnknownOptionError: a key the executor does not take.
            InvalidOptionError: a key has a value it cannot take.
        """
        settings = validate_executor_config(cls, config, environment=environment, executor="stdio")
        if settings.max_threads is not None:
            if config.get("command") is not None:
                raise InvalidOptionError(
                    f"{config_location(environment, 'stdio')}: max_threads applies only to the "
                    "default command; with a custom command, add '--max-threads', "
                    f"'{settings.max_threads}' to it yourself"
                )
            settings.command = (*settings.command, "--max-threads", str(settings.max_threads))
        return settings


def _is_worker_timeout(sent: RunTask, event: Any) -> bool:
    """Whether ``event`` says the worker gave up on the sync run ``sent`` at its ``timeout``."""
    return (
        isinstance(event, TaskError)
        and not sent.is_async
        and sent.timeout is not None
        and event.error.kind == "builtins.TimeoutError"
    )


class _Worker:
    """One worker process, the runs it owns, and the task reading its stdout."""

    __slots__ = (
        "accepting",
        "alive",
        "process",
        "reader",
        "recycling",
        "runs",
        "write_lock",
    )

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        #: Not known to have exited, and its input still open.
        self.alive = True
        #: Takes new runs: alive, and not asked to shut down.
        self.accepting = True
        #: Ends once its runs are done: a sync task given up on may still hold one of its threads.
        self.recycling = False
        #: The runs it owns, by run id; insertion-ordered, so orphaned runs are reported in the
        #: order they were sent. (The frames share their payload bytes with the caller's.)
        self.runs: dict[str, RunTask] = {}
        self.reader: asyncio.Task[None] | None = None
        # One writer at a time: a large frame is written and drained before the next one.
        self.write_lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stdin(self) -> asyncio.StreamWriter:
        stream = self.process.stdin
        assert stream is not None
        return stream

    @property
    def stdout(self) -> asyncio.StreamReader:
        stream = self.process.stdout
        assert stream is not None
        return stream

    def retire(self) -> None:
        """Give it no more runs and no more input."""
        self.alive = self.accepting = False

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class StdioExecutor(Executor):
    """Run an environment's tasks in a pool of local worker processes over stdin/stdout.

    ``start`` launches ``processes`` workers at once and waits (up to ``start_timeout``) until
    each has run a tiny probe task, so a broken command or environment fails there, before
    anything is submitted. The workers then serve every run of the environment, in every weave
    of this process, until ``stop``: no process is spawned per weave or per task. Each
    ``run_task`` goes to the worker with the fewest runs in flight; ``cancel_task`` goes to the
    worker running that run; ``shutdown`` goes to every worker.

    Every frame is signed with a secret made for this executor (handed to the workers as
    ``WOVE_STDIO_SECRET`` and ``WOVE_STDIO_KEY_ID``); event lines that fail verification are
    dropped with a warning. When a worker exits while it runs tasks, each of its runs ends with
    a ``task_error`` whose source is ``"orphaned"`` (so the environment's
    ``delivery_orphan_policy`` applies) and the next run starts a fresh worker in its place.

    Cancelling a sync task (or a sync task's ``timeout`` expiring on the worker) cannot stop
    the thread its callable runs in, so that worker is *recycled*: it takes no new runs, and
    once its other runs are done its input is closed and it exits, which stops the thread. The
    pool gets a fresh worker when there is work for one. Async tasks are cancelled in place.

    Its ``executor_config`` keys are declared by :class:`StdioSettings`.

    Example:
        >>> import wove
        >>> _ = wove.config(
        ...     environments={"cpu": {"executor": "stdio", "executor_config": {"processes": 8}}}
        ... )
    """

    kind: ClassVar[ExecutorKind] = "process"
    settings_class: ClassVar[type[ExecutorSettings] | None] = StdioSettings

    def __init__(self) -> None:
        self._state: Literal["new", "starting", "started", "stopping", "stopped"] = "new"
        self._environment = ""
        self._settings: StdioSettings | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._codec = LineCodec(None)
        self._security: Security | None = None
        self._workers: list[_Worker] = []
        self._owners: dict[str, _Worker] = {}
        self._probes: dict[str, tuple[_Worker, asyncio.Future[Any]]] = {}
        self._events: asyncio.Queue[Any] | None = None
        self._spawn_lock: asyncio.Lock | None = None
        self._stopped: asyncio.Event | None = None

    # -- introspection ------------------------------------------------------------------------
    @property
    def pids(self) -> tuple[int, ...]:
        """The process ids of the live workers, oldest first."""
        return tuple(worker.pid for worker in self._workers if worker.alive)

    @property
    def settings(self) -> StdioSettings | None:
        """The checked ``executor_config``, once started."""
        return self._settings

    @property
    def security(self) -> Security | None:
        """What signs this executor's frames and checks its workers' (for tests, such as the
        conformance suite's replay test); ``None`` before ``start``."""
        return self._security

    async def write_raw(self, line: bytes) -> None:
        """Write ``line`` exactly as given to the oldest live worker.

        A test hook: the conformance suite pushes forged and replayed frames into the transport
        this way. Whatever the worker answers for runs this executor did not send is dropped.

        Raises:
            WeaveUsageError: the executor is not started, or has no live worker.
        """
        self._check_usable("write")
        worker = next((worker for worker in self._workers if worker.alive), None)
        if worker is None:
            raise WeaveUsageError(
                f"the stdio executor of environment {self._environment!r} has no live worker"
            )
        await self._write_line(worker, line)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._environment!r} {self._state} pids={self.pids}>"

    # -- the Executor contract ------------------------------------------------------------
    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        """Launch the workers and wait until each has answered a probe run.

        Raises:
            InvalidOptionError: the ``executor_config`` has a value it cannot take.
            StdioWorkerStartError: a worker could not be launched or exited while starting.
            TimeoutError: the workers did not all answer within ``start_timeout``.
        """
        if self._state in ("starting", "started"):
            return
        settings = StdioSettings.from_config(environment_config, environment_name)
        self._environment = environment_name
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self._security = Security.ephemeral()
        self._codec = LineCodec(self._security)
        self._workers = []
        self._owners = {}
        self._probes = {}
        self._events = asyncio.Queue()
        self._spawn_lock = asyncio.Lock()
        self._stopped = None
        self._state = "starting"
        launching = [asyncio.ensure_future(self._start_worker()) for _ in range(settings.processes)]
        try:
            done, pending = await asyncio.wait(
                launching, timeout=settings.start_timeout, return_when=asyncio.FIRST_EXCEPTION
            )
            for task in done:
                task.result()  # the first failure, if any
            if pending:
                raise TimeoutError(
                    f"the stdio workers of environment {environment_name!r} did not start "
                    f"within start_timeout={settings.start_timeout:g}s (command "
                    f"{list(settings.command)!r}); raise start_timeout in its executor_config "
                    "if they are just slow"
                )
        except BaseException:
            for task in launching:
                task.cancel()
            await asyncio.gather(*launching, return_exceptions=True)
            self._state = "started"
            await self.stop()
            raise
        self._state = "started"

    async def send(self, frame: Any) -> None:
        """Deliver a command: ``run_task`` to the least-loaded worker, ``cancel_task`` to the
        worker that owns the run (unknown runs are ignored), ``shutdown`` to every worker.

        Raises:
            WeaveUsageError: the executor is not started, or is used from another event loop.
            StdioWorkerStartError: no worker was live and a fresh one could not be launched.
        """
        self._check_usable("send")
        if isinstance(frame, RunTask):
            await self._send_run(frame)
        elif isinstance(frame, CancelTask):
            worker = self._owners.get(frame.run_id)
            if worker is not None and worker.alive:
                if not worker.runs[frame.run_id].is_async:
                    self._recycle(worker, "a sync task was cancelled")
                await self._write(worker, frame)
        elif isinstance(frame, Shutdown):
            # Each worker finishes or cancels its runs and exits; new runs go to fresh workers.
            for worker in [worker for worker in self._workers if worker.alive]:
                worker.accepting = False
                await self._write(worker, frame)
        else:
            raise TypeError(
                f"the stdio executor sends only RunTask, CancelTask and Shutdown frames, "
                f"not {frame!r}"
            )

    async def recv(self) -> Any:
        """Return the next verified event from any worker.

        Raises:
            WeaveUsageError: the executor was never started, or is stopped and every event
                that arrived before the stop has been received.
        """
        events = self._events
        if events is None:
            raise WeaveUsageError(
                f"the stdio executor of environment {self._environment!r} is not started; "
                "await start() before recv()"
            )
        self._check_loop("recv")
        event = await events.get()
        if event is _STOPPED:
            events.put_nowait(_STOPPED)  # wake the next receiver too
            raise WeaveUsageError(
                f"the stdio executor of environment {self._environment!r} is stopped; "
                "no more events will arrive"
            )
        return event

    async def stop(self) -> None:
        """Ask every worker to exit, kill those that do not within a few seconds, and release
        the pipes. Runs still in flight end with an ``"orphaned"`` ``task_error``. Safe to
        call twice, and from another loop than the one that started the executor."""
        if self._state in ("new", "stopped"):
            self._state = "stopped"
            return
        loop = self._loop
        assert loop is not None
        if asyncio.get_running_loop() is not loop:
            await self._stop_from_elsewhere(loop)
            return
        if self._state == "stopping":
            assert self._stopped is not None
            await self._stopped.wait()
            return
        self._state = "stopping"
        self._stopped = asyncio.Event()
        try:
            await self._stop_workers()
        finally:
            self._state = "stopped"
            if self._events is not None:
                self._events.put_nowait(_STOPPED)
            self._stopped.set()

    # -- sending ----------------------------------------------------------------------------
    def _check_loop(self, action: str) -> None:
        if asyncio.get_running_loop() is not self._loop:
            raise WeaveUsageError(
                f"cannot {action} on the stdio executor of environment {self._environment!r} "
                "from another event loop than the one that started it; an executor lives on "
                "one loop"
            )

    def _check_usable(self, action: str) -> None:
        if self._state != "started":
            hint = {
                "new": "await start() first",
                "starting": "wait until start() has returned",
            }.get(self._state, "await start() to launch a new pool")
            raise WeaveUsageError(
                f"cannot {action} frames: the stdio executor of environment "
                f"{self._environment!r} is {self._state}; {hint}"
            )
        self._check_loop(action)

    async def _send_run(self, frame: RunTask) -> None:
        if frame.run_id in self._owners:
            raise WeaveUsageError(f"run {frame.run_id!r} is already running on this executor")
        worker = await self._pick_worker()
        # Owned before it is written: if the worker dies from here on, the run is orphaned.
        worker.runs[frame.run_id] = frame
        self._owners[frame.run_id] = worker
        await self._write(worker, frame)

    def _least_loaded(self) -> _Worker | None:
        pool = [worker for worker in self._workers if worker.accepting]
        return min(pool, key=lambda worker: len(worker.runs), default=None)

    def _is_good_pick(self, worker: _Worker | None) -> bool:
        assert self._settings is not None
        if worker is None:
            return False
        pool = sum(1 for each in self._workers if each.accepting)
        return not worker.runs or pool >= self._settings.processes

    async def _pick_worker(self) -> _Worker:
        """The live worker with the fewest runs; a fresh one if the pool is short and busy."""
        worker = self._least_loaded()
        if self._is_good_pick(worker):
            assert worker is not None
            return worker
        assert self._spawn_lock is not None
        async with self._spawn_lock:
            if self._state != "started":
                raise WeaveUsageError(
                    f"the stdio executor of environment {self._environment!r} stopped while "
                    "this run was being sent"
                )
            # Another send may have refilled the pool while this one waited.
            worker = self._least_loaded()
            if self._is_good_pick(worker):
                assert worker is not None
                return worker
            return await self._spawn()

    async def _write(self, worker: _Worker, frame: Any) -> None:
        await self._write_line(worker, self._codec.encode(frame))

    async def _write_line(self, worker: _Worker, line: bytes) -> None:
        try:
            async with worker.write_lock:
                worker.stdin.write(line)
                await worker.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as error:
            # The worker is gone (or going). Killing it ends its stdout, and its reader then
            # reports every run it owned, this one included, with the exit code.
            if worker.alive:
                logger.warning(
                    "stdio worker %d of environment %r stopped reading its input (%s)",
                    worker.pid,
                    self._environment,
                    error,
                )
            worker.retire()
            worker.kill()

    # -- workers ----------------------------------------------------------------------------
    async def _spawn(self) -> _Worker:
        """Launch a worker; the caller holds the spawn lock, so ``stop`` never misses one."""
        settings = self._settings
        security = self._security
        assert settings is not None
        assert security is not None
        assert self._loop is not None
        env = {
            **os.environ,
            **settings.env,
            "WOVE_STDIO_SECRET": security.secret_hex,
            "WOVE_STDIO_KEY_ID": security.key_id,
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *settings.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=None,
                env=env,
                cwd=settings.cwd,
                limit=LINE_LIMIT,
            )
        except OSError as error:
            raise StdioWorkerStartError(
                f"cannot launch the stdio worker of environment {self._environment!r} with "
                f"command {list(settings.command)!r}"
                + (f" in {settings.cwd!r}" if settings.cwd else "")
                + f": {error}"
            ) from error
        worker = _Worker(process)
        worker.reader = self._loop.create_task(
            self._read(worker), name=f"wove-stdio-reader-{worker.pid}"
        )
        self._workers.append(worker)
        logger.debug("started stdio worker %d for environment %r", worker.pid, self._environment)
        return worker

    async def _start_worker(self) -> None:
        """Launch one worker and wait until it has run the probe (``int()``) and answered."""
        from wove.plugins import dumps

        assert self._loop is not None
        assert self._spawn_lock is not None
        async with self._spawn_lock:
            worker = await self._spawn()
        run_id = f"{_PROBE_TASK}-{secrets.token_hex(10)}"
        answered: asyncio.Future[Any] = self._loop.create_future()
        self._probes[run_id] = (worker, answered)
        reason = "starting a stdio worker"
        probe = RunTask(
            run_id=run_id, task_id=_PROBE_TASK, callable=dumps(int, reason), args=dumps({}, reason)
        )
        try:
            await self._write(worker, probe)
            outcome = await answered
        finally:
            del self._probes[run_id]
        if isinstance(outcome, TaskError):
            failure = outcome.error
            raise StdioWorkerStartError(
                f"the stdio worker {worker.pid} of environment {self._environment!r} could not "
                f"run its probe task: {failure.kind}: {failure.message}\n{failure.traceback}"
            )
        if not isinstance(outcome, TaskResult):
            raise StdioWorkerStartError(
                f"the stdio worker {worker.pid} of environment {self._environment!r} answered "
                f"its probe task with {type(outcome).__name__}"
            )

    async def _read(self, worker: _Worker) -> None:
        """Pass on every verified event the worker writes; at end of output, reap it."""
        stdout = worker.stdout
        while True:
            try:
                line = await stdout.readline()
            except ValueError as error:  # a line beyond LINE_LIMIT: this worker is broken
                logger.warning(
                    "stdio worker %d of environment %r wrote an oversized line (%s); killing it",
                    worker.pid,
                    self._environment,
                    error,
                )
                worker.retire()
                worker.kill()
                continue
            if not line:
                break
            try:
                self._accept(worker, line)
            except Exception:
                logger.exception("stdio worker %d: could not handle an event line", worker.pid)
        worker.retire()
        code = await self._wait_exit(worker)
        self._orphan_runs(worker, code)
        worker.stdin.close()
        if worker in self._workers:
            self._workers.remove(worker)

    def _accept(self, worker: _Worker, line: bytes) -> None:
        try:
            frame = self._codec.decode(line)
        except FrameRejectedError as error:
            logger.warning(
                "dropped a line from stdio worker %d of environment %r: %s (line starts %r)",
                worker.pid,
                self._environment,
                error,
                line[:80],
            )
            return
        if not isinstance(frame, _EVENTS):
            logger.warning(
                "dropped a %s frame from stdio worker %d: workers send only events",
                type(frame).__name__,
                worker.pid,
            )
            return
        run_id = frame.run_id
        probe = self._probes.get(run_id)
        if probe is not None:
            owner, answered = probe
            if owner is worker and isinstance(frame, TERMINAL_EVENTS) and not answered.done():
                answered.set_result(frame)
            return
        if run_id not in worker.runs and not isinstance(frame, LogRecord):
            # A run this worker does not own: already reported orphaned, or never its own.
            logger.debug(
                "dropped %s for run %r from stdio worker %d",
                type(frame).__name__,
                run_id,
                worker.pid,
            )
            return
        if isinstance(frame, TERMINAL_EVENTS):
            sent = worker.runs.pop(run_id)
            self._owners.pop(run_id, None)
            if _is_worker_timeout(sent, frame):
                self._recycle(worker, "a sync task timed out")
            self._close_if_recycled(worker)
        assert self._events is not None
        self._events.put_nowait(frame)

    def _recycle(self, worker: _Worker, why: str) -> None:
        """Give a worker no new runs, and end it once the runs it has are done.

        A sync task that was cancelled or timed out ends at once as far as the weave is
        concerned, but the thread running its callable cannot be stopped from inside the
        worker, so it would keep running -- and keep a thread -- until it returned. Ending the
        process is what really stops it. The worker's other runs finish normally, new runs go
        to the other workers, and the pool gets a fresh worker when there is work for one.
        """
        if not worker.recycling:
            logger.debug("recycling stdio worker %d: %s", worker.pid, why)
        worker.recycling = True
        worker.accepting = False
        self._close_if_recycled(worker)

    def _close_if_recycled(self, worker: _Worker) -> None:
        if worker.recycling and worker.alive and not worker.runs:
            # End of input makes the worker exit, threads still inside a callable and all.
            worker.alive = False
            worker.stdin.close()

    async def _wait_exit(self, worker: _Worker) -> int:
        try:
            return await asyncio.wait_for(worker.process.wait(), EXIT_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            logger.warning(
                "stdio worker %d closed its output but did not exit; killing it", worker.pid
            )
            worker.kill()
            return await worker.process.wait()

    def _orphan_runs(self, worker: _Worker, code: int | None) -> None:
        """End every run ``worker`` owned with an orphaned ``task_error``; fail its probes."""
        if code is None:
            exited = "did not exit when the executor stopped"
        else:
            exited = f"exited with code {code}"
            if code < 0:
                with contextlib.suppress(ValueError):
                    exited += f" ({signal.Signals(-code).name})"
        stopping = " (the executor was stopping)" if self._state == "stopping" else ""
        message = f"stdio worker process {worker.pid} {exited} while running this task{stopping}"
        runs = list(worker.runs)
        worker.runs.clear()
        assert self._events is not None
        for run_id in runs:
            self._owners.pop(run_id, None)
            self._events.put_nowait(
                TaskError(
                    run_id=run_id,
                    error=NormalizedError(
                        kind="wove.WorkerExited",
                        message=message,
                        retryable=True,
                        source="orphaned",
                    ),
                )
            )
        for owner, answered in self._probes.values():
            if owner is worker and not answered.done():
                answered.set_exception(
                    StdioWorkerStartError(
                        f"the stdio worker of environment {self._environment!r} "
                        f"({list(self._settings.command) if self._settings else []!r}) "
                        f"{exited} before it answered its first run; its stderr above says why"
                    )
                )

    # -- stopping ---------------------------------------------------------------------------
    async def _stop_workers(self) -> None:
        assert self._spawn_lock is not None
        async with self._spawn_lock:  # wait out a launch in progress; no new ones after it
            await self._stop_pool()

    async def _stop_pool(self) -> None:
        workers = list(self._workers)
        if not workers:
            return
        # Ask nicely: a shutdown frame, then end of input. A worker that is not reading its
        # input (its pipe full) gets no longer than the stop timeout to take them.
        asking = [asyncio.ensure_future(self._ask_to_exit(worker)) for worker in workers]
        readers = [worker.reader for worker in workers if worker.reader is not None]
        _, pending = await asyncio.wait([*asking, *readers], timeout=STOP_TIMEOUT_SECONDS)
        if pending:
            for worker in workers:
                worker.kill()
            _, pending = await asyncio.wait(pending, timeout=EXIT_TIMEOUT_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*asking, *readers, return_exceptions=True)
        for worker in workers:
            # Readers that were cancelled (a grandchild holding the pipe open) never reaped.
            self._orphan_runs(worker, worker.process.returncode)
            worker.stdin.close()
        self._workers.clear()

    async def _ask_to_exit(self, worker: _Worker) -> None:
        if worker.alive:
            await self._write(worker, Shutdown(run_id=""))
        worker.stdin.close()

    async def _stop_from_elsewhere(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop on the loop that owns the pipes; if it is gone, kill the workers."""
        if loop.is_running() and not loop.is_closed():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.stop(), loop))
            return
        logger.warning(
            "the event loop of the stdio executor of environment %r is no longer running; "
            "killing its workers %s",
            self._environment,
            self.pids,
        )
        for worker in self._workers:
            worker.retire()
            worker.kill()
        self._workers.clear()
        self._state = "stopped"
