"""Small steps a backend plugin's own tests repeat: configure environments that run one
executor, and run a one-task weave in an environment to show it works."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import wove

__all__ = ["answer_in", "configure_executor"]


def configure_executor(executor: str, **environments: Mapping[str, Any]) -> None:
    """Configure one environment per keyword, each running ``executor`` with that keyword's
    value as its ``executor_config``.

    Example:
        ``configure_executor("rq", jobs={"redis_url": url}, idle={"redis_url": url, ...})``
    """
    wove.config(
        environments={
            name: {"executor": executor, "executor_config": dict(config)}
            for name, config in environments.items()
        }
    )


def answer_in(environment: str, *, delivery_timeout: float = 30.0, **options: Any) -> int:
    """Run one task that returns 42 in ``environment`` and return its result.

    Args:
        environment: The environment to run the task in.
        delivery_timeout: The weave's ``delivery_timeout``, so a lost run fails the test.
        **options: Task options (``delivery_idempotency_key=...``).
    """
    with wove.weave(environment=environment, delivery_timeout=delivery_timeout) as w:

        @w.do(**options)
        def answer() -> int:
            return 42

    result: int = w.result.answer
    return result
