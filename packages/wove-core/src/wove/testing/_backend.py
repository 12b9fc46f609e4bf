"""Conformance tests for backend executors (:class:`wove.backends.BackendExecutor`): the
callback server's promises, checked through the real backend.

The checks, and what each asserts (besides everything :class:`RemoteExecutorConformance`
checks):

``test_two_weaves_share_a_fixed_callback_port``
    Two environments with one fixed ``callback_port`` run weaves at the same time through one
    callback server bound to that port.
``test_forged_event_posted_to_the_callback_server_is_refused``
    An event posted without the secret (forged, unsigned, or mixed with a genuine one) is
    refused with 401 and delivers nothing; a genuine one is accepted.
``test_transient_callback_failures_are_retried``
    A callback post answered with 503 by a proxy is retried, and the run ends normally.
``test_payload_too_large_to_carry_is_fetched``
    A payload over ``max_inline_payload_bytes`` is fetched by the worker from the callback
    server, and the run succeeds.
``test_replayed_frame_runs_once``
    A payload pushed into the backend twice runs once: the callback server lets only the first
    worker claim a run.

The production scenarios (a killed worker, a restarted backend, a job cancelled by a failing
sibling) come from :class:`wove.testing._scenarios.BackendScenarios`, each enabled by a hook.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import wove
from wove._config import reset_config
from wove._environments import reset_environments
from wove._frames import Delivery, Frame, RunTask, TaskResult, TaskStarted, new_run_id
from wove._security import LineCodec, Security
from wove._serializer import dumps

from ._bodies import attempt_counter, waiter
from ._conformance import RemoteExecutorConformance
from ._scenarios import BackendScenarios, with_config

__all__ = ["BackendExecutorConformance", "FlakyProxy", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class FlakyProxy:
    """An HTTP proxy on 127.0.0.1 that answers the first ``failures`` event posts with 503 and
    forwards everything else to ``target`` -- a callback server behind a proxy that hiccups."""

    def __init__(self, target: str, failures: int) -> None:
        self.target = target.rstrip("/")
        self.failures_left = failures
        self.refused = 0
        self.forwarded = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="flaky-proxy", daemon=True)
        self._runner: Any = None

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        from aiohttp import ClientSession, web

        session: ClientSession | None = None

        async def forward(request: web.Request) -> web.StreamResponse:
            nonlocal session
            if request.method == "POST" and self.failures_left > 0:
                self.failures_left -= 1
                self.refused += 1
                return web.Response(status=503, text="proxy: upstream temporarily unavailable")
            if session is None:
                session = ClientSession()
            headers = {
                name: value
                for name, value in request.headers.items()
                if name.lower() not in ("host", "content-length", "transfer-encoding")
            }
            body = await request.read()
            target = self.target + request.path_qs
            async with session.request(
                request.method, target, headers=headers, data=body
            ) as upstream:
                answer = await upstream.read()
                self.forwarded += 1
                return web.Response(
                    status=upstream.status, body=answer, content_type=upstream.content_type
                )

        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", forward)

        async def close_session(_app: web.Application) -> None:
            if session is not None:
                await session.close()

        app.on_cleanup.append(close_session)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"


class BackendConformance(BackendScenarios):
    """The tests; see :class:`BackendExecutorConformance`."""

    def reconfigure(self, environment: Mapping[str, Any], **executor_config: Any) -> None:
        """Stop the environment under test and configure it again with ``executor_config``
        merged into its ``executor_config``."""
        self._configure_with(environment, executor_config)

    def test_two_weaves_share_a_fixed_callback_port(self, environment: Mapping[str, Any]) -> None:
        port = free_port()
        self._stop_environment(self.environment_name)
        reset_config()
        reset_environments()
        names = ("left", "right")
        shared_port = {"callback_port": port}
        wove.config(environments={name: with_config(environment, shared_port) for name in names})
        results: dict[str, list[int]] = {}
        errors: list[BaseException] = []

        def run(name: str, offset: int) -> None:
            try:
                with self.weave(environment=name) as w:

                    @w.do(range(4))
                    def shifted(item: int) -> int:
                        return item + offset

                results[name] = w.result.shifted
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)

        threads = [
            threading.Thread(target=run, args=(name, offset)) for offset, name in enumerate(names)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(self.hang_guard_seconds * 2)
            assert not errors, f"a weave failed: {errors!r}"
            assert results == {"left": [0, 1, 2, 3], "right": [1, 2, 3, 4]}
            servers = {id(self.executor_of(name).callback_server) for name in names}  # type: ignore[attr-defined]
            assert len(servers) == 1, "environments with one callback_port got two servers"
            bound = self.executor_of("left").callback_server.bound  # type: ignore[attr-defined]
            assert bound == ("127.0.0.1", port)
        finally:
            for name in names:
                self._stop_environment(name)
            reset_config()
            reset_environments()
            wove.config(environments={self.environment_name: dict(environment)})

    def test_forged_event_posted_to_the_callback_server_is_refused(self) -> None:
        name = self.environment_name
        self.assert_environment_works()
        executor: Any = self.executor_of(name)
        server = executor.callback_server
        security: Security = executor.security
        received: list[Frame] = []
        run_id = f"forged-{secrets.token_hex(4)}"

        def on_event(frame: Frame) -> None:
            received.append(frame)

        events_url = self.run_on_dispatch_loop(_register(server, run_id, on_event))
        forger = LineCodec(Security(secrets.token_bytes(32), key_id=security.key_id))
        genuine = LineCodec(security)
        try:
            forged = forger.encode(TaskResult(run_id=run_id, result=b"forged"))
            assert _post(events_url, forged) == 401
            unsigned = LineCodec(None).encode(TaskResult(run_id=run_id, result=b"forged"))
            assert _post(events_url, unsigned) == 401
            # One good line and one forged line: the whole request is refused.
            mixed = genuine.encode(TaskStarted(run_id=run_id)) + forged
            assert _post(events_url, mixed) == 401
            assert received == []
            assert _post(events_url, genuine.encode(TaskStarted(run_id=run_id))) == 200
            assert [type(frame) for frame in received] == [TaskStarted]
        finally:
            server.unregister_run(run_id)
        self.assert_environment_works()

    def test_transient_callback_failures_are_retried(self, environment: Mapping[str, Any]) -> None:
        port = free_port()
        with FlakyProxy(f"http://127.0.0.1:{port}", failures=2) as proxy:
            self.reconfigure(environment, callback_port=port, callback_url=proxy.url)

            with self.weave() as w:

                @w.do
                def answer() -> int:
                    return 42

            assert w.result.answer == 42
            assert proxy.refused == 2, "the proxy never had to refuse a post"
            assert proxy.forwarded >= 1

    def test_payload_too_large_to_carry_is_fetched(self, environment: Mapping[str, Any]) -> None:
        self.reconfigure(environment, max_inline_payload_bytes=2048)
        blob = secrets.token_bytes(1 << 20)

        with self.weave() as w:

            @w.do
            def size() -> tuple[int, bytes]:
                return len(blob), blob[-16:]

        assert w.result.size == (len(blob), blob[-16:])

    def test_replayed_frame_runs_once(self, runs_in_process: bool, shared_tmp_path: Path) -> None:
        """A payload pushed into the backend twice runs once, whichever worker gets the copy.

        Backend workers do not share a replay cache (RQ forks a process per job), so the
        guarantee comes from the callback server: the first worker to claim a run wins. The
        payload therefore names the callback server, as every payload an adapter submits does.
        """
        name = self.environment_name
        self.assert_environment_works()
        executor: Any = self.executor_of(name)
        counter = shared_tmp_path / "replayed.count"
        count = attempt_counter(counter)

        def replayed() -> int:
            return count()

        frame = RunTask(
            run_id=new_run_id("replayed"),
            task_id="replayed",
            callable=dumps(replayed, "the conformance suite"),
            args=dumps({}, "the conformance suite"),
            delivery=Delivery(callback=executor.callback_server.url),
        )
        line = LineCodec(executor.security).encode(frame)
        self.send_raw(name, line)
        self.run_on_worker(waiter(counter))  # the correctly signed original runs once
        self.send_raw(name, line)
        self.let_workers_run(0.6)
        assert counter.stat().st_size == 1, "a replayed payload ran a second time"
        self.assert_environment_works()


class BackendExecutorConformance(BackendConformance, RemoteExecutorConformance):
    """Everything :class:`RemoteExecutorConformance` checks, plus the callback-server tests,
    for executors built on :class:`wove.backends.BackendExecutor`.

    Forged and replayed payloads are pushed into the backend with
    :meth:`~wove.backends.BackendExecutor.submit_raw`, so a plugin only provides the
    ``environment`` fixture (with a ``security`` secret its workers share, as ``WOVE_SECRET``).

    The production scenarios are opt-in, each skipped with a message naming the hook that
    enables it: :meth:`kill_worker` (with :meth:`wait_for_worker` and
    :meth:`assert_killed_job`), :meth:`restartable_backend`, and for a job cancelled by a
    failing sibling :meth:`assert_job_cancelled` (plus :meth:`is_job_queued` and
    :attr:`queued_job_config` for a job still waiting in the backend).
    """

    async def asend_raw(self, environment_name: str, line: bytes) -> None:
        executor: Any = self.executor_of(environment_name)
        await executor.submit_raw(line)

    def security_of(self, environment_name: str) -> Security | None:
        executor: Any = self.executor_of(environment_name)
        security: Security | None = executor.security
        return security


async def _register(server: Any, run_id: str, on_event: Any) -> str:
    url: str = server.register_run(run_id, on_event)
    return url


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
