"""What every part of the conformance suite shares: the fixtures that configure the environment
under test, the hooks a plugin implements, and helpers that run weaves against it.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

import wove
from wove._config import current_config, reset_config
from wove._delivery import dispatch_loop
from wove._environments import reset_environments, resolve_environment
from wove._errors import WoveError
from wove._executor import Executor
from wove._security import Security

__all__ = ["ConformanceBase", "require_remote", "stop_environments"]

T = TypeVar("T")


class ConformanceBase:
    """Fixtures, plugin hooks and helpers; the tests live in the subclasses."""

    #: The name the environment under test is configured under.
    environment_name: ClassVar[str] = "conformance"
    #: Every weave the suite runs sets this ``delivery_timeout``, so a run that never reports
    #: fails with :class:`wove.DeliveryTimeoutError` instead of hanging the test session.
    hang_guard_seconds: ClassVar[float] = 30.0
    #: Whether cancelling a *sync* task really stops it on the worker. Python cannot interrupt
    #: a thread, so a worker that runs sync callables in threads can only report the run
    #: cancelled and discard its result; an executor that stops the process or job running the
    #: task (a killed worker, a deleted Kubernetes Job, ``scancel``) can do better. The suite
    #: holds every out-of-process executor to the strict rule unless it sets this to ``False``,
    #: which documents the limit. Async tasks must always stop.
    interrupts_sync_tasks: ClassVar[bool] = True
    #: How many runs ``test_many_concurrent_runs_succeed`` starts at once. Backends that start
    #: a process or a job per run (batch schedulers, one-process-per-job queues) may lower it
    #: to what one test machine can start within :attr:`hang_guard_seconds`.
    concurrent_runs: ClassVar[int] = 200

    # -- what a plugin provides ---------------------------------------------------------------
    @pytest.fixture
    def environment(self) -> Mapping[str, Any]:
        """The environment definition under test; every subclass must override this fixture."""
        pytest.fail(
            f"{type(self).__name__} subclasses ExecutorConformance but defines no `environment` "
            "fixture. Add one that returns the environment definition, e.g.\n\n"
            "    @pytest.fixture\n"
            "    def environment(self):\n"
            '        return {"executor": "stdio", "executor_config": {"processes": 2}}',
            pytrace=False,
        )

    @pytest.fixture
    def shared_tmp_path(self, tmp_path: Path) -> Path:
        """A directory the test process and every worker can read and write.

        Override it when workers run on another machine and share a mounted directory.
        """
        return tmp_path

    def send_raw(self, environment_name: str, line: bytes) -> None:
        """Push one raw record into the environment's transport, exactly as given.

        ``line`` is a JSON-lines record as :class:`wove._security.LineCodec` writes it
        (``<signature header>\\t<frame>\\n``, or ``<frame>\\n`` unsigned); a transport without
        lines splits it at the tab into the signature and the body it carries. Every call must
        reach the *same* worker, so that a replayed record meets the replay cache of the worker
        that saw the original. The suite calls this only after the environment ran a weave.

        The default awaits :meth:`asend_raw` on the dispatch loop (where executors live) if the
        plugin overrides it, and fails the test otherwise.
        """
        if type(self).asend_raw is not ConformanceBase.asend_raw:
            self.run_on_dispatch_loop(self.asend_raw(environment_name, line))
            return
        pytest.fail(
            f"{type(self).__name__} must implement send_raw(environment_name, line) or "
            "async asend_raw(environment_name, line) so the conformance suite can push forged "
            "and replayed frames into the executor's transport: write `line` to one worker "
            "(always the same one) exactly as given. self.executor_of(environment_name) returns "
            "the started executor.",
            pytrace=False,
        )

    async def asend_raw(self, environment_name: str, line: bytes) -> None:
        """The async form of :meth:`send_raw`, awaited on the dispatch loop; override either."""
        raise NotImplementedError

    def security_of(self, environment_name: str) -> Security | None:
        """The :class:`wove._security.Security` that the worker :meth:`send_raw` reaches checks
        frames with, or ``None`` when its channel is deliberately unsigned.

        Override it to enable the replay test and the forgeries that need the real key.

        Raises:
            NotImplementedError: the plugin does not expose its security (the default).
        """
        raise NotImplementedError

    # -- helpers for plugins and tests --------------------------------------------------------
    def executor_of(self, environment_name: str) -> Executor:
        """The executor instance behind ``environment_name`` in the configuration in force."""
        return resolve_environment(current_config(), environment_name).executor

    def run_on_dispatch_loop(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coroutine`` on the loop that out-of-process executors live on; return its
        result."""
        return dispatch_loop.run(coroutine).result(timeout)

    def weave(self, **options: Any) -> wove.WeaveBlock:
        """``wove.weave()`` routed to the environment under test, with the hang guard set."""
        options.setdefault("environment", self.environment_name)
        options.setdefault("delivery_timeout", self.hang_guard_seconds)
        return wove.weave(**options)

    # -- fixtures -----------------------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def conformance_environment(
        self, environment: Mapping[str, Any], shared_tmp_path: Path
    ) -> Iterator[str]:
        """Configure the environment under test; afterwards release blocked task bodies, stop
        the executor and reset the configuration and every resolved environment."""
        reset_config()
        reset_environments()
        name = self.environment_name
        wove.config(environments={name: dict(environment)})
        try:
            yield name
        finally:
            release_path(shared_tmp_path).touch()
            self._stop_environment(name)
            reset_config()
            reset_environments()

    @pytest.fixture
    def runs_in_process(self, conformance_environment: str) -> bool:
        """Whether the executor under test runs tasks in the test process."""
        return self.executor_of(conformance_environment).runs_in_process

    @pytest.fixture
    def release_file(self, conformance_environment: str, shared_tmp_path: Path) -> Path:
        """A file that blocked task bodies wait for; it is created when the test ends."""
        return release_path(shared_tmp_path)

    # -- internals ----------------------------------------------------------------------------
    def run_on_worker(self, body: Callable[[], T]) -> T:
        """Run ``body`` as one task in the environment and return its result."""
        with self.weave() as w:

            @w.do
            def on_worker() -> T:
                return body()

        result: T = w.result.on_worker
        return result

    def let_workers_run(self, seconds: float, release: Path | None = None) -> None:
        """Run a task that waits ``seconds`` on a worker, creating ``release`` half-way.

        It gives whatever else runs on the workers time to act; the waiting happens in the task
        body, never in the test process.
        """
        release_at = None if release is None else str(release)

        def pause() -> int:
            time.sleep(seconds / 2)
            if release_at is not None:
                open(release_at, "a").close()
            time.sleep(seconds / 2)
            return os.getpid()

        self.run_on_worker(pause)

    def assert_environment_works(self) -> None:
        """Run a small mapped task in the environment and check its results."""
        with self.weave() as w:

            @w.do([1, 2, 3])
            def probe(item: int) -> int:
                return item * 2

        assert w.result.probe == [2, 4, 6]

    def security(self, environment_name: str) -> tuple[Security | None, bool]:
        """The plugin's answer to :meth:`security_of`, and whether it gave one."""
        try:
            return self.security_of(environment_name), True
        except NotImplementedError:
            return None, False

    def _stop_environment(self, name: str) -> None:
        stop_environments(name, timeout=self.hang_guard_seconds)


def stop_environments(*names: str, timeout: float = 30.0) -> None:
    """Stop the executors of the named environments in the configuration in force, and wait,
    so no worker connection, client or callback server outlives a test.

    A start runs on the dispatch loop, shared by every weave that needs the environment, and can
    outlive a weave that was interrupted while it waited, so a start still in flight is waited
    out first. Names that are not configured
    (a configuration the test meant to be refused) and environments never started are skipped.
    """
    for name in names:
        try:
            resolved = resolve_environment(current_config(), name)
        except WoveError:
            continue
        dispatcher = resolved.dispatcher
        if dispatcher is None:
            continue
        starting = getattr(resolved, "_starting", None)
        if isinstance(starting, concurrent.futures.Future):
            concurrent.futures.wait([starting], timeout=timeout)
        resolved.started = False  # stopped here, so resetting the environments need not
        try:
            dispatch_loop.run(dispatcher.stop()).result(timeout)
        except concurrent.futures.TimeoutError:
            pytest.fail(
                f"the executor of environment {name!r} did not stop within {timeout:g}s",
                pytrace=False,
            )


def release_path(shared: Path) -> Path:
    """The file blocked task bodies of one test wait for."""
    return shared / "conformance.release"


def require_remote(runs_in_process: bool, feature: str) -> None:
    """Fail a remote-only test run against an in-process executor: wrong base class."""
    if runs_in_process:
        pytest.fail(
            f"{feature} applies only to executors whose tasks leave the process, but this "
            "executor runs tasks in process: subclass ExecutorConformance instead of "
            "RemoteExecutorConformance",
            pytrace=False,
        )
