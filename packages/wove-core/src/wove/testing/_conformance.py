"""``ExecutorConformance``: the whole suite as the one class a plugin subclasses."""

from __future__ import annotations

import pytest

from ._failures import FailureConformance
from ._remote import RemoteConformance
from ._results import ResultConformance

__all__ = ["ExecutorConformance", "RemoteExecutorConformance"]


class ExecutorConformance(ResultConformance, FailureConformance):
    """The standard tests an executor plugin runs against its real backend.

    Subclass it in the plugin's ``tests/test_conformance.py`` and give it one fixture,
    ``environment``, returning the environment definition -- the dict you would pass in
    ``wove.config(environments={"name": <definition>})``. Before each test the suite configures
    Wove with that environment under :attr:`environment_name` and routes every weave it runs
    there; afterwards it stops the executor and resets the configuration and every resolved
    environment. Every test runs real weaves; none mocks anything.

    The tests check results (sync and async callables, ``async with`` blocks, closures and
    lambdas, mapping over items and over an upstream result in input order, ``workers``, 10 MB
    arguments and results, 200 runs at once, ``merge()``), failures (exception type, message and
    traceback, an exception class the submitter cannot unpickle, an unpicklable result,
    ``retries``, cancellation by a failing sibling, ``timeout``), and -- for executors whose
    ``runs_in_process`` is ``False`` -- delivery (``delivery_timeout``, heartbeats, a worker that
    dies, ``delivery_orphan_policy="requeue"``, ``delivery_max_in_flight``) and the wire (forged
    and replayed frames never run).

    What the environment must offer: it runs at least two tasks at once, and its workers can
    read and write the ``shared_tmp_path`` directory (pytest's ``tmp_path`` unless the plugin
    overrides that fixture, e.g. with a mounted volume the workers share).

    What an out-of-process plugin implements besides the fixture:

    * :meth:`send_raw` (or the coroutine :meth:`asend_raw`, awaited on the dispatch loop):
      write one raw record to a worker, always the same one, so the suite can forge frames;
    * optionally :meth:`security_of`: the worker's :class:`wove._security.Security`, so the
      suite can also sign a frame correctly and replay it, and tamper with a real signature;
    * optionally :attr:`interrupts_sync_tasks` ``= False``, to document that cancelling a sync
      task cannot stop its thread on the worker.

    Example:
        ``packages/wove-stdio/tests/test_conformance.py``::

            import pytest
            from wove.testing import RemoteExecutorConformance

            class TestStdioConformance(RemoteExecutorConformance):
                @pytest.fixture
                def environment(self):
                    return {"executor": "stdio", "executor_config": {"processes": 2}}

                async def asend_raw(self, environment_name, line):
                    executor = self.executor_of(environment_name)
                    ...  # write `line` to the stdin of its first worker

                def security_of(self, environment_name):
                    return ...  # the Security its workers check frames with
    """

    @pytest.fixture(autouse=True)
    def _right_suite_for_the_executor(self, runs_in_process: bool) -> None:
        if not runs_in_process and not isinstance(self, RemoteConformance):
            pytest.fail(
                "this executor runs tasks out of process: subclass RemoteExecutorConformance, "
                "which adds the delivery and wire tests, instead of ExecutorConformance",
                pytrace=False,
            )


class RemoteExecutorConformance(ExecutorConformance, RemoteConformance):
    """:class:`ExecutorConformance` plus the tests only out-of-process executors can pass:
    ``delivery_timeout``, heartbeats, a worker that dies, ``requeue``, ``delivery_max_in_flight``,
    and forged and replayed frames. Out-of-process plugins subclass this one and implement
    :meth:`send_raw` (or :meth:`asend_raw`) and :meth:`security_of`."""
