"""The ``finch`` executor; the only module that is meant to import finchlib."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import finchlib

from wove.plugins import Executor


class FinchExecutor(Executor):
    kind = "network"

    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        self.perch = finchlib.Perch(environment_config.get("perch", "localhost"))

    async def send(self, frame: Any) -> None:
        raise NotImplementedError("finches are never sent in these tests")

    async def recv(self) -> Any:
        raise NotImplementedError("finches are never sent in these tests")

    async def stop(self) -> None:
        """Nothing to release."""
