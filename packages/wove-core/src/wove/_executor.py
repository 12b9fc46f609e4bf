"""The contract an executor plugin implements.

An executor is what an environment runs its tasks on. Wove creates one instance per configured
environment, starts it the first time a task needs it, reuses it across weaves in the process, and
stops it at interpreter exit (or when the configuration changes).

Two shapes exist:

* :class:`InProcessExecutor` -- tasks run in the weave's own process. The scheduler calls them
  directly (async tasks on the loop, sync tasks in the shared thread pool), so the plugin boundary
  costs nothing per task. The ``local`` executor is one.
* :class:`Executor` -- tasks leave the process. The scheduler turns each run into a command frame
  (``run_task``, ``cancel_task``, ``shutdown``) passed to :meth:`Executor.send`, and reads event
  frames (``task_started``, ``task_result``, ``task_error``, ``task_cancelled``, ``heartbeat``,
  ``log``) from :meth:`Executor.recv`.

Example:
    A third-party plugin declares its ``executor_config``, subclasses :class:`Executor` and
    registers it::

        class PigeonSettings(ExecutorSettings, kw_only=True):
            loft: Annotated[str, setting("the loft's address", min_length=1)]

        class PigeonExecutor(Executor):
            kind = "network"
            settings_class = PigeonSettings

            async def start(self, environment_name, environment_config, run_config):
                settings = validate_executor_config(
                    PigeonSettings, environment_config, environment=environment_name,
                    executor="pigeon",
                )
                self._loft = await connect(settings.loft)

            async def send(self, frame):
                await self._loft.post(frame)

            async def recv(self):
                return await self._loft.next_event()

            async def stop(self):
                await self._loft.close()
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from ._settings import ExecutorSettings, setting_keys

__all__ = ["Executor", "ExecutorKind", "InProcessExecutor", "EXECUTOR_KINDS"]

ExecutorKind = Literal["local", "process", "network", "backend"]
EXECUTOR_KINDS: tuple[ExecutorKind, ...] = ("local", "process", "network", "backend")


class Executor(abc.ABC):
    """Base class of every executor.

    Subclasses set :attr:`kind` and implement the four async methods. ``start`` is awaited once
    before the first frame is sent; ``stop`` once when the environment shuts down. ``send`` and
    ``recv`` may be called concurrently from the same event loop.
    """

    kind: ClassVar[ExecutorKind] = "process"
    #: The declaration of the environment's ``executor_config`` (a subclass of
    #: :class:`~wove.plugins.ExecutorSettings`); ``start`` reads it with
    #: :func:`~wove.plugins.validate_executor_config`.
    settings_class: ClassVar[type[ExecutorSettings] | None] = None
    #: Keys accepted in the environment's ``executor_config``, derived from
    #: :attr:`settings_class` when the executor declares one; ``None`` accepts any key.
    config_keys: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("settings_class")
        if declared is not None and "config_keys" not in cls.__dict__:
            cls.config_keys = setting_keys(declared)

    @abc.abstractmethod
    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        """Connect to whatever runs the tasks; raise here, before anything is submitted."""

    @abc.abstractmethod
    async def send(self, frame: Any) -> None:
        """Deliver one command frame to the workers."""

    @abc.abstractmethod
    async def recv(self) -> Any:
        """Return the next event frame from the workers."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Release connections and processes; must be safe to call twice."""

    @property
    def runs_in_process(self) -> bool:
        """Whether the scheduler may call tasks directly instead of sending frames."""
        return False


class InProcessExecutor(Executor):
    """An executor whose tasks run in the weave's own process.

    The scheduler never sends frames to it: it runs async tasks on the weave's loop and sync tasks
    in the shared thread pool, sized by the environment's ``max_workers``.
    """

    kind: ClassVar[ExecutorKind] = "local"
    settings_class: ClassVar[type[ExecutorSettings] | None] = ExecutorSettings

    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        """Nothing to connect to."""

    async def send(self, frame: Any) -> None:
        raise TypeError(f"{type(self).__name__} runs tasks in process and accepts no frames")

    async def recv(self) -> Any:
        raise TypeError(f"{type(self).__name__} runs tasks in process and emits no frames")

    async def stop(self) -> None:
        """Nothing to release."""

    @property
    def runs_in_process(self) -> bool:
        return True
