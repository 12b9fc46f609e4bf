"""A complete backend adapter in forty lines: each job is a ``python -m wove.backend_worker``
process. The documentation's "Writing a backend adapter" page walks through it, and the core
tests run the backend conformance suite against it, so the adapter base is proven without any
external service."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from wove.backends import BackendAdapter, BackendExecutor, BackendJob, JobStatus


class SubprocessAdapter(BackendAdapter):
    name = "subprocess"
    config_keys = frozenset({"python"})

    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        self.python = config.get("python", sys.executable)

    async def submit(self, job: BackendJob) -> asyncio.subprocess.Process:
        # The worker verifies the payload, claims the run and posts its events itself; the
        # secret reaches it as WOVE_SECRET, inherited from this process's environment.
        process = await asyncio.create_subprocess_exec(
            self.python,
            "-m",
            "wove.backend_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert process.stdin is not None
        process.stdin.write(job.payload.encode())
        process.stdin.close()
        return process

    async def cancel(self, job: BackendJob) -> bool:
        process: asyncio.subprocess.Process = job.handle
        if process.returncode is None:
            process.kill()
        return True  # the process is gone: it will neither run on nor report

    async def status(self, job: BackendJob) -> JobStatus:
        process: asyncio.subprocess.Process = job.handle
        if process.returncode is None:
            return JobStatus("running")
        if process.returncode == 0:
            return JobStatus("succeeded")
        return JobStatus("failed", f"exit status {process.returncode}")


class SubprocessExecutor(BackendExecutor):
    adapter_class = SubprocessAdapter
