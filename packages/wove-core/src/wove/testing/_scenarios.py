"""Scenarios every backend executor meets in production, run against the real backend through
hooks the plugin implements: a worker killed mid-task, the backend restarted between two weaves,
and a job cancelled by a failing sibling while it runs or while it still waits in the backend.

Each scenario is opt-in. A plugin implements the hooks a scenario names; a scenario whose hooks
are missing is not collected at all (it is not a skipped test: there is nothing the plugin
failed to provide, only a check it has not asked for). The hooks each scenario needs are listed
below and in :data:`SCENARIO_HOOKS`.

``test_worker_killed_mid_task_fails_the_weave_as_orphaned`` (:meth:`kill_worker`)
    A worker killed while it runs a task fails the weave with
    :class:`wove.DeliveryOrphanedError` naming the task; after :meth:`wait_for_worker` the
    environment runs new tasks through the same executor. :meth:`assert_killed_job` may check
    the backend's own view of the killed job.
``test_backend_restarted_between_weaves_reconnects`` (:meth:`restartable_backend`)
    A weave before and a weave after the backend restarts both succeed through one executor.
``test_running_job_cancelled_by_a_failing_sibling_stops`` (:meth:`assert_job_cancelled`)
    A running task whose in-process sibling fails is cancelled: the weave lists it, the
    backend's own view shows the job cancelled, and the body never finishes. The task is sync
    when the class keeps ``interrupts_sync_tasks`` true, else async.
``test_queued_job_cancelled_by_a_failing_sibling_never_runs`` (:attr:`queued_job_config`,
:meth:`is_job_queued`, :meth:`assert_job_cancelled`)
    A job held in the backend (not yet due, or waiting for a resource) when its sibling fails
    is cancelled there and never runs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar, Final

import pytest

import wove
from wove._config import reset_config
from wove._environments import reset_environments

from ._base import ConformanceBase

__all__ = ["SCENARIO_HOOKS", "BackendScenarios", "wait_until", "with_config"]

#: Each scenario test and the hooks (methods, or the ``queued_job_config`` attribute) a plugin's
#: class must provide for it to be collected.
SCENARIO_HOOKS: Final[Mapping[str, tuple[str, ...]]] = {
    "test_worker_killed_mid_task_fails_the_weave_as_orphaned": ("kill_worker",),
    "test_backend_restarted_between_weaves_reconnects": ("restartable_backend",),
    "test_running_job_cancelled_by_a_failing_sibling_stops": ("assert_job_cancelled",),
    "test_queued_job_cancelled_by_a_failing_sibling_never_runs": (
        "queued_job_config",
        "is_job_queued",
        "assert_job_cancelled",
    ),
}


def _provides(cls: type, hook: str) -> bool:
    """Whether ``cls`` supplies ``hook`` itself rather than the scenarios' placeholder."""
    if hook == "queued_job_config":
        return getattr(cls, hook) is not None
    return getattr(cls, hook) is not getattr(BackendScenarios, hook)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` every 50 ms until it is true; raise :class:`TimeoutError` naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout} s waiting for: {what}")
        time.sleep(0.05)


class BackendScenarios(ConformanceBase):
    """The scenarios; see the module docstring. Mixed into :class:`BackendExecutorConformance`."""

    #: What the weave's error must match when a worker is killed mid-task.
    killed_worker_message: ClassVar[str] = r"sent nothing .* probably killed"
    #: ``executor_config`` keys merged in for the running-job cancel scenario, e.g. a long
    #: ``worker_heartbeat_seconds`` so the job stops because the backend cancelled it.
    running_job_config: ClassVar[Mapping[str, Any]] = {}
    #: ``executor_config`` keys that keep a submitted job waiting in the backend (deferred,
    #: delayed, or asking for a resource no worker has); ``None`` leaves the queued scenario out.
    queued_job_config: ClassVar[Mapping[str, Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Collect a scenario only where the class provides every hook it needs."""
        super().__init_subclass__(**kwargs)
        for test, hooks in SCENARIO_HOOKS.items():
            if test in cls.__dict__:
                continue  # the class wrote its own version of this test
            enabled = all(_provides(cls, hook) for hook in hooks)
            # pytest collects only callables: None leaves the scenario out of this class.
            setattr(cls, test, getattr(BackendScenarios, test) if enabled else None)

    # -- hooks a plugin implements ------------------------------------------------------------
    def kill_worker(self, job_id: str, pid: int) -> None:
        """Kill the worker running job ``job_id``, whose task body runs in process ``pid``
        (SIGKILL, so it reports nothing; kill ``pid`` too if the backend runs tasks in a child,
        or the job's container). Enables the killed-worker scenario."""
        raise NotImplementedError

    def wait_for_worker(self) -> None:
        """Return once a worker runs tasks again after :meth:`kill_worker` (a supervisor's
        restart, or a new worker). By default it returns at once."""

    def assert_killed_job(self, job_id: str, error: BaseException) -> None:
        """Check the backend's own view of the job whose worker was killed, and the weave's
        ``error``. By default it checks nothing."""

    def restartable_backend(
        self,
    ) -> AbstractContextManager[tuple[Mapping[str, Any], Callable[[], None]]]:
        """A context manager (write it with :func:`contextlib.contextmanager`) that starts a
        backend (and a worker) of the test's own, or reuses one it may restart; yields an
        environment definition for it and a function that restarts the backend keeping its
        address and state; and stops what it started on exit. Enables the restart scenario."""
        raise NotImplementedError

    def is_job_queued(self, job_id: str) -> bool:
        """Whether the backend holds job ``job_id`` waiting, not yet running (under
        :attr:`queued_job_config`). Enables the queued-job cancel scenario."""
        raise NotImplementedError

    def assert_job_running(self, job_id: str) -> None:
        """Check the backend's own view of job ``job_id`` while it runs. By default it checks
        nothing."""

    def assert_job_queued(self, job_id: str) -> None:
        """Check the backend's own view of job ``job_id`` once :meth:`is_job_queued` holds.
        By default it checks nothing."""

    def assert_job_cancelled(self, job_id: str, *, queued: bool, pid: int | None) -> None:
        """Wait until the backend's own view shows job ``job_id`` cancelled (or forgotten) and
        check it; ``queued`` says whether the job was still waiting, ``pid`` is the process
        the running task's body ran in (``None`` for a queued job). Enables both cancel
        scenarios."""
        raise NotImplementedError

    # -- the scenarios ------------------------------------------------------------------------
    def test_worker_killed_mid_task_fails_the_weave_as_orphaned(
        self, shared_tmp_path: Path
    ) -> None:
        name = self.environment_name
        key = _unique("killed")
        started = shared_tmp_path / "started"
        never = shared_tmp_path / "never-created"
        guard = self.hang_guard_seconds

        with (  # noqa: PT012 - the weave raises when its block ends
            pytest.raises(wove.DeliveryOrphanedError, match=self.killed_worker_message) as caught,
            wove.weave(delivery_timeout=guard) as w,
        ):

            @w.do(environment=name, delivery_idempotency_key=key)
            def waits() -> str:
                with open(f"{started}.tmp", "w") as marker:
                    marker.write(str(os.getpid()))
                os.replace(f"{started}.tmp", started)  # whole, or not there at all
                while not never.exists():
                    time.sleep(0.05)
                return "released"

            @w.do
            def killer() -> None:
                wait_until(started.exists, guard, "the task started on the worker")
                self.kill_worker(key, int(started.read_text()))

        assert "waits" in str(w.result.exception)
        self.wait_for_worker()
        self.assert_killed_job(key, caught.value)
        # The restarted worker takes new runs, through the same executor.
        with self.weave() as again:

            @again.do
            def after() -> int:
                return 7

        assert again.result.after == 7

    def test_backend_restarted_between_weaves_reconnects(self) -> None:
        name = "restarted"
        with self.restartable_backend() as (environment, restart):
            self._configure_only({name: environment})
            try:
                with self.weave(environment=name) as first:

                    @first.do
                    def before() -> str:
                        return "before"

                assert first.result.before == "before"
                executor = self.executor_of(name)
                restart()

                with self.weave(environment=name) as second:

                    @second.do
                    def after() -> str:
                        return "after"

                assert second.result.after == "after"
                assert self.executor_of(name) is executor, "the restart replaced the executor"
            finally:
                self._stop_environment(name)

    def test_running_job_cancelled_by_a_failing_sibling_stops(
        self, environment: Mapping[str, Any], shared_tmp_path: Path
    ) -> None:
        if self.running_job_config:
            self._configure_with(environment, self.running_job_config)
        name = self.environment_name
        key = _unique("cancel-running")
        started = shared_tmp_path / "started"
        finished = shared_tmp_path / "finished"
        release = shared_tmp_path / "release-long-async"
        guard = self.hang_guard_seconds

        with (  # noqa: PT012 - the weave raises when its block ends
            pytest.raises(RuntimeError, match="sibling failed"),
            wove.weave(delivery_timeout=guard) as w,
        ):
            if self.interrupts_sync_tasks:

                @w.do(environment=name, delivery_idempotency_key=key)
                def long_sync() -> str:
                    with open(f"{started}.tmp", "w") as marker:
                        marker.write(str(os.getpid()))
                    os.replace(f"{started}.tmp", started)  # whole, or not there at all
                    while not release.exists():
                        time.sleep(0.05)
                    finished.touch()
                    return "not cancelled"

            else:

                @w.do(environment=name, delivery_idempotency_key=key)
                async def long_async() -> str:
                    with open(f"{started}.tmp", "w") as marker:  # noqa: ASYNC230 - a few bytes
                        marker.write(str(os.getpid()))
                    os.replace(f"{started}.tmp", started)  # whole, or not there at all
                    while not release.exists():  # noqa: ASYNC110 - a file, across processes
                        await asyncio.sleep(0.05)
                    finished.touch()
                    return "not cancelled"

            @w.do
            def fails() -> None:
                wait_until(started.exists, guard, "the task started on the worker")
                self.assert_job_running(key)
                raise RuntimeError("sibling failed on purpose")

        assert ("long_sync" if self.interrupts_sync_tasks else "long_async") in w.result.cancelled
        self.assert_job_cancelled(key, queued=False, pid=int(started.read_text()))
        release.touch()
        with self.weave() as probe:

            @probe.do
            def later() -> bool:
                time.sleep(0.3)  # the cancelled task would have seen the release file by now
                return True

        assert probe.result.later
        assert not finished.exists(), "the cancelled task kept running"

    def test_queued_job_cancelled_by_a_failing_sibling_never_runs(
        self, environment: Mapping[str, Any], shared_tmp_path: Path
    ) -> None:
        assert self.queued_job_config is not None  # collected only when it is set
        self._configure_with(environment, self.queued_job_config)
        name = self.environment_name
        key = _unique("cancel-queued")
        ran = shared_tmp_path / "ran"
        guard = self.hang_guard_seconds

        with (  # noqa: PT012 - the weave raises when its block ends
            pytest.raises(RuntimeError, match="sibling failed"),
            wove.weave(delivery_timeout=guard) as w,
        ):

            @w.do(environment=name, delivery_idempotency_key=key)
            def waiting() -> None:
                ran.touch()

            @w.do
            def fails() -> None:
                wait_until(lambda: self.is_job_queued(key), guard, "the job waits in the backend")
                self.assert_job_queued(key)
                raise RuntimeError("sibling failed on purpose")

        assert "waiting" in w.result.cancelled
        self.assert_job_cancelled(key, queued=True, pid=None)
        assert not ran.exists(), "the cancelled job ran"

    # -- internals ----------------------------------------------------------------------------
    def _configure_with(self, environment: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
        self._configure_only({self.environment_name: with_config(environment, overrides)})

    def _configure_only(self, environments: Mapping[str, Mapping[str, Any]]) -> None:
        """Stop the environment under test and configure ``environments`` in its place."""
        self._stop_environment(self.environment_name)
        reset_config()
        reset_environments()
        wove.config(environments={name: dict(value) for name, value in environments.items()})


def with_config(environment: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``environment`` with ``overrides`` merged into its ``executor_config``."""
    merged = dict(environment)
    merged["executor_config"] = {**environment.get("executor_config", {}), **overrides}
    return merged


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"
