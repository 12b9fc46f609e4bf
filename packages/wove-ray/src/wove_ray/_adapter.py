"""The Ray adapter: each run becomes one Ray task calling :func:`wove_ray.worker.run_payload`.

Results come back through the callback server, not Ray's object store; Ray is asked only to
run, cancel and describe tasks. This is the only module of the package that imports ``ray``.

**The driver connection is process-global.** ``ray.init`` connects the whole process to one
cluster, so :class:`_Driver` (one per process) makes that connection the first time a ``ray``
environment starts and shares it with every other one. A connection the application made
itself (``ray.init`` before the weave) is reused as it is and never shut down. Every call into
Ray blocks, so each one goes through :meth:`~wove.backends.BackendAdapter.call_blocking`, and
all of them hold the driver's lock, so a reconnect never runs beside a submission.

**Reconnecting.** A driver whose cluster went away does not notice: tasks submitted to it wait
forever, and any call that reaches the *new* cluster's GCS through the old connection aborts the
whole process (Ray 2.60: ``Check failed ... WrongClusterID``). So before Ray is used, at most
once every :data:`VERIFY_INTERVAL` seconds, the driver checks from outside: a TCP connect to the
GCS address, then the cluster id the GCS answers to a fresh GCS client. A refused connect makes
the submission fail with a clear ``ConnectionError`` (the connection is kept: the GCS may come
back with the same cluster id under GCS fault tolerance); a different cluster id means the head
was restarted, and a connection Wove made is replaced (``ray.shutdown()`` then ``ray.init()``).
Tasks of the old cluster are reported ``missing``, so their runs are orphaned with that reason.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Annotated, Any, Final

import ray
from ray.exceptions import (
    GetTimeoutError,
    ObjectLostError,
    RayError,
    RayTaskError,
    TaskCancelledError,
    WorkerCrashedError,
)

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
from wove.worker import NOT_CLAIMED

from .worker import run_payload

__all__ = [
    "RAY_CONFIG_KEYS",
    "REMOTE_OPTIONS",
    "VERIFY_INTERVAL",
    "RayAdapter",
    "RayExecutor",
    "RayHandle",
    "RaySettings",
]

logger = logging.getLogger("wove_ray")

#: ``remote_options`` keys passed on to ``ray.remote(...).options()``. The task's ``name`` is
#: Wove's (the job id); ``num_returns`` and ``retry_exceptions`` would change what the task
#: returns or when Ray reruns it, which only Wove decides.
REMOTE_OPTIONS: Final = frozenset(
    {
        "accelerator_type",
        "label_selector",
        "max_calls",
        "max_retries",
        "memory",
        "num_cpus",
        "num_gpus",
        "resources",
        "runtime_env",
        "scheduling_strategy",
    }
)
#: Ray reruns a task whose worker died up to ``max_retries`` times (3 by default). Off: the
#: rerun's claim would be refused by the callback server anyway once the run had started, and
#: Wove's own ``retries`` and ``delivery_orphan_policy`` decide what happens to a lost run.
DEFAULT_REMOTE_OPTIONS: Final[Mapping[str, Any]] = {"max_retries": 0}


class RaySettings(BackendSettings, kw_only=True):
    """The ``executor_config`` of a ``ray`` environment: the adapter's own keys, and the ones
    every backend takes."""

    address: Annotated[
        str | None,
        setting(
            "the cluster's GCS address (`host:6379`) or `auto` (the cluster started on this "
            "machine); may be left out when the application has called `ray.init` itself",
            expect="the head's GCS address as a string, such as '127.0.0.1:6379', or 'auto'",
            pattern=r"\S",
        ),
    ] = None
    namespace: Annotated[
        str | None,
        setting(
            "the Ray namespace of the connection Wove makes",
            default="Ray's (an anonymous one)",
            min_length=1,
        ),
    ] = None
    remote_options: Annotated[
        Mapping[str, Any],
        setting(
            "passed to `ray.remote(...).options()` for every task (Ray checks the values): "
            + ", ".join(f"`{name}`" for name in sorted(REMOTE_OPTIONS))
            + "; `max_retries` is 0 unless set",
            expect="a dict of ray.remote options such as {'num_cpus': 1, 'max_retries': 0}",
            keys=REMOTE_OPTIONS,
        ),
    ] = {}
    cancel_force: Annotated[
        bool,
        setting(
            "whether cancelling a running task kills its Ray worker (else the task notices the "
            "cancel at its next heartbeat)",
            expect="True (kill the Ray worker of a cancelled running task) or False (let the "
            "task notice the cancel)",
        ),
    ] = True


#: ``executor_config`` keys of the adapter, beyond the ones every backend takes.
RAY_CONFIG_KEYS: Final = setting_keys(RaySettings) - BACKEND_CONFIG_KEYS
#: Seconds between two checks that the cluster the driver is connected to is still the one at
#: its address; a restart is noticed by the first submission or status poll after that.
VERIFY_INTERVAL: Final = 1.0
#: Seconds a TCP connect to the GCS may take before the cluster counts as unreachable.
PROBE_TIMEOUT: Final = 2.0


@dataclasses.dataclass(frozen=True)
class RayHandle:
    """What :meth:`RayAdapter.submit` returns: the task's ``ObjectRef``, its Ray task name,
    and which connection (``generation``) submitted it."""

    ref: Any
    name: str
    generation: int


class _Driver:
    """This process's one connection to a Ray cluster, shared by every ``ray`` environment."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.owned = False  # Wove called ray.init (else the application did, or nobody yet)
        self.address: str | None = None  # as configured by the environment that connected
        self.namespace: str | None = None
        self.gcs_address = ""
        self.cluster_id: str | None = None
        self.identity: tuple[str, str, str] | None = None  # of the connection, see _identity
        self.generation = 0
        self.verified_at = 0.0

    # Every method runs on an adapter thread (call_blocking) and holds the lock.
    def attach(self, address: str | None, namespace: str | None, where: str) -> None:
        with self.lock:
            if ray.is_initialized():
                if _identity() != self.identity:
                    self._adopt()  # the application's connection, not one Wove made
                self._check_compatible(address, namespace, where)
            else:
                if address is None:
                    raise InvalidOptionError(
                        f"{where}: no Ray cluster to submit to; set address='127.0.0.1:6379' "
                        "(the head's GCS address, as in `ray start --head --port=6379`) or "
                        "address='auto' (the cluster started on this machine), or call "
                        "ray.init(...) in your application before the weave"
                    )
                self._connect(address, namespace, where)

    def current(self, where: str) -> int:
        """The generation to submit under, after checking the cluster is still the same one."""
        with self.lock:
            if not ray.is_initialized():
                raise ConnectionError(
                    f"{where}: Ray was shut down in this process (ray.shutdown()) while a ray "
                    "environment used it; stop the environment first, or call ray.init() again"
                )
            if _identity() != self.identity:
                self._adopt()  # the application replaced the connection
            if time.monotonic() - self.verified_at < VERIFY_INTERVAL:
                return self.generation
            if not _reachable(self.gcs_address):
                raise ConnectionError(
                    f"{where}: cannot reach the Ray cluster's GCS at {self.gcs_address} (the "
                    "head is down or restarting); the connection is kept and checked again "
                    "before the next submission"
                )
            cluster_id = _cluster_id(self.gcs_address)
            if None not in (cluster_id, self.cluster_id) and cluster_id != self.cluster_id:
                assert cluster_id is not None
                self._replace(where, cluster_id)
            self.verified_at = time.monotonic()
            return self.generation

    # -- helpers, called with the lock held -----------------------------------------------------
    def _connect(self, address: str, namespace: str | None, where: str) -> None:
        # ray.init waits a minute or more for a GCS that is not there; a refused connect is
        # reported at once instead.
        if address != "auto" and not _reachable(address):
            raise ConnectionError(
                f"{where}: cannot reach the Ray cluster at {address!r} (nothing accepts "
                "connections there); start it (`ray start --head --port=...`) or correct address"
            )
        try:
            ray.init(
                address=address,
                namespace=namespace,
                # Task output stays in the workers' logs; results come back by callback.
                log_to_driver=False,
                # Quiet: ray.init warns on every call from a thread it cannot install a
                # SIGTERM handler in, and the adapter always calls it from one.
                logging_level=logging.ERROR,
            )
        except Exception as error:
            raise ConnectionError(
                f"{where}: cannot connect to the Ray cluster at {address!r} "
                f"({type(error).__name__}: {str(error).strip().splitlines()[-1:]}); start it "
                "(`ray start --head --port=...`) or correct address"
            ) from error
        self.owned = True
        self.address, self.namespace = address, namespace
        self._identify()

    def _adopt(self) -> None:
        """Reuse the connection the application made; it is never shut down here."""
        self.owned = False
        self.address = None
        self.namespace = ray.get_runtime_context().namespace
        self._identify()

    def _identify(self) -> None:
        self.identity = _identity()
        self.gcs_address = ray.get_runtime_context().gcs_address
        self.cluster_id = _cluster_id(self.gcs_address)
        self.generation += 1
        self.verified_at = time.monotonic()

    def _check_compatible(self, address: str | None, namespace: str | None, where: str) -> None:
        connected = self.gcs_address
        if address is not None and address != "auto" and address not in (connected, self.address):
            raise InvalidOptionError(
                f"{where}: address {address!r} differs from the Ray cluster this process is "
                f"already connected to ({connected}); Ray connects a process to one cluster, "
                "so every ray environment of a process must name the same address"
            )
        if namespace is not None and namespace != self.namespace:
            raise InvalidOptionError(
                f"{where}: namespace {namespace!r} differs from the namespace this process's "
                f"Ray connection uses ({self.namespace!r}); Ray has one namespace per "
                "connection, so every ray environment of a process must name the same one"
            )

    def _replace(self, where: str, cluster_id: str) -> None:
        if not self.owned:
            raise ConnectionError(
                f"{where}: the Ray cluster at {self.gcs_address} was restarted since your "
                "application called ray.init(); Wove does not replace a connection it did not "
                "make: call ray.shutdown() and ray.init() again"
            )
        assert self.address is not None
        logger.warning(
            "the Ray cluster at %s was restarted (cluster id %s, was %s); reconnecting",
            self.gcs_address,
            cluster_id,
            self.cluster_id,
        )
        ray.shutdown()
        self._connect(self.address, self.namespace, where)


_DRIVER: Final = _Driver()
_REMOTE: list[Any] = []  # ray.remote(run_payload), made once


def _remote_function() -> Any:
    if not _REMOTE:
        _REMOTE.append(ray.remote(run_payload))
    return _REMOTE[0]


def _identity() -> tuple[str, str, str]:
    """What tells one driver connection from another: a new ``ray.init`` gets a new job id,
    and a restarted cluster new node ids."""
    context = ray.get_runtime_context()
    return context.gcs_address, context.get_node_id(), context.get_job_id()


def _reachable(gcs_address: str) -> bool:
    host, _, port = gcs_address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT):
            return True
    except (OSError, ValueError):
        return False


def _cluster_id(gcs_address: str) -> str | None:
    """The id of the cluster whose GCS answers at ``gcs_address``, from a fresh GCS client.

    ``ray._raylet.GcsClient`` is Ray's internal client (its autoscaler and Serve use it the
    same way); when a Ray release changes it, restarts are noticed only as an unreachable GCS.
    """
    try:
        from ray import _raylet

        client = _raylet.GcsClient(address=gcs_address)  # type: ignore[attr-defined]
        return str(client.cluster_id.hex())
    except Exception:
        logger.debug("could not read the cluster id at %s", gcs_address, exc_info=True)
        return None


class RayAdapter(BackendAdapter):
    """Submit, cancel and poll Wove runs as Ray tasks; see the module docstring."""

    name = "ray"
    settings_class = RaySettings
    #: Ray passes the payload through its object store; 1 MiB inline is fine, larger payloads
    #: are fetched from the callback server like on every backend.

    def __init__(self) -> None:
        super().__init__()
        self._options: dict[str, Any] = dict(DEFAULT_REMOTE_OPTIONS)
        self._force = True
        self._where = "executor 'ray'"

    # -- the BackendAdapter contract -----------------------------------------------------------
    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        settings = self.configured(RaySettings, environment_name, config)
        where = self._where = config_location(environment_name, self.name)
        address, namespace = settings.address, settings.namespace
        if address is not None and address.startswith("ray://"):
            raise InvalidOptionError(
                f"{where}: address {address!r} is a Ray Client address, which the ray executor "
                "does not support; give the head's GCS address instead ('host:6379'), from a "
                "machine that can join the cluster's network"
            )
        self._force = settings.cancel_force
        self._options = _remote_options(settings.remote_options, where)
        await self.call_blocking(_DRIVER.attach, address, namespace, where)

    async def submit(self, job: BackendJob) -> RayHandle:
        return await self.call_blocking(self._submit, job.job_id, job.payload)

    async def cancel(self, job: BackendJob) -> bool:
        handle: RayHandle = job.handle
        return await self.call_blocking(self._cancel, handle, job.started)

    async def status(self, job: BackendJob) -> JobStatus:
        handle: RayHandle = job.handle
        return await self.call_blocking(self._status, handle)

    async def close(self) -> None:
        # The Ray connection stays for the process (Ray closes it at exit): reconnecting
        # would start new Ray workers for the next environment.
        await super().close()

    # -- blocking calls, run on the adapter's threads ------------------------------------------
    def _submit(self, job_id: str, payload: str) -> RayHandle:
        with _DRIVER.lock:
            generation = _DRIVER.current(self._where)
            ref = _remote_function().options(**self._options, name=job_id).remote(payload)
            return RayHandle(ref=ref, name=job_id, generation=generation)

    def _cancel(self, handle: RayHandle, started: bool) -> bool:
        with _DRIVER.lock:
            if handle.generation != _DRIVER.generation:
                return True  # its cluster is gone, and the task with it
            ready, _ = ray.wait([handle.ref], timeout=0, fetch_local=False)
            if ready:
                return False  # it ended; its outcome was reported or the next poll says how
            try:
                ray.cancel(handle.ref, force=self._force, recursive=True)
            except (RayError, ValueError, TypeError):
                logger.debug("ray.cancel of task %r failed", handle.name, exc_info=True)
                return False
            # Forced: a running task's worker is killed. Otherwise Ray interrupts the task's
            # thread, which Wove's runtime does not run the task on, so a started run is left
            # to see the cancel flag at its next heartbeat; an unstarted one never runs.
            return self._force or not started

    def _status(self, handle: RayHandle) -> JobStatus:
        with _DRIVER.lock:
            _DRIVER.current(self._where)
            if handle.generation != _DRIVER.generation:
                return JobStatus(
                    "missing",
                    f"the Ray cluster at {_DRIVER.gcs_address} was restarted, and task "
                    f"{handle.name!r} was lost with it",
                )
            ready, _ = ray.wait([handle.ref], timeout=0, fetch_local=False)
            if not ready:
                # Ray cannot tell a queued task from a running one without its state API
                # (the dashboard); "pending" covers both, and heartbeats tell the rest.
                return JobStatus("pending")
            try:
                note = ray.get(handle.ref, timeout=0)
            except TaskCancelledError:
                return JobStatus("cancelled", "TaskCancelledError")
            except WorkerCrashedError as error:
                return JobStatus("failed", f"WorkerCrashedError: {_last_line(error)}")
            except RayTaskError as error:
                cause = error.cause if isinstance(error.cause, BaseException) else error
                return JobStatus("failed", f"{type(cause).__name__}: {_last_line(cause)}")
            except ObjectLostError as error:
                return JobStatus("missing", f"{type(error).__name__}: {_last_line(error)}")
            except GetTimeoutError:
                return JobStatus("unknown")
            except RayError as error:
                return JobStatus("failed", f"{type(error).__name__}: {_last_line(error)}")
            if note == NOT_CLAIMED:
                return JobStatus("failed", "its worker found the run claimed by another copy")
            return JobStatus("succeeded", str(note))


def _last_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _remote_options(value: Mapping[str, Any], where: str) -> dict[str, Any]:
    options = {**DEFAULT_REMOTE_OPTIONS, **value}
    try:
        _remote_function().options(**options)  # Ray checks names, types and ranges here
    except (TypeError, ValueError) as error:
        raise InvalidOptionError(f"{where}: remote_options refused by Ray: {error}") from None
    return options


class RayExecutor(BackendExecutor):
    """The ``ray`` executor: every run is a Ray task calling ``wove_ray.worker.run_payload``.

    Its ``executor_config`` keys are declared by :class:`RaySettings`.
    """

    adapter_class = RayAdapter
