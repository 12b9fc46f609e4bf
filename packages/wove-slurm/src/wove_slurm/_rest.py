"""The REST transport of the ``slurm`` adapter: slurmrestd's JSON API on one aiohttp session.

``mode="rest"`` submits, cancels and watches jobs through ``slurmrestd`` instead of the Slurm
client commands, so the submitting host needs neither the clients nor munge -- only HTTP(S)
access to slurmrestd and a JWT. The requests (OpenAPI plugin ``v0.0.38``, Slurm 22.05):

* ``POST /slurm/<v>/job/submit`` -- ``{"script": ..., "job": {"name", "environment",
  "current_working_directory", "standard_output", ...}}``, answered with ``job_id``;
* ``GET /slurm/<v>/jobs`` -- every job the controller holds, once per polling round (the
  equivalent of ``squeue -t all``), and ``GET /slurm/<v>/job/<id>`` for one that ended;
* ``DELETE /slurm/<v>/job/<id>`` -- the equivalent of ``scancel``;
* ``GET /slurm/<v>/ping`` -- when the environment starts.

Each request carries ``X-SLURM-USER-NAME`` and ``X-SLURM-USER-TOKEN``. The token is read
for every request (from the variable ``rest_token="env:NAME"`` names, or from the callable
given as ``rest_token``), so a renewed token is picked up without restarting anything.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import getpass
import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from wove import InvalidOptionError
from wove.plugins import secret_variable

if TYPE_CHECKING:
    import aiohttp

    from ._adapter import SlurmSettings, _Ended

__all__ = ["DEFAULT_API_VERSION", "RestSettings", "RestTransport", "rest_settings"]

DEFAULT_API_VERSION: Final = "v0.0.38"
#: Seconds one request may take before it fails.
REQUEST_TIMEOUT: Final = 60.0
#: Slurm error numbers meaning "the job had already ended" (ESLURM_INVALID_JOB_ID,
#: ESLURM_ALREADY_DONE).
_ALREADY_ENDED: Final = frozenset({2017, 2021})

#: Job states after which there is nothing left to cancel.
_ENDED_STATES: Final = frozenset(
    {
        "COMPLETED",
        "CANCELLED",
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "REVOKED",
    }
)

TokenSource = Callable[[], "str | Awaitable[str]"]


@dataclasses.dataclass(frozen=True)
class RestSettings:
    """The REST keys of a ``slurm`` environment, checked.

    Attributes:
        url: slurmrestd's base URL, without a trailing slash.
        user: sent as ``X-SLURM-USER-NAME``.
        api_version: the OpenAPI plugin in the path (``v0.0.38``).
        token_variable: the environment variable holding the token (``rest_token="env:NAME"``).
        token_source: a callable returning a token, instead of a variable.
        job_fields: extra fields of every job description (``rest_job_fields``).
    """

    url: str
    user: str
    api_version: str
    token_variable: str | None
    token_source: TokenSource | None
    job_fields: Mapping[str, Any]


def rest_settings(settings: SlurmSettings, where: str) -> RestSettings:
    """The REST keys of a checked ``slurm`` configuration, with the rules between them: a
    plain-HTTP ``rest_url`` only to this host (or with ``insecure=True``), and the token's
    variable set. Every error names the key and the fix."""
    url = settings.rest_url
    if url is None:
        raise InvalidOptionError(
            f"{where}: mode='rest' needs rest_url, slurmrestd's address such as "
            f"'https://slurm.example.org:6820', got {url!r}"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidOptionError(
            f"{where}: rest_url must be an http:// or https:// URL with a host, got {url!r}"
        )
    if parts.scheme == "http" and not _loopback(parts.hostname) and not settings.insecure:
        raise InvalidOptionError(
            f"{where}: rest_url {url!r} is plain HTTP to another host, so the JWT and every "
            "job's environment (with the secret) would cross the network in the clear; use "
            "https://, or set insecure=True to accept that"
        )
    token = settings.rest_token
    variable = secret_variable(token)
    source: TokenSource | None = None
    if variable is not None:
        if not os.environ.get(variable):
            raise InvalidOptionError(
                f"{where}: rest_token names the environment variable {variable}, which is not "
                f"set; export a token there, e.g. `export $(scontrol token lifespan=86400)` "
                "and rest_token='env:SLURM_JWT'"
            )
    elif callable(token):
        source = token
    else:
        raise InvalidOptionError(
            f"{where}: rest_token must be 'env:NAME' (the variable holding slurmrestd's JWT) "
            f"or a callable returning a fresh token, got {token!r}; never put the token itself "
            "in the configuration"
        )
    user = settings.rest_user or getpass.getuser()
    version = settings.rest_api_version or DEFAULT_API_VERSION
    fields = dict(settings.rest_job_fields or {})
    return RestSettings(url.rstrip("/"), user, version, variable, source, fields)


def _loopback(host: str) -> bool:
    from wove.plugins import is_loopback_host

    return is_loopback_host(host)


class SlurmRestError(RuntimeError):
    """slurmrestd answered with Slurm errors (its ``errors`` array)."""

    def __init__(self, message: str, numbers: frozenset[int]) -> None:
        super().__init__(message)
        self.numbers = numbers


class RestTransport:
    """Submit, cancel and watch through slurmrestd; one aiohttp session, opened lazily on the
    dispatch loop and closed by :meth:`close`."""

    def __init__(
        self,
        settings: RestSettings,
        *,
        job_fields: Mapping[str, Any],
        environment: Mapping[str, str],
        call_blocking: Callable[..., Awaitable[Any]],
        where: str,
    ) -> None:
        self._settings = settings
        self._base = f"{settings.url}/slurm/{settings.api_version}"
        self._job_fields = dict(job_fields)
        self._environment = dict(environment)
        self._call_blocking = call_blocking
        self._where = where
        self._session: aiohttp.ClientSession | None = None

    # -- the transport -----------------------------------------------------------------------

    async def check(self) -> None:
        """``GET /ping``: a connection error names the URL, a refused token says so."""
        try:
            answer = await self._request("GET", "/ping")
        except SlurmRestError as error:
            raise PermissionError(
                f"{self._where}: slurmrestd at {self._settings.url} could not reach slurmctld "
                f"with the token from rest_token for user {self._settings.user!r} ({error}). "
                "slurmctld rejects an invalid or expired token, or one for another user, with "
                "this generic error: renew the token (`scontrol token username="
                f"{self._settings.user}`), check rest_user, and check that slurmctld is up "
                "and has AuthAltTypes=auth/jwt"
            ) from None
        pings = answer.get("pings") or []
        if not any(str(ping.get("ping", "")).upper() == "UP" for ping in pings):
            raise ConnectionError(
                f"{self._where}: slurmrestd at {self._settings.url} says slurmctld is not up "
                f"({pings!r})"
            )

    async def submit(self, name: str, script: str) -> str:
        job = {
            "name": name,
            "current_working_directory": os.getcwd(),
            "standard_output": "/dev/null",
            **self._job_fields,
            "environment": self._environment,
        }
        try:
            answer = await self._request("POST", "/job/submit", {"script": script, "job": job})
        except SlurmRestError as error:
            raise RuntimeError(f"slurmrestd refused job {name!r}: {error}") from None
        slurm_id = answer.get("job_id")
        if not isinstance(slurm_id, int):
            raise RuntimeError(
                f"slurmrestd accepted job {name!r} but returned no job id: {answer!r}"
            )
        return str(slurm_id)

    async def cancel(self, slurm_id: str) -> bool:
        # slurmrestd answers DELETE of a job that already ended with success, unlike
        # scancel: ask first, so an ended job is reported as such.
        ended = await self.ended(slurm_id)
        if ended is not None and ended.state in _ENDED_STATES:
            return False
        try:
            await self._request("DELETE", f"/job/{slurm_id}")
        except SlurmRestError as error:
            if error.numbers & _ALREADY_ENDED:
                return False
            raise RuntimeError(f"DELETE job {slurm_id} failed: {error}") from None
        return True

    async def states(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        wanted = set(ids)
        answer = await self._request("GET", "/jobs")
        states: dict[str, tuple[str, str]] = {}
        for job in answer.get("jobs") or []:
            slurm_id = str(job.get("job_id"))
            if slurm_id in wanted:
                states[slurm_id] = (_state(job), str(job.get("state_reason") or "None"))
        return states

    async def ended(self, slurm_id: str) -> _Ended | None:
        from ._adapter import _Ended

        try:
            answer = await self._request("GET", f"/job/{slurm_id}")
        except SlurmRestError:
            return None
        for job in answer.get("jobs") or []:
            if str(job.get("job_id")) == slurm_id:
                reason = job.get("state_reason")
                return _Ended(_state(job), str(reason) if reason else None, _exit(job))
        return None

    async def accounted(self, slurm_id: str) -> _Ended | None:
        return None  # slurmdbd's REST endpoints are a different plugin; not used

    async def named(self, name: str) -> list[tuple[str, str]]:
        answer = await self._request("GET", "/jobs")
        return [
            (str(job.get("job_id")), _state(job))
            for job in answer.get("jobs") or []
            if job.get("name") == name and job.get("user_name") == self._settings.user
        ]

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- HTTP --------------------------------------------------------------------------------

    async def _token(self) -> str:
        settings = self._settings
        if settings.token_variable is not None:
            token = os.environ.get(settings.token_variable, "")
            origin = f"the environment variable {settings.token_variable}"
        else:
            assert settings.token_source is not None
            source = settings.token_source
            if inspect.iscoroutinefunction(source):
                token = await source()
            else:
                token = await self._call_blocking(source)
                if inspect.isawaitable(token):
                    token = await token
            origin = "the rest_token callable"
        if not isinstance(token, str) or not token:
            raise PermissionError(
                f"{self._where}: no slurmrestd token: {origin} gave {type(token).__name__} "
                f"{'(empty)' if token == '' else ''}".rstrip()
            )
        expired = _expired(token)
        if expired is not None:
            raise PermissionError(
                f"{self._where}: the slurmrestd token from {origin} expired at {expired}; get "
                f"a new one (`scontrol token username={settings.user} lifespan=...`)"
            )
        return token

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
                headers={"Accept": "application/json"},
            )
        return self._session

    async def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One request; a dropped pooled connection is retried once for GET and DELETE."""
        import aiohttp

        headers = {
            "X-SLURM-USER-NAME": self._settings.user,
            "X-SLURM-USER-TOKEN": await self._token(),
        }
        url = self._base + path
        session = self._open()
        for attempt in (1, 2):
            try:
                async with session.request(method, url, json=body, headers=headers) as response:
                    text = await response.text()
                    status = response.status
                break
            except aiohttp.ServerDisconnectedError:
                # A keep-alive connection to a slurmrestd that has since restarted.
                if attempt == 2 or method == "POST":
                    raise ConnectionError(
                        f"{self._where}: slurmrestd at {self._settings.url} closed the "
                        f"connection during {method} {path}"
                    ) from None
            except aiohttp.ClientConnectorError as error:
                raise ConnectionError(
                    f"{self._where}: cannot reach slurmrestd at {self._settings.url} "
                    f"({error.os_error.strerror or error}); start slurmrestd there or fix "
                    "rest_url"
                ) from None
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                raise ConnectionError(
                    f"{self._where}: {method} {url} failed: {type(error).__name__}: {error}"
                ) from None
        if status in (401, 403):
            raise PermissionError(
                f"{self._where}: slurmrestd at {self._settings.url} refused the request "
                f"(HTTP {status}: {text.strip()[:200]}); check rest_token and rest_user "
                f"({self._settings.user!r}), and that slurmrestd runs with -a rest_auth/jwt"
            )
        if status == 404:
            raise InvalidOptionError(
                f"{self._where}: slurmrestd at {self._settings.url} has no {method} "
                f"/slurm/{self._settings.api_version}{path} (HTTP 404); check rest_api_version "
                "against the OpenAPI plugins slurmrestd was started with (-s)"
            )
        try:
            answer = json.loads(text) if text else {}
        except ValueError:
            raise RuntimeError(
                f"{self._where}: slurmrestd answered {method} {path} with HTTP {status} and "
                f"no JSON: {text.strip()[:200]!r}"
            ) from None
        if not isinstance(answer, dict):
            raise RuntimeError(f"{self._where}: slurmrestd answered {method} {path}: {answer!r}")
        errors = [error for error in answer.get("errors") or [] if isinstance(error, dict)]
        if errors or status >= 400:
            raise SlurmRestError(_describe(errors, status), _numbers(errors))
        return answer


def _describe(errors: list[dict[str, Any]], status: int) -> str:
    if not errors:
        return f"HTTP {status}"
    parts = []
    for error in errors:
        text = str(error.get("error") or "error")
        description = error.get("description")
        if description and description != text:
            text += f": {description}"
        number = error.get("error_number", error.get("error_code"))
        if number not in (None, -1, 0):
            text += f" [{number}]"
        parts.append(text)
    return "; ".join(parts)


def _numbers(errors: list[dict[str, Any]]) -> frozenset[int]:
    found = set()
    for error in errors:
        for key in ("error_number", "error_code"):
            value = error.get(key)
            if isinstance(value, int):
                found.add(value)
    return frozenset(found)


def _state(job: Mapping[str, Any]) -> str:
    state = job.get("job_state")
    if isinstance(state, list):  # newer plugins give a list of flags
        state = state[0] if state else None
    return str(state).split()[0] if state else "UNKNOWN"


def _exit(job: Mapping[str, Any]) -> str | None:
    """Slurm's ``exit:signal`` from the raw wait status v0.0.38 reports (``768`` -> ``3:0``)."""
    code = job.get("exit_code")
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    if code & 0x7F:
        return f"0:{code & 0x7F}"
    return f"{(code >> 8) & 0xFF}:0"


def _expired(token: str) -> str | None:
    """When a JWT's ``exp`` claim lies in the past, that time (UTC); else ``None``.

    The token is only decoded, not verified: slurmctld verifies it. This just turns the
    generic error slurmctld gives for an expired token into a clear one.
    """
    try:
        claims = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        exp = int(data["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
    if exp >= time.time():
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(exp))
