"""The ``dask`` backend adapter: each Wove run becomes one Dask task on a distributed cluster.

The adapter submits :func:`wove_dask.worker.run_payload` -- a function the workers import, so
it travels by reference -- with the signed payload as its only argument; the Dask worker runs
it in one of its threads and the run reports back to the callback server.

* **client** -- the adapter creates one *asynchronous* :class:`distributed.Client` on Wove's
  dispatch loop (``asynchronous=True``) and reuses it for every weave until the environment
  stops. Every call is then a plain ``await`` on the loop that already runs the adapter: no
  second event loop, no thread per call, and Dask's own reconnection logic runs where the
  adapter can see its outcome. A client passed in as ``client`` (usually a synchronous one the
  application already has) is used through :meth:`BackendAdapter.call_blocking` and never
  closed.
* **reconnecting** -- when the scheduler goes away, Dask's client retries for
  ``connect_timeout`` seconds and, failing that, closes itself; the next submission finds it
  closed and connects a new one. Tasks that were in flight are lost either way (Dask cancels
  their futures) and their runs end orphaned.
* **keys** -- every task's key is ``job.job_id`` (the idempotency key, or the run id) with
  ``pure=False``. Dask would silently attach a second submission of a live key to the first
  task, so the adapter refuses it with :class:`DuplicateJobError` instead: when this client
  holds a future for the key, or, for a task with an idempotency key, when the scheduler knows
  the key. A finished keyed task is held for ``idempotency_window`` seconds so that the
  refusal outlives the weave.
* **cancel** -- ``Client.cancel``. Dask never interrupts a task that has started; the cancel
  returns ``True`` only when the scheduler had not yet handed the task to a worker. A running
  run stops because the worker runtime sees the cancel in the answer to its next heartbeat
  (async task bodies stop; sync ones run on in their thread, their result discarded).
* **status** -- the future's own status, plus the scheduler's task state to tell queued from
  running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

from distributed import Client, Future

from wove import InvalidOptionError
from wove.backends import (
    BACKEND_CONFIG_KEYS,
    BackendAdapter,
    BackendExecutor,
    BackendJob,
    BackendSettings,
    DuplicateJobError,
    JobStatus,
)
from wove.plugins import (
    ExecutorSettings,
    Seconds,
    config_location,
    given_options,
    setting,
    setting_keys,
)

from .worker import NOT_CLAIMED, run_payload

__all__ = [
    "DASK_CONFIG_KEYS",
    "SUBMIT_OPTIONS",
    "DaskAdapter",
    "DaskExecutor",
    "DaskSettings",
    "DaskSubmitOptions",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds to connect to the scheduler, and for how long a client retries after losing it.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: Seconds a finished task with an idempotency key stays held, so its key is refused.
DEFAULT_IDEMPOTENCY_WINDOW: Final = 600.0


class DaskSubmitOptions(ExecutorSettings, kw_only=True):
    """``Client.submit`` options an environment may set for every task it submits; any other
    key would reach the task as an argument. ``key`` and ``pure`` are Wove's (idempotency)."""

    resources: Annotated[
        Mapping[str, Annotated[float, setting(ge=0)]] | None,
        setting(
            "abstract resources the task needs on its worker",
            expect="a dict mapping resource names to amounts, such as {'GPU': 1}",
        ),
    ] = None
    priority: Annotated[int | None, setting("higher runs first")] = None
    workers: Annotated[
        str | list[str] | None,
        setting(
            "the workers that may run the task",
            expect="a worker address or name, or a list of them",
        ),
    ] = None
    allow_other_workers: Annotated[
        bool | None, setting("whether other workers may run it when those are busy")
    ] = None
    fifo_timeout: Annotated[
        str | float | None,
        setting("how long tasks stay in submission order", expect="a duration ('100 ms')"),
    ] = None
    retries: Annotated[
        Literal[0] | None,
        setting(
            "only `0`: a payload runs at most once, so a Dask retry could never run it again",
            expect="0: a payload runs at most once (a second attempt finds its run claimed and "
            "does nothing), so Dask retries cannot run a task again; use the task's retries "
            "option, which Wove submits as a new run",
        ),
    ] = None


class DaskSettings(BackendSettings, kw_only=True):
    """The ``executor_config`` of a ``dask`` environment: ``address`` *or* ``client``, the
    adapter's other keys, and the ones every backend takes."""

    address: Annotated[
        str | None,
        setting(
            "the scheduler's address; the workers must be connected to the same scheduler",
            expect="a scheduler address string such as 'tcp://127.0.0.1:8786'",
            min_length=1,
        ),
    ] = None
    client: Annotated[
        Any,
        setting(
            "a synchronous `distributed.Client` your application already has; used through "
            "threads and never closed",
            expect="a synchronous distributed.Client",
        ),
    ] = None
    submit_options: Annotated[
        DaskSubmitOptions | None,
        setting(
            "`Client.submit` options for every task",
            reserved=dict.fromkeys(
                ("actor", "actors", "key", "pure"),
                "Wove sets key from the idempotency key (or run id) with pure=False, and runs "
                "are not actors",
            ),
        ),
    ] = None
    connect_timeout: Annotated[
        Seconds,
        setting(
            "how long to connect to the scheduler, and for how long a client retries after "
            "losing it",
            gt=0,
        ),
    ] = DEFAULT_CONNECT_TIMEOUT
    idempotency_window: Annotated[
        Seconds,
        setting(
            "how long a finished task with an idempotency key stays held, so a second "
            "submission of its key is refused",
            ge=0,
        ),
    ] = DEFAULT_IDEMPOTENCY_WINDOW


#: ``executor_config`` keys of a ``dask`` environment, besides the shared backend keys.
DASK_CONFIG_KEYS: Final = setting_keys(DaskSettings) - BACKEND_CONFIG_KEYS
#: ``Client.submit`` options an environment may set for every task it submits.
SUBMIT_OPTIONS: Final = setting_keys(DaskSubmitOptions)
#: Scheduler task states in which no worker has been handed the task yet (``None``: the
#: scheduler has not received the submission yet, and will receive the cancel after it).
_NOT_STARTED: Final = frozenset({None, "released", "waiting", "queued", "no-worker"})
#: Seconds to fetch a finished task's short return value when telling why it ended.
_RESULT_TIMEOUT: Final = 10.0
#: How often, at most, every held future is looked at to release expired ones.
_SWEEP_SECONDS: Final = 1.0


class DaskAdapter(BackendAdapter):
    """Submit each run as a Dask task; cancel, inspect and close through Dask's own client."""

    name: ClassVar[str] = "dask"
    settings_class = DaskSettings

    def __init__(self) -> None:
        super().__init__()
        self._client: Client | None = None
        self._owns_client = False
        self._address = ""
        self._where = "executor_config (executor 'dask')"
        self._connect_timeout = DEFAULT_CONNECT_TIMEOUT
        self._window = DEFAULT_IDEMPOTENCY_WINDOW
        self._submit_options: dict[str, Any] = {}
        self._connecting: asyncio.Lock | None = None
        # Futures of keyed tasks, held so their keys stay known to the scheduler; the value is
        # when the hold ends (None while the task has not been seen finished).
        self._held: dict[str, tuple[Future[Any], float | None]] = {}
        self._next_sweep = float("-inf")
        # One scheduler query answers every status call of a polling round.
        self._wanted: set[Any] = set()
        self._query: asyncio.Task[dict[Any, str | None]] | None = None

    # -- the adapter contract --------------------------------------------------------------------

    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        """Connect once; the client serves every later weave."""
        settings = self.configured(DaskSettings, environment_name, config)
        where = self._where = config_location(environment_name, self.name)
        options = {} if settings.submit_options is None else given_options(settings.submit_options)
        options.pop("retries", None)  # only 0 is allowed: nothing to pass on
        self._submit_options = options
        self._connect_timeout = settings.connect_timeout
        self._window = settings.idempotency_window
        self._connecting = asyncio.Lock()
        client, address = settings.client, settings.address
        if client is not None and address is not None:
            raise InvalidOptionError(
                f"{where}: address and client both name a Dask scheduler; keep only one"
            )
        if client is not None:
            self._client, self._owns_client = _given_client(client, where), False
            return
        if address is None:
            raise InvalidOptionError(
                f"{where}: no Dask scheduler: set address='tcp://127.0.0.1:8786' (the "
                "scheduler's address) or client=<a distributed.Client>; the workers must be "
                "connected to the same scheduler"
            )
        self._address = address
        self._client, self._owns_client = await self._connect(), True

    async def submit(self, job: BackendJob) -> Future[Any]:
        """Submit ``run_payload(job.payload)`` under the key ``job.job_id``.

        Raises:
            DuplicateJobError: this client, or for a keyed task the scheduler, already holds a
                task with that key (Dask would otherwise hand back the existing task).
        """
        client = await self._live_client()
        key = job.job_id
        now = time.monotonic()
        self._expire(key, now)
        self._release_expired(now)
        if key in self._held or key in client.futures:
            raise DuplicateJobError(
                f"this Dask client already holds task {key!r} (running, or finished less than "
                f"idempotency_window={self._window:g}s ago); use a new idempotency key to run "
                "the task again"
            )
        if job.idempotency_key is not None:
            state = (await self._task_states(client, [key])).get(key)
            if state is not None:
                raise DuplicateJobError(
                    f"the Dask scheduler already holds task {key!r} (state {state!r}) for "
                    "another client; use a new idempotency key to run the task again"
                )
        future: Future[Any] = client.submit(
            run_payload, job.payload, key=key, pure=False, **self._submit_options
        )
        if job.idempotency_key is not None and self._window > 0:
            self._held[key] = (future, None)
        return future

    async def cancel(self, job: BackendJob) -> bool:
        """Cancel the Dask task; ``True`` only when no worker had been handed it yet.

        Dask cannot interrupt a task a worker runs: its future is cancelled and the scheduler
        forgets it, but the thread runs on. So for a task in ``processing`` this returns
        ``False`` and the run stops when its worker sees the cancel on the callback server.
        """
        future: Future[Any] = job.handle
        self._held.pop(str(future.key), None)
        if future.status != "pending":
            return False  # it ended; its events (or the status poll) say how
        client = future.client
        state = (await self._task_states(client, [future.key])).get(future.key)
        await self._cancel(client, [future])
        return state in _NOT_STARTED

    async def status(self, job: BackendJob) -> JobStatus:
        """Map the future's status (and the scheduler's task state) onto Wove's states."""
        future: Future[Any] = job.handle
        state = future.status
        if state == "pending":
            where = await self._polled_state(future)
            if where == "processing":
                return JobStatus("running", "processing on a Dask worker")
            return JobStatus("pending", f"{where or 'submitted'} in the Dask scheduler")
        if state == "finished":
            outcome = await self._call(future.client, future.result, timeout=_RESULT_TIMEOUT)
            if outcome == NOT_CLAIMED:
                return JobStatus(
                    "failed",
                    "Dask ran the task again (its worker was lost mid-task and the scheduler "
                    "rescheduled it), and the new attempt found the run already claimed",
                )
            return JobStatus("succeeded", f"run_payload returned {outcome!r}")
        if state == "error":
            error = await self._call(future.client, future.exception, timeout=_RESULT_TIMEOUT)
            return JobStatus("failed", f"{type(error).__name__}: {error}")
        if state == "cancelled":
            return JobStatus(
                "cancelled",
                "its future was cancelled: the Dask client lost its connection to the "
                "scheduler, or someone cancelled the task in Dask",
            )
        if state == "lost":
            return JobStatus("missing", "Dask lost the task's result with the worker holding it")
        return JobStatus("unknown", str(state))

    async def close(self) -> None:
        """Close the client this adapter created; a client passed in belongs to its owner."""
        held, self._held = self._held, {}
        client, self._client = self._client, None
        if client is not None and not self._owns_client and held:
            await self._cancel(client, [future for future, _ in held.values()])
        if client is not None and self._owns_client:
            closing: Any = client.close  # untyped in distributed
            await closing()
        await super().close()

    # -- connections -----------------------------------------------------------------------------

    async def _connect(self) -> Client:
        """A new asynchronous client of ``address`` on the running (dispatch) loop."""
        factory: Any = Client  # untyped in distributed
        try:
            client: Client = await factory(
                self._address,
                asynchronous=True,
                timeout=self._connect_timeout,
                set_as_default=False,
            )
        except Exception as error:
            raise ConnectionError(
                f"{self._where}: cannot reach the Dask scheduler at {self._address!r} within "
                f"{self._connect_timeout:g}s: {type(error).__name__}: {error}. Start it "
                "(`dask scheduler`) or fix address"
            ) from error
        return client

    async def _live_client(self) -> Client:
        """The client, connected anew when Dask closed it after losing the scheduler."""
        client = self._client
        if client is None:
            raise RuntimeError("the dask adapter is not started (or already closed)")
        if client.status not in ("closing", "closed"):
            return client
        if not self._owns_client:
            raise ConnectionError(
                f"{self._where}: the distributed.Client given as client is {client.status}; "
                "give the environment an open client, or address= to let it connect itself"
            )
        assert self._connecting is not None
        async with self._connecting:
            if self._client is client:  # nobody reconnected meanwhile
                logger.info("the Dask client of %s closed; connecting again", self._address)
                self._held.clear()  # their keys died with the old client's futures
                self._client = await self._connect()
            current = self._client
        assert current is not None
        return current

    # -- scheduler queries -----------------------------------------------------------------------

    async def _call(self, client: Client, function: Callable[..., Any], **kwargs: Any) -> Any:
        """Call a client method that returns an awaitable on an asynchronous client and blocks
        on a synchronous one (``Client.sync`` semantics)."""
        if client.asynchronous:
            awaitable: Awaitable[Any] = function(**kwargs)
            return await awaitable
        return await self.call_blocking(function, **kwargs)

    async def _cancel(self, client: Client, futures: list[Future[Any]]) -> None:
        cancel: Any = client.cancel  # untyped in distributed
        if client.asynchronous:
            await cancel(futures)
        else:
            await self.call_blocking(cancel, futures)

    async def _task_states(self, client: Client, keys: Iterable[Any]) -> dict[Any, str | None]:
        """The scheduler's state of each key (``None``: it does not know the key)."""
        scheduler: Any = client.scheduler
        ask = scheduler.get_task_status
        if client.asynchronous:
            states: dict[Any, str | None] = await ask(keys=list(keys))
        else:
            states = await self.call_blocking(client.sync, ask, keys=list(keys))
        return states

    async def _polled_state(self, future: Future[Any]) -> str | None:
        """The scheduler's state of ``future``'s key, asked together with every other key a
        status call wants at the same moment (the executor polls all jobs at once)."""
        self._wanted.add(future.key)
        if self._query is None:
            self._query = asyncio.get_running_loop().create_task(self._ask_wanted(future.client))
        states = await asyncio.shield(self._query)
        return states.get(future.key)

    async def _ask_wanted(self, client: Client) -> dict[Any, str | None]:
        await asyncio.sleep(0)  # let the other status calls of this round add their keys
        keys, self._wanted = self._wanted, set()
        self._query = None
        return await self._task_states(client, keys)

    def _release_expired(self, now: float) -> None:
        """Look at every held future at most once a second: a mapped task submits thousands
        of keys, and sweeping them all on every submit would cost the square of their number."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_SECONDS
        for key in list(self._held):
            self._expire(key, now)

    def _expire(self, key: str, now: float) -> None:
        """Drop ``key``'s held future when its window has passed (Dask then forgets the key),
        or start its window when it is seen finished for the first time."""
        entry = self._held.get(key)
        if entry is None:
            return
        future, until = entry
        if until is None:
            if future.status != "pending":
                self._held[key] = (future, now + self._window)
        elif now >= until:
            del self._held[key]


class DaskExecutor(BackendExecutor):
    """The ``dask`` executor: Wove runs as Dask tasks, results back through the callback server.

    Example:
        >>> import wove
        >>> wove.config(
        ...     environments={
        ...         "cluster": {
        ...             "executor": "dask",
        ...             "executor_config": {
        ...                 "address": "tcp://127.0.0.1:8786",
        ...                 "security": "env:WOVE_SECRET",
        ...             },
        ...         }
        ...     }
        ... )
    """

    adapter_class = DaskAdapter


def _given_client(client: Any, where: str) -> Client:
    if not isinstance(client, Client):
        raise InvalidOptionError(
            f"{where}: client must be a distributed.Client, got a "
            f"{type(client).__module__}.{type(client).__qualname__}; for a scheduler address "
            "use address='tcp://host:8786' instead"
        )
    if client.status in ("closing", "closed"):
        raise InvalidOptionError(f"{where}: the distributed.Client given as client is closed")
    if client.asynchronous:
        raise InvalidOptionError(
            f"{where}: client is an asynchronous distributed.Client, which belongs to the "
            "event loop that created it, not to Wove's dispatch loop; pass a synchronous "
            "Client (the default), or address= to let the environment connect its own"
        )
    return client
