"""``wove doctor`` checks for ``celery`` environments, read from package metadata only.

Packaging cannot say "if redis-py is installed, it must be new enough for kombu": a plain
``celery`` install does not ask for kombu's ``redis`` extra, so pip accepts any redis-py that
another package (arq pins ``redis<6``) brought along, and kombu's Redis transport then refuses to
start. ``pip install "wove-celery[redis]"`` makes the resolver pick versions that fit together;
this check names the mismatch for installs that did not.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wove.plugins import EnvironmentConfig

__all__ = ["check_redis_client"]

_REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://", "sentinel://")


def check_redis_client(environment: EnvironmentConfig) -> Iterable[str]:
    """Report a redis-py outside what kombu's ``redis`` extra accepts, for Redis brokers."""
    if not any(url.startswith(_REDIS_SCHEMES) for url in _broker_urls(environment)):
        return []
    try:
        installed = importlib.metadata.version("redis")
    except importlib.metadata.PackageNotFoundError:
        return [
            "the broker is Redis but redis-py is not installed. Install it with: "
            'pip install "wove-celery[redis]"'
        ]
    wanted = _kombu_redis_requirement()
    if wanted is None:
        return []
    from packaging.requirements import Requirement

    specifier = Requirement(wanted).specifier
    if specifier.contains(installed, prereleases=True):
        return []
    return [
        f"the broker is Redis, and kombu's Redis transport needs redis{specifier} but "
        f"redis {installed} is installed (another package, such as arq, may pin it), so the "
        "transport will refuse to start. Install matching versions with: "
        'pip install "wove-celery[redis]"'
    ]


def _broker_urls(environment: EnvironmentConfig) -> list[str]:
    config = environment.executor_config
    app: Any = config.get("app")
    urls = [config.get("broker_url"), config.get("result_backend")]
    if app is not None:
        urls += [app.conf.broker_url, app.conf.result_backend]
    return [url for url in urls if isinstance(url, str)]


def _kombu_redis_requirement() -> str | None:
    try:
        requirements = importlib.metadata.requires("kombu") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for line in requirements:
        requirement, _, marker = line.partition(";")
        if requirement.strip().startswith("redis") and "extra" in marker and "redis" in marker:
            return requirement.strip()
    return None
