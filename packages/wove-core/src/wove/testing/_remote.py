"""Conformance tests that only mean something across a process boundary: delivery deadlines,
heartbeats, workers that die, the cap on runs in flight, how often a run ends, and frames
pushed into the transport by someone without the key. They run only for out-of-process
executors, through :class:`RemoteExecutorConformance`.

The checks, and what each asserts:

``test_delivery_timeout_fails_a_blocked_run``
    A run that outlives ``delivery_timeout`` fails the task with
    :class:`wove.DeliveryTimeoutError`, and the environment still works afterwards.
``test_heartbeats_keep_long_runs_alive``
    Sync and async runs that take ten heartbeat intervals succeed: the worker heartbeats while
    a sync body blocks its thread.
``test_worker_death_fails_task_with_orphaned_error``
    A worker process that exits mid-run fails the task with
    :class:`wove.DeliveryOrphanedError` (no hang), and the environment recovers.
``test_requeue_resubmits_an_orphaned_run_once``
    With ``delivery_orphan_policy="requeue"`` a run whose worker died runs once more and its
    second attempt's result arrives.
``test_delivery_max_in_flight_caps_runs``
    No more than ``delivery_max_in_flight`` runs execute at once.
``test_each_run_reaches_exactly_one_terminal_state``
    Every ``run_task`` the executor is sent (sync, async, failing, mapped, a result over a
    megabyte) comes back from :meth:`~wove.plugins.Executor.recv` with exactly one
    ``task_result``, ``task_error`` or ``task_cancelled``: none is dropped, none is
    delivered twice.
``test_forged_frames_never_run``
    Frames signed with a wrong secret or key id, unsigned, tampered with or expired, pushed
    into the transport with :meth:`send_raw`, never run.
``test_replayed_frame_runs_once``
    A correctly signed frame sent twice runs once (the replay cache).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
from typing import Any, Final

import pytest

import wove
from wove._config import current_config
from wove._environments import resolve_environment
from wove._executor import Executor
from wove._frames import (
    RunTask,
    TaskCancelled,
    TaskError,
    TaskResult,
    encode_json,
    new_run_id,
)
from wove._security import LineCodec, Security
from wove._serializer import dumps

from ._base import ConformanceBase, require_remote
from ._bodies import append_line, attempt_counter, blocker, max_overlap, waiter

__all__ = ["RemoteConformance"]

_REASON = "the executor conformance suite"
#: A result past every default line, stream and message buffer (64 KiB pipes and readers).
_LARGE_RESULT_BYTES: Final = (1 << 20) + 1
#: The events that end a run, by their ``type`` tag on the wire.
_TERMINAL_EVENTS: Final[dict[type[Any], str]] = {
    TaskResult: "task_result",
    TaskError: "task_error",
    TaskCancelled: "task_cancelled",
}


class RemoteConformance(ConformanceBase):
    def test_delivery_timeout_fails_a_blocked_run(
        self, runs_in_process: bool, release_file: Path
    ) -> None:
        require_remote(runs_in_process, "delivery_timeout")
        block = blocker(release_file)

        with (
            pytest.raises(wove.DeliveryTimeoutError, match="delivery_timeout") as caught,
            self.weave() as w,
        ):

            @w.do(delivery_timeout=0.5)
            def stuck() -> bool:
                return block()

        assert w.result.exception is caught.value
        self.assert_environment_works()

    def test_heartbeats_keep_long_runs_alive(self, runs_in_process: bool) -> None:
        require_remote(runs_in_process, "delivery_heartbeat_seconds")

        # Three silent intervals (0.3 s) orphan a run; these run for a second.
        with self.weave(delivery_heartbeat_seconds=0.1) as w:

            @w.do
            def slow() -> str:
                time.sleep(1.0)  # blocks its thread: heartbeats must come from elsewhere
                return "still here"

            @w.do
            async def aslow() -> str:
                await asyncio.sleep(1.0)
                return "still here too"

        assert w.result.slow == "still here"
        assert w.result.aslow == "still here too"

    def test_worker_death_fails_task_with_orphaned_error(self, runs_in_process: bool) -> None:
        require_remote(runs_in_process, "orphan detection")
        test_process = os.getpid()

        with (
            pytest.raises(wove.DeliveryOrphanedError) as caught,
            self.weave() as w,
        ):

            @w.do
            def dies() -> None:
                if os.getpid() == test_process:
                    raise RuntimeError(
                        "conformance: this executor says runs_in_process is False but ran "
                        "the task in the test process"
                    )
                os._exit(3)

        assert w.result.exception is caught.value
        self.assert_environment_works()

    def test_requeue_resubmits_an_orphaned_run_once(
        self, runs_in_process: bool, shared_tmp_path: Path
    ) -> None:
        require_remote(runs_in_process, "delivery_orphan_policy='requeue'")
        count = attempt_counter(shared_tmp_path / "requeue.attempts")
        test_process = os.getpid()

        with self.weave() as w:

            @w.do(delivery_orphan_policy="requeue")
            def survives() -> int:
                attempt = count()
                if attempt == 1 and os.getpid() != test_process:
                    os._exit(3)
                return attempt

        assert w.result.survives == 2

    def test_delivery_max_in_flight_caps_runs(
        self, runs_in_process: bool, shared_tmp_path: Path
    ) -> None:
        require_remote(runs_in_process, "delivery_max_in_flight")
        log = shared_tmp_path / "in-flight.log"
        append = append_line(log)

        with self.weave() as w:

            @w.do(range(6), delivery_max_in_flight=2)
            def item(index: int) -> int:
                append(f"start {index}")
                time.sleep(0.1)
                append(f"end {index}")
                return index

        assert w.result.item == list(range(6))
        lines = log.read_text().splitlines()
        assert max_overlap(lines) <= 2, f"more than 2 runs were in flight at once: {lines}"

    def test_each_run_reaches_exactly_one_terminal_state(self, runs_in_process: bool) -> None:
        require_remote(runs_in_process, "terminal events")
        journal = self._record_frames()
        size = _LARGE_RESULT_BYTES

        with self.weave(error_mode="return") as w:

            @w.do
            def returns() -> int:
                return 7

            @w.do
            async def areturns() -> str:
                await asyncio.sleep(0)
                return "async"

            @w.do
            def raises() -> None:
                raise ValueError("fails on purpose")

            @w.do(range(3))
            def mapped(item: int) -> int:
                return item * 3

            @w.do
            def large() -> bytes:
                return b"x" * size

        # A second terminal event may trail the first one the weave took; let it arrive.
        self.let_workers_run(0.6)
        problems = journal.problems()
        assert journal.tasks, "the executor was sent no run_task frame"
        assert not problems, "runs did not end exactly once:\n" + "\n".join(problems)
        assert w.result.returns == 7
        assert w.result.areturns == "async"
        assert isinstance(w.result.raises, ValueError)
        assert w.result.mapped == [0, 3, 6]
        assert w.result.large == b"x" * size

    def _record_frames(self) -> _FrameJournal:
        """Record what the executor under test is sent and hands back, from its next frame."""
        resolved = resolve_environment(current_config(), self.environment_name)
        journal = _FrameJournal()
        journal.attach(resolved.executor)
        if resolved.started:
            # The event pump may already wait in the executor's own recv(); the events of one
            # weave get it to call the recording one from then on.
            self.assert_environment_works()
            journal.clear()
        return journal

    def test_forged_frames_never_run(self, runs_in_process: bool, shared_tmp_path: Path) -> None:
        require_remote(runs_in_process, "frame signing")
        name = self.environment_name
        self.assert_environment_works()  # started, so send_raw has a worker to write to
        security, exposed = self.security(name)
        markers = shared_tmp_path / "forged"
        markers.mkdir()

        def body(label: str) -> bytes:
            return encode_json(_marker_frame(markers / label))

        def signed(signer: Security, label: str) -> bytes:
            signed_body = body(label)
            return signer.sign(signed_body) + b"\t" + signed_body + b"\n"

        wrong_secret = secrets.token_bytes(32)
        # Without the real key id, forge with both ids Security uses unless told otherwise.
        key_ids = [security.key_id] if security is not None else ["default", "ephemeral"]
        lines = {
            label: signed(Security(wrong_secret, key_id=key_id), label)
            for key_id in key_ids
            for label in [f"wrong-secret-{key_id}"]
        }
        lines["wrong-key-id"] = signed(Security(wrong_secret, key_id="forged-key"), "wrong-key-id")
        if security is not None or not exposed:
            lines["unsigned"] = body("unsigned") + b"\n"
        if security is not None:
            # The real key over another body; and the real key with a stale timestamp.
            harmless = encode_json(_marker_frame(markers / "never-sent"))
            lines["tampered"] = security.sign(harmless) + b"\t" + body("tampered") + b"\n"
            stale = time.time() - 10 * security.clock_skew_seconds - 60
            real_secret = bytes.fromhex(security.secret_hex)
            expired = Security(real_secret, key_id=security.key_id, clock=lambda: stale)
            lines["expired"] = signed(expired, "expired")

        for line in lines.values():
            self.send_raw(name, line)
        self.let_workers_run(0.6)

        ran = sorted(path.name for path in markers.iterdir())
        if not exposed and ran == ["unsigned"]:
            pytest.fail(
                "the worker ran an unsigned frame pushed into its transport; if that channel is "
                "deliberately unsigned, say so by returning None from security_of()",
                pytrace=False,
            )
        assert ran == [], f"forged frames were executed: {ran}"
        self.assert_environment_works()

    def test_replayed_frame_runs_once(self, runs_in_process: bool, shared_tmp_path: Path) -> None:
        require_remote(runs_in_process, "the replay cache")
        name = self.environment_name
        self.assert_environment_works()
        security, exposed = self.security(name)
        if not exposed:
            pytest.fail(
                f"{type(self).__name__} does not expose the security of its workers; implement "
                "security_of(environment_name) so the suite can check that replayed frames "
                "are refused",
                pytrace=False,
            )
        if security is None:
            return  # an unsigned loopback channel (security=None): there is nothing to replay

        counter = shared_tmp_path / "replayed.count"
        count = attempt_counter(counter)

        def replayed() -> int:
            return count()

        frame = RunTask(
            run_id=new_run_id("replayed"),
            task_id="replayed",
            callable=dumps(replayed, _REASON),
            args=dumps({}, _REASON),
        )
        line = LineCodec(security).encode(frame)
        self.send_raw(name, line)
        self.run_on_worker(waiter(counter))  # the correctly signed original runs once
        self.send_raw(name, line)
        self.let_workers_run(0.6)
        assert counter.stat().st_size == 1, "a replayed frame ran a second time"
        self.assert_environment_works()


def _marker_frame(marker: Path) -> RunTask:
    """A ``run_task`` frame whose callable creates ``marker``."""
    marker_at = str(marker)

    def forged() -> None:
        open(marker_at, "a").close()

    return RunTask(
        run_id=new_run_id("forged"),
        task_id="forged",
        callable=dumps(forged, _REASON),
        args=dumps({}, _REASON),
    )


class _FrameJournal:
    """The ``run_task`` frames an executor was sent and the terminal events it handed back.

    It wraps the executor's :meth:`~wove.plugins.Executor.send` and
    :meth:`~wove.plugins.Executor.recv` -- the contract every executor implements -- so it sees
    exactly what the dispatcher sees, before the dispatcher drops what arrives for a run that
    already ended.
    """

    def __init__(self) -> None:
        #: Run id -> task id of every ``run_task`` sent, in order.
        self.tasks: dict[str, str] = {}
        #: Run id -> the terminal events received for it, in order.
        self.terminals: dict[str, list[str]] = {}

    def attach(self, executor: Executor) -> None:
        send, recv = executor.send, executor.recv

        async def recording_send(frame: Any) -> None:
            if isinstance(frame, RunTask):
                self.tasks[frame.run_id] = frame.task_id
            await send(frame)

        async def recording_recv() -> Any:
            frame = await recv()
            event = _TERMINAL_EVENTS.get(type(frame))
            if event is not None:
                self.terminals.setdefault(frame.run_id, []).append(event)
            return frame

        executor.send = recording_send  # type: ignore[method-assign]
        executor.recv = recording_recv  # type: ignore[method-assign]

    def clear(self) -> None:
        self.tasks.clear()
        self.terminals.clear()

    def problems(self) -> list[str]:
        """One line per run that did not end exactly once."""
        found = []
        for run_id, task_id in self.tasks.items():
            ends = self.terminals.get(run_id, [])
            if not ends:
                found.append(
                    f"run {run_id!r} of task {task_id!r} never reached a terminal state: no "
                    "task_result, task_error or task_cancelled came back from recv()"
                )
            elif len(ends) > 1:
                found.append(
                    f"run {run_id!r} of task {task_id!r} reached {len(ends)} terminal states "
                    f"({', '.join(ends)}); each run must end exactly once"
                )
        return found
