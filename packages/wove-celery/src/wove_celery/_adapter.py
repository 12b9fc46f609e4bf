"""The weave side of the ``celery`` executor: send payloads with ``send_task``, revoke on cancel.

Everything that is not Celery-specific (signing, the callback server, heartbeats, status
polling, delivery policy) comes from :class:`wove.backends.BackendExecutor`. Every Celery call
here is blocking (kombu and redis-py are synchronous), so each one goes through
:meth:`~wove.backends.BackendAdapter.call_blocking` and the dispatch loop never stalls.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Final

from wove import InvalidOptionError
from wove.backends import (
    BACKEND_CONFIG_KEYS,
    BackendAdapter,
    BackendExecutor,
    BackendJob,
    BackendSettings,
    JobStatus,
)
from wove.plugins import config_location, setting, setting_keys

if TYPE_CHECKING:
    # Celery ships no type information; its objects are Any to mypy.
    from celery import Celery  # type: ignore[import-untyped]
    from celery.result import AsyncResult  # type: ignore[import-untyped]

__all__ = [
    "CELERY_CONFIG_KEYS",
    "DEFAULT_TASK_NAME",
    "CeleryAdapter",
    "CeleryExecutor",
    "CelerySettings",
]

#: The name :func:`wove_celery.register_wove_task` registers the worker task under by default.
DEFAULT_TASK_NAME: Final = "wove.run"
#: The signal a revoke sends to the pool process running a cancelled job. SIGKILL, because a
#: Wove run executes sync callables in threads that no catchable signal can interrupt, and a
#: task (or a library it uses) may install its own SIGTERM handler; the run has nothing to
#: clean up on the worker -- its outcome is reported by the weave, not by the killed process.
TERMINATE_SIGNAL: Final = "SIGKILL"
#: Seconds a cancel waits for workers to answer the revoke broadcast.
REVOKE_REPLY_SECONDS: Final = 1.0
#: Options the adapter sets itself, so ``apply_async_options`` may not.
_RESERVED_OPTIONS: Final = frozenset({"args", "kwargs", "task_id", "queue", "name"})


def _celery_app(value: Any, key: str, where: str) -> Any:
    """``app`` as given, once it is known to be a Celery app (celery is imported only when an
    environment names one)."""
    from celery import Celery

    if isinstance(value, Celery):
        return value
    raise InvalidOptionError(
        f"{where}: app must be a celery.Celery instance, got {type(value).__name__} {value!r}; "
        "pass your Celery app object, or broker_url='redis://...' instead"
    )


class CelerySettings(BackendSettings, kw_only=True):
    """The ``executor_config`` of a ``celery`` environment: ``app`` *or* ``broker_url`` (with
    ``result_backend``), the adapter's other keys, and the ones every backend takes."""

    app: Annotated[
        Any,
        setting(
            "your `celery.Celery` app to send with: its broker, result backend, routes and "
            "serializer settings apply",
            expect="a celery.Celery instance",
            parse=_celery_app,
        ),
    ] = None
    broker_url: Annotated[
        str | None,
        setting(
            "the broker to send through, when no `app` is given; Wove builds a client app, "
            "shared by every weave in the process that names the same URLs",
            expect="a URL string such as 'redis://127.0.0.1:6379/1'",
            pattern="://",
        ),
    ] = None
    result_backend: Annotated[
        str | None,
        setting(
            "the result backend beside `broker_url`, read only to tell how a job ended",
            expect="a URL string such as 'redis://127.0.0.1:6379/2'",
            pattern="://",
        ),
    ] = None
    task_name: Annotated[
        str,
        setting(
            "the name the workers registered `wove_celery.register_wove_task` under",
            min_length=1,
        ),
    ] = DEFAULT_TASK_NAME
    queue: Annotated[
        str | None,
        setting(
            "the queue runs are routed to (workers consume it with `-Q`)",
            default="Celery's routing (`task_routes`, else the `celery` queue)",
            min_length=1,
        ),
    ] = None
    apply_async_options: Annotated[
        Mapping[str, Any],
        setting(
            "passed to every `send_task` (`priority`, `expires`, `headers`...)",
            expect="a dict of send_task options such as {'priority': 5, 'expires': 600}",
            reserved=dict.fromkeys(
                sorted(_RESERVED_OPTIONS),
                "the executor sets the payload argument and the task id itself; route with "
                "the queue key",
            ),
        ),
    ] = {}


#: ``executor_config`` keys of a ``celery`` environment, besides the shared backend keys.
CELERY_CONFIG_KEYS: Final = setting_keys(CelerySettings) - BACKEND_CONFIG_KEYS
#: Celery result states and what they mean for a job.
_STATES: Final[Mapping[str, str]] = {
    "PENDING": "pending",  # queued -- or unknown to the backend: Celery cannot tell them apart
    "RECEIVED": "pending",
    "RETRY": "pending",
    "STARTED": "running",  # only with task_track_started on the workers
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "REJECTED": "failed",
    "REVOKED": "cancelled",
}

# Client apps built from broker_url/result_backend, shared by every environment and weave in
# the process that names the same pair, so connections (kombu's pools) are made once. Each pair
# is a sender without a result backend -- so send_task never subscribes to a result channel
# nobody reads -- and, with a result backend, a second app only status polls read through.
_client_apps: dict[tuple[str, str | None], tuple[Celery, Celery | None]] = {}
_client_apps_lock = threading.Lock()


def _client_app(broker_url: str, result_backend: str | None) -> tuple[Celery, Celery | None]:
    with _client_apps_lock:
        apps = _client_apps.get((broker_url, result_backend))
        if apps is None:
            from celery import Celery

            sender = Celery("wove-client", broker=broker_url, set_as_current=False)
            reader = None
            if result_backend is not None:
                reader = Celery(
                    "wove-client", broker=broker_url, backend=result_backend, set_as_current=False
                )
            if not _client_apps:
                atexit.register(_close_client_apps)
            apps = _client_apps[broker_url, result_backend] = (sender, reader)
        return apps


def _close_client_apps() -> None:
    """Close the pooled broker connections of every client app (at exit, or from tests)."""
    with _client_apps_lock:
        apps = list(_client_apps.values())
        _client_apps.clear()
    for sender, reader in apps:
        close_app(sender)
        if reader is not None:
            close_app(reader)


def close_app(app: Celery) -> None:
    """Close an app's pooled broker connections and its result backend's Redis connections."""
    app.close()
    # ``_backend`` is the app's cached backend (a property): it never creates a new one.
    client = getattr(getattr(app, "_backend", None), "client", None)
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.disconnect()


class CeleryAdapter(BackendAdapter):
    """Submit runs as Celery tasks named ``task_name`` and follow them through Celery; the
    environment's keys are declared by :class:`CelerySettings`."""

    name = "celery"
    settings_class = CelerySettings

    def __init__(self) -> None:
        super().__init__()
        self.app: Celery | None = None
        self.results: Celery | None = None
        self.task_name = DEFAULT_TASK_NAME
        self.queue: str | None = None
        self.options: dict[str, Any] = {}
        self.has_result_backend = False
        # Cancels that arrive together (a failing sibling cancels many runs) share one revoke
        # broadcast and one wait for the workers' answers.
        self._revoking: list[str] | None = None
        self._revoke_sent: asyncio.Future[set[str]] | None = None

    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        settings = self.configured(CelerySettings, environment_name, config)
        where = config_location(environment_name, self.name)
        app = settings.app
        _check_connection(settings, where)
        self.task_name = settings.task_name
        self.queue = settings.queue
        self.options = dict(settings.apply_async_options)
        if app is None:
            assert settings.broker_url is not None
            app, results = await self.call_blocking(
                _client_app, settings.broker_url, settings.result_backend
            )
        else:
            results = app
        self.app = app
        self.results = results
        self.has_result_backend = results is not None and await self.call_blocking(
            _has_result_backend, results
        )
        await self.call_blocking(_check_broker, app, where)

    def _app(self) -> Celery:
        if self.app is None:
            raise RuntimeError("the celery adapter was not started")
        return self.app

    async def submit(self, job: BackendJob) -> AsyncResult:
        app = self._app()
        options = dict(self.options)
        if self.queue is not None:
            options["queue"] = self.queue
        stale = self.results if self.has_result_backend and job.idempotency_key else None
        return await self.call_blocking(
            _send, app, self.task_name, job.payload, job.job_id, options, stale
        )

    async def cancel(self, job: BackendJob) -> bool:
        """Revoke the job and kill the pool process running it.

        ``True`` when a worker answered that it held the job and terminated it (a prefork,
        eventlet or gevent pool; a solo or threads pool cannot and answers with an error), or
        when the job had not started: workers that got the revoke drop it, and one that did not
        still cannot run it, because the callback server refuses to let a cancelled run be
        claimed. Otherwise ``False``: the worker sees the cancel in its next heartbeat answer.
        """
        if self._revoking is None or self._revoke_sent is None:
            self._revoking = []
            self._revoke_sent = asyncio.ensure_future(self._revoke_batch(self._revoking))
        self._revoking.append(job.job_id)
        terminated = await asyncio.shield(self._revoke_sent)
        if job.job_id in terminated:
            return True
        return not job.started

    async def _revoke_batch(self, job_ids: list[str]) -> set[str]:
        """Revoke every job id that joined ``job_ids`` during this turn of the loop."""
        await asyncio.sleep(0)  # the other cancels spawned together join the batch first
        self._revoking = None
        self._revoke_sent = None
        replies = await self.call_blocking(_revoke, self._app(), list(job_ids))
        return _terminated(replies)

    async def status(self, job: BackendJob) -> JobStatus:
        """Celery's view of the job; ``unknown`` without a result backend to ask."""
        if not self.has_result_backend or self.results is None:
            return JobStatus("unknown")
        state, detail = await self.call_blocking(_state, self.results, job.job_id)
        mapped = _STATES.get(state, "unknown")
        return JobStatus(mapped, detail)  # type: ignore[arg-type]


class CeleryExecutor(BackendExecutor):
    """The ``celery`` executor: runs go to Celery workers, results come back over HTTP."""

    adapter_class = CeleryAdapter


# -- blocking helpers, run on the adapter's threads ----------------------------------------------


def _has_result_backend(app: Celery) -> bool:
    from celery.backends.base import DisabledBackend  # type: ignore[import-untyped]

    return not isinstance(app.backend, DisabledBackend)


def _check_broker(app: Celery, where: str) -> None:
    """Fail the environment's start, not its first submit, when the broker is unreachable."""
    with app.connection_for_write() as connection:
        try:
            connection.ensure_connection(max_retries=2, interval_start=0.2, timeout=5)
        except Exception as error:
            raise ConnectionError(
                f"{where}: cannot reach the Celery broker at {connection.as_uri()}: "
                f"{type(error).__name__}: {error}. Start the broker, or fix broker_url (or the "
                "app's broker_url setting)"
            ) from error


def _send(
    app: Celery,
    task_name: str,
    payload: str,
    job_id: str,
    options: dict[str, Any],
    stale: Celery | None,
) -> AsyncResult:
    if stale is not None:
        # A job id reused through an idempotency key may still have the state of the job
        # that had it before; status polling would read that one's SUCCESS as this one's.
        stale.backend.forget(job_id)
    result = app.send_task(task_name, args=[payload], task_id=job_id, **options)
    # Results travel over the callback server; an async result backend (Redis) of a user's
    # app subscribed to this job's channel inside send_task and would stay subscribed for
    # good, since nobody waits on the result. Status polls read the stored state instead.
    remove = getattr(app.backend, "remove_pending_result", None)
    if remove is not None:
        remove(result)
    return result


def _revoke(app: Celery, job_ids: list[str]) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] | None = app.control.revoke(
        job_ids,
        terminate=True,
        signal=TERMINATE_SIGNAL,
        reply=True,
        timeout=REVOKE_REPLY_SECONDS,
    )
    return replies or []


def _terminated(replies: list[dict[str, Any]]) -> set[str]:
    """The job ids some worker answered ``terminate: <id>, <id>`` for (it held those jobs)."""
    terminated: set[str] = set()
    for reply in replies:
        for answer in reply.values():
            text = answer.get("ok", "") if isinstance(answer, dict) else ""
            if isinstance(text, str) and text.startswith("terminate:"):
                terminated.update(part.strip() for part in text.split(":", 1)[1].split(","))
    return terminated


def _state(app: Celery, job_id: str) -> tuple[str, str]:
    result = app.AsyncResult(job_id)
    state = str(result.state)
    detail = ""
    if state in ("FAILURE", "REVOKED", "REJECTED"):
        info = result.info
        if isinstance(info, BaseException):
            detail = f"{type(info).__name__}: {info}"
        elif info:
            detail = str(info)
    return state, f"Celery state {state}" + (f", {detail}" if detail else "")


# -- configuration -------------------------------------------------------------------------------


def _check_connection(settings: CelerySettings, where: str) -> None:
    """``app``, or ``broker_url`` (with ``result_backend``): exactly one way to the broker."""
    if settings.app is not None:
        if settings.broker_url is not None or settings.result_backend is not None:
            raise InvalidOptionError(
                f"{where}: give either app or broker_url/result_backend, not both: the app "
                "already names its broker and result backend"
            )
        return
    if settings.broker_url is None:
        raise InvalidOptionError(
            f"{where}: no broker to send tasks through. Set broker_url (for example "
            "'redis://127.0.0.1:6379/1' or 'amqp://guest:guest@127.0.0.1:5672//'), optionally "
            "with result_backend, or pass your Celery app as app"
        )
