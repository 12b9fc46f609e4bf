"""The ``pigeon`` executor; the only module that is meant to import pigeonlib."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pigeonlib

from wove.plugins import Executor


class PigeonExecutor(Executor):
    kind = "network"

    async def start(
        self,
        environment_name: str,
        environment_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
    ) -> None:
        self.loft = pigeonlib.Loft(environment_config.get("loft", "localhost"))

    async def send(self, frame: Any) -> None:
        raise NotImplementedError("pigeons are never sent in these tests")

    async def recv(self) -> Any:
        raise NotImplementedError("pigeons are never sent in these tests")

    async def stop(self) -> None:
        """Nothing to release."""
