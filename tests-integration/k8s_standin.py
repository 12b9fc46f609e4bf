"""A small stand-in for a Kubernetes API server, for testing the ``kubernetes_jobs`` executor.

No real API server can be installed on the test machines (no kube-apiserver, k3s, kind or
kwok binaries; see the notes on local services), so this module serves the slice of the
Kubernetes API the official ``kubernetes`` Python client uses to run Jobs, on 127.0.0.1::

    python tests-integration/k8s_standin.py --port 0     # prints http://127.0.0.1:PORT

or from a fixture: ``StandIn.start()`` (a subprocess; ``.url``, ``.restart()``, ``.stop()``).

What it serves (JSON only; every object gets ``uid``, ``resourceVersion`` from one counter,
``creationTimestamp``; single objects carry ``kind``/``apiVersion``, lists are ``JobList``,
``SecretList``, ``PodList`` whose items, as in Kubernetes, do not; errors are ``v1 Status``
objects with ``reason`` ``NotFound``, ``AlreadyExists``, ``Invalid``, ``BadRequest`` or
``MethodNotAllowed``):

* discovery: ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/batch/v1`` (each with
  and without a trailing slash);
* ``batch/v1`` Jobs in any namespace: create, get, get ``/status``, list (``labelSelector``
  with ``k=v``, ``k==v``, ``k!=v``, ``k`` and ``!k`` terms; ``limit``), delete. Names must be
  DNS-1123 labels (at most 63 characters), label keys and values are validated as Kubernetes
  does, and a taken name answers 409 ``AlreadyExists``;
* ``v1`` Secrets: create (``stringData`` is folded into base64 ``data``), get, list, delete,
  and ``PATCH`` applied as a JSON merge patch (enough to add ``ownerReferences``);
* ``v1`` Pods: list (``labelSelector``, e.g. ``job-name=NAME``), get, delete.

Deleting a Job honours ``propagationPolicy``: ``Background`` and ``Foreground`` delete its
Pods (killing their processes) and every Secret whose ``ownerReferences`` name the Job's uid,
at once; ``Orphan`` -- the API's default for Jobs -- leaves them. The answer is a ``v1
Status`` with ``status: Success`` (for a Pod: the Pod with its ``deletionTimestamp``, as
Kubernetes answers a graceful deletion, though the stand-in removes it at once).

The "kubelet": each Job created gets one Pod per attempt, named ``<job>-<5 chars>``, labelled
``job-name``/``batch.kubernetes.io/job-name``/``controller-uid`` plus the template's labels.
The Pod runs the template's **first container** as a local subprocess: ``command`` followed by
``args`` (``command`` is required: there is no image entrypoint to fall back on), in a fresh
temporary working directory, in a process group of its own. Its environment is ``PATH``,
``LANG``, ``HOME`` (the working directory), ``HOSTNAME`` (the Pod's name) and the container's
``env``: plain ``value`` entries and ``valueFrom.secretKeyRef`` read from the stored Secret (a
missing Secret or key fails the Pod, unless ``optional``). Nothing else of this process's
environment reaches the Pod, so a secret the test process holds cannot leak into it.

Secret volumes: for each ``volumeMounts`` entry whose volume is a ``secret`` volume, the
Secret's keys (or its ``items``, with their ``path``) are written as files under a temporary
directory, and every occurrence of the ``mountPath`` in the container's ``command``/``args``
strings is replaced by that directory's path -- so ``--payload-file
/var/run/wove/payload`` becomes ``--payload-file /tmp/k8s-standin-.../wove-payload/payload``.
Paths the program builds itself, or reads from environment variables, are not rewritten.

Job status follows the Pods: ``active`` while one runs, ``succeeded``/``failed`` counts,
``startTime``, ``completionTime``, and conditions ``Complete`` or ``Failed`` (reason
``BackoffLimitExceeded`` once more than ``backoffLimit`` attempts failed -- default 6 -- or
``DeadlineExceeded`` when ``activeDeadlineSeconds`` passes, which kills the running Pod). A
Pod deleted while it runs has its process group sent SIGTERM (SIGKILL after
``gracePeriodSeconds``, default 30) and counts as a failed attempt, as Kubernetes counts it.
``ttlSecondsAfterFinished`` deletes a finished Job (with its Pods and owned Secrets).

What it does **not** emulate:

* scheduling, nodes, images and registries: the container's ``image`` is ignored and the
  command runs on this host with whatever ``python`` its ``PATH`` (or the command's absolute
  path) finds; no container isolation, no ``workingDir``, no ports, probes or init containers;
* resource requests and limits, ``serviceAccountName``, ``securityContext``, RBAC,
  authentication (every request is allowed), admission, quotas, namespaces as objects (any
  namespace name is accepted and empty until used);
* watches (``watch=true`` answers 400), delete preconditions (``uid``,
  ``resourceVersion``: ignored), server-side apply, strategic merge patch semantics
  (patches are JSON merge patches), ``PATCH`` of Jobs and Pods,
  ``fieldSelector``, set-based label selectors (``in``, ``notin``), pagination tokens;
* ``parallelism``/``completions`` other than 1, ``podFailurePolicy``, resuming a Job created
  with ``suspend: true`` (it gets a ``Suspended`` condition and never runs),
  ``restartPolicy`` (a failed container is never restarted in place: a new Pod is), pod
  logs, events, persistence (a restart loses every object and kills every Pod).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["StandIn", "StandInServer", "main"]

GIT_VERSION = "v1.30.0-wove-standin"
DEFAULT_BACKOFF_LIMIT = 6
DEFAULT_GRACE_SECONDS = 30.0

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")

_RESOURCES = {
    # plural: (group, version, kind, namespaced verbs)
    "jobs": ("batch", "batch/v1", "Job"),
    "secrets": ("", "v1", "Secret"),
    "pods": ("", "v1", "Pod"),
}


class ApiError(Exception):
    """Answered as a ``v1 Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def response(self) -> web.Response:
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }
        return web.json_response(status, status=self.code)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _qualified(plural: str) -> str:
    group = _RESOURCES[plural][0]
    return f"{plural}.{group}" if group else plural


def _details(plural: str, name: str) -> dict[str, Any]:
    group = _RESOURCES[plural][0]
    return {"name": name, "group": group, "kind": plural}


def _invalid(plural: str, name: str, problems: list[str]) -> ApiError:
    kind = _RESOURCES[plural][2]
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {"; ".join(problems)}',
        {**_details(plural, name), "causes": [{"message": p} for p in problems]},
    )


def label_problems(labels: Any, where: str) -> list[str]:
    """What Kubernetes would refuse in a label map (key syntax, value syntax, lengths)."""
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [f"{where}: must be a map of strings"]
    problems = []
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
            problems.append(f"{where}: Invalid value: {key!r}: prefix must be a DNS subdomain")
        if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
            problems.append(f"{where}: Invalid value: {key!r}: name part must be a valid label")
        if not isinstance(value, str) or len(value) > 63:
            problems.append(f"{where}: Invalid value: {value!r}: must be at most 63 characters")
        elif value and not _LABEL_NAME.fullmatch(value):
            problems.append(
                f"{where}: Invalid value: {value!r}: a valid label must consist of alphanumeric "
                "characters, '-', '_' or '.', and must start and end with an alphanumeric"
            )
    return problems


def _selector(text: str | None) -> Callable[[dict[str, str]], bool]:
    """Equality and existence label selectors; set-based ones are refused."""
    terms: list[Callable[[dict[str, str]], bool]] = []
    for raw in (text or "").split(","):
        term = raw.strip()
        if not term:
            continue
        if " in " in term or " notin " in term or "(" in term:
            raise ApiError(400, "BadRequest", f"set-based selector {term!r} is not emulated", {})
        if "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            terms.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "=" in term:
            key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
            terms.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif term.startswith("!"):
            absent = term[1:].strip()
            terms.append(lambda labels, k=absent: k not in labels)
        else:
            terms.append(lambda labels, k=term: k in labels)
    return lambda labels: all(term(labels) for term in terms)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class _Pod:
    """One attempt of a Job: the object and, while it runs, its process."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.process: asyncio.subprocess.Process | None = None
        self.deleted = False
        self.workdir: str | None = None


class StandInServer:
    """The in-memory API and the kubelet; runs on the event loop that calls :meth:`start`."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name)
        self.pods: dict[tuple[str, str], _Pod] = {}  # (ns, name)
        self._versions = itertools.count(1)
        self._kubelets: dict[str, asyncio.Task[None]] = {}  # job uid -> runner
        self._timers: set[asyncio.TimerHandle] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- serving -------------------------------------------------------------------------------
    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=64 << 20, middlewares=[self._errors])
        route = app.router.add_route
        route("GET", "/version", self._version)
        route("GET", "/version/", self._version)
        # The Python client asks for discovery paths with a trailing slash, kubectl without.
        for path, handler in (
            ("/api", self._api),
            ("/apis", self._apis),
            ("/api/v1", self._core_resources),
            ("/apis/batch/v1", self._batch_resources),
        ):
            route("GET", path, handler)
            route("GET", path + "/", handler)
        for prefix, plural in (
            ("/apis/batch/v1", "jobs"),
            ("/api/v1", "secrets"),
            ("/api/v1", "pods"),
        ):
            base = f"{prefix}/namespaces/{{namespace}}/{plural}"
            route("*", base, self._collection(plural))
            route("*", base + "/{name}", self._item(plural))
            route("*", base + "/{name}/status", self._item(plural, status=True))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}"
        return self.url

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for pod in list(self.pods.values()):
            self._kill(pod, grace=0.0)
        for task in list(self._kubelets.values()):
            task.cancel()
        await asyncio.gather(*self._kubelets.values(), return_exceptions=True)
        for pod in list(self.pods.values()):  # orphaned Pods' processes, and every folder
            if pod.process is not None and pod.process.returncode is None:
                await pod.process.wait()
            _remove_workdir(pod)
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as error:
            return error.response()
        except web.HTTPNotFound:
            return ApiError(
                404, "NotFound", "the server could not find the requested resource", {}
            ).response()

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "major": "1",
                "minor": "30",
                "gitVersion": GIT_VERSION,
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "none",
                "compiler": "none",
                "platform": f"{sys.platform}/python",
            }
        )

    async def _api(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}
                ],
            }
        )

    async def _apis(self, request: web.Request) -> web.Response:
        version = {"groupVersion": "batch/v1", "version": "v1"}
        group = {"name": "batch", "versions": [version], "preferredVersion": version}
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})

    def _resource_list(self, group_version: str, plurals: list[str]) -> web.Response:
        verbs = {
            "jobs": ["create", "delete", "get", "list"],
            "secrets": ["create", "delete", "get", "list", "patch"],
            "pods": ["delete", "get", "list"],
        }
        resources = []
        for plural in plurals:
            kind = _RESOURCES[plural][2]
            resources.append(
                {
                    "name": plural,
                    "singularName": kind.lower(),
                    "namespaced": True,
                    "kind": kind,
                    "verbs": verbs[plural],
                }
            )
            if plural == "jobs":
                resources.append(
                    {
                        "name": "jobs/status",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "Job",
                        "verbs": ["get"],
                    }
                )
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": resources,
            }
        )

    async def _core_resources(self, request: web.Request) -> web.Response:
        return self._resource_list("v1", ["pods", "secrets"])

    async def _batch_resources(self, request: web.Request) -> web.Response:
        return self._resource_list("batch/v1", ["jobs"])

    def _collection(self, plural: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            namespace = request.match_info["namespace"]
            if request.method == "GET":
                return self._list(plural, namespace, request.query)
            if request.method == "POST" and plural != "pods":
                body = await _json_body(request)
                obj = self._create(plural, namespace, body)
                return web.json_response(obj, status=201)
            raise _not_allowed(request)

        return handle

    def _item(self, plural: str, *, status: bool = False) -> Any:
        async def handle(request: web.Request) -> web.Response:
            namespace, name = request.match_info["namespace"], request.match_info["name"]
            if request.method == "GET":
                return web.json_response(self._get(plural, namespace, name))
            if status or (plural == "jobs" and request.method != "DELETE"):
                raise _not_allowed(request)
            if request.method == "DELETE":
                options = await _json_body(request, optional=True)
                policy = request.query.get("propagationPolicy") or options.get("propagationPolicy")
                grace = request.query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
                return web.json_response(self._delete(plural, namespace, name, policy, grace))
            if request.method == "PATCH" and plural == "secrets":
                patch = await _json_body(request)
                return web.json_response(self._patch(plural, namespace, name, patch))
            raise _not_allowed(request)

        return handle

    # -- the store -------------------------------------------------------------------------------
    def _stamp(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))

    def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get((plural, namespace, name))
        if obj is None:
            raise ApiError(
                404, "NotFound", f'{_qualified(plural)} "{name}" not found', _details(plural, name)
            )
        return obj

    def _list(self, plural: str, namespace: str, query: Any) -> web.Response:
        if query.get("watch") in ("true", "1"):
            raise ApiError(400, "BadRequest", "watch is not emulated by the stand-in", {})
        matches = _selector(query.get("labelSelector"))
        items = [
            {key: value for key, value in obj.items() if key not in ("kind", "apiVersion")}
            for (kind, ns, _), obj in sorted(self.objects.items())
            if kind == plural and ns == namespace and matches(obj["metadata"].get("labels") or {})
        ]
        limit = int(query.get("limit") or 0)
        if limit > 0:
            items = items[:limit]
        _, api_version, kind = _RESOURCES[plural]
        return web.json_response(
            {
                "kind": f"{kind}List",
                "apiVersion": api_version,
                "metadata": {"resourceVersion": str(next(self._versions))},
                "items": items,
            }
        )

    def _create(self, plural: str, namespace: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object", {})
        metadata = body.setdefault("metadata", {}) or {}
        body["metadata"] = metadata
        name = metadata.get("name")
        if not name and metadata.get("generateName"):
            name = metadata["generateName"] + secrets.token_hex(3)[:5]
            metadata["name"] = name
        _, api_version, kind = _RESOURCES[plural]
        problems: list[str] = []
        pattern, limit = (_DNS_LABEL, 63) if plural == "jobs" else (_DNS_SUBDOMAIN, 253)
        if not isinstance(name, str) or len(name) > limit or not pattern.fullmatch(name):
            problems.append(
                f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 "
                f"{'label' if plural == 'jobs' else 'subdomain'} of at most {limit} characters"
            )
        problems += label_problems(metadata.get("labels"), "metadata.labels")
        if plural == "jobs":
            problems += self._job_problems(body)
        if problems:
            raise _invalid(plural, str(name), problems)
        if (plural, namespace, name) in self.objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{_qualified(plural)} "{name}" already exists',
                _details(plural, name),
            )
        body["kind"], body["apiVersion"] = kind, api_version
        metadata.update(
            namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1
        )
        if plural == "secrets":
            data = dict(body.get("data") or {})
            for key, value in (body.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            body["data"] = data
            body.setdefault("type", "Opaque")
        if plural == "jobs":
            body["status"] = {}
            spec = body["spec"]
            spec.setdefault("backoffLimit", DEFAULT_BACKOFF_LIMIT)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
        self._stamp(body)
        self.objects[(plural, namespace, name)] = body
        if plural == "jobs":
            uid = metadata["uid"]
            self._kubelets[uid] = asyncio.get_running_loop().create_task(
                self._run_job(namespace, name, uid)
            )
        return body

    @staticmethod
    def _job_problems(body: dict[str, Any]) -> list[str]:
        spec = body.get("spec")
        if not isinstance(spec, dict):
            return ["spec: Required value"]
        template = spec.get("template") or {}
        problems = label_problems(
            (template.get("metadata") or {}).get("labels"), "spec.template.metadata.labels"
        )
        containers = (template.get("spec") or {}).get("containers") or []
        if not containers:
            problems.append("spec.template.spec.containers: Required value")
        elif not containers[0].get("command"):
            problems.append(
                "spec.template.spec.containers[0].command: Required value (the stand-in has no "
                "image entrypoint)"
            )
        restart = (template.get("spec") or {}).get("restartPolicy")
        if restart not in ("Never", "OnFailure"):
            problems.append(
                f"spec.template.spec.restartPolicy: Unsupported value: {restart!r}: supported "
                'values: "OnFailure", "Never"'
            )
        for key in ("parallelism", "completions"):
            if spec.get(key, 1) != 1:
                problems.append(f"spec.{key}: only 1 is emulated by the stand-in")
        return problems

    def _patch(self, plural: str, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        obj = self._get(plural, namespace, name)
        frozen = {k: obj["metadata"][k] for k in ("name", "namespace", "uid", "creationTimestamp")}
        merged = _merge_patch(obj, patch)
        merged["metadata"].update(frozen)
        if plural == "secrets":
            for key, value in (merged.pop("stringData", None) or {}).items():
                merged.setdefault("data", {})[key] = base64.b64encode(str(value).encode()).decode()
        problems = label_problems(merged["metadata"].get("labels"), "metadata.labels")
        if problems:
            raise _invalid(plural, name, problems)
        self._stamp(merged)
        self.objects[(plural, namespace, name)] = merged
        return merged

    def _delete(
        self, plural: str, namespace: str, name: str, policy: str | None, grace: Any
    ) -> dict[str, Any]:
        obj = self._get(plural, namespace, name)
        del self.objects[(plural, namespace, name)]
        uid = obj["metadata"]["uid"]
        grace_seconds = DEFAULT_GRACE_SECONDS if grace is None else float(grace)
        if plural == "pods":
            pod = self.pods.pop((namespace, name), None)
            if pod is not None:
                pod.deleted = True
                self._kill(pod, grace_seconds)
        elif plural == "jobs":
            if (policy or "Orphan") != "Orphan":
                self._collect(namespace, uid, grace_seconds)
            else:  # the kubelet keeps running the current Pod, nobody tracks it any more
                task = self._kubelets.pop(uid, None)
                if task is not None:
                    task.cancel()
        if plural == "pods":  # graceful deletion: Kubernetes answers with the Pod itself
            obj["metadata"].update(
                deletionTimestamp=_now(), deletionGracePeriodSeconds=int(grace_seconds)
            )
            return obj
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {**_details(plural, name), "uid": uid},
        }

    def _collect(self, namespace: str, owner_uid: str, grace: float) -> None:
        """Garbage collection: delete what ``owner_uid`` owns (Pods, Secrets)."""
        for (plural, ns, name), obj in list(self.objects.items()):
            owners = obj["metadata"].get("ownerReferences") or []
            if ns == namespace and any(owner.get("uid") == owner_uid for owner in owners):
                self._delete(plural, ns, name, "Background", grace)

    # -- the kubelet -----------------------------------------------------------------------------
    def _job(self, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
        job = self.objects.get(("jobs", namespace, name))
        return job if job is not None and job["metadata"]["uid"] == uid else None

    def _update_status(self, job: dict[str, Any], **changes: Any) -> None:
        status = job.setdefault("status", {})
        for key, value in changes.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        self._stamp(job)

    async def _run_job(self, namespace: str, name: str, uid: str) -> None:
        try:
            await self._attempts(namespace, name, uid)
        finally:
            self._kubelets.pop(uid, None)

    async def _attempts(self, namespace: str, name: str, uid: str) -> None:
        job = self._job(namespace, name, uid)
        assert job is not None
        spec = job["spec"]
        if spec.get("suspend"):  # never resumed: PATCH of Jobs is not emulated
            now = _now()
            suspended = {
                "type": "Suspended",
                "status": "True",
                "reason": "JobSuspended",
                "message": "Job suspended",
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }
            self._update_status(job, conditions=[suspended])
            return
        deadline_seconds = spec.get("activeDeadlineSeconds")
        started = time.monotonic()
        self._update_status(job, startTime=_now())
        failed = 0
        outcome: tuple[str, str, str] | None = None
        while outcome is None:
            remaining = None
            if deadline_seconds is not None:
                remaining = float(deadline_seconds) - (time.monotonic() - started)
                if remaining <= 0:
                    outcome = (
                        "Failed",
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    )
                    break
            pod = await self._start_pod(job, namespace, name, uid)
            self._update_status(job, active=1, ready=0)
            code = await self._wait_pod(pod, remaining)
            job = self._job(namespace, name, uid)  # type: ignore[assignment]
            if job is None:
                return  # deleted meanwhile
            if code == 0:
                self._update_status(job, active=None, succeeded=1, ready=None)
                outcome = ("Complete", "", "")
            else:
                failed += 1
                self._update_status(job, active=None, failed=failed, ready=None)
                if code is None:
                    outcome = (
                        "Failed",
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    )
                elif failed > int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)):
                    outcome = (
                        "Failed",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    )
        kind, reason, message = outcome
        now = _now()
        condition: dict[str, Any] = {
            "type": kind,
            "status": "True",
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
        if reason:
            condition.update(reason=reason, message=message)
        changes: dict[str, Any] = {"conditions": [condition]}
        if kind == "Complete":
            changes["completionTime"] = now
        self._update_status(job, **changes)
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None:
            loop = asyncio.get_running_loop()
            timer = loop.call_later(float(ttl), self._expire, namespace, name, uid)
            self._timers.add(timer)

    def _expire(self, namespace: str, name: str, uid: str) -> None:
        if self._job(namespace, name, uid) is not None:
            self._delete("jobs", namespace, name, "Background", 0)

    async def _start_pod(
        self, job: dict[str, Any], namespace: str, job_name: str, uid: str
    ) -> _Pod:
        template = job["spec"]["template"]
        pod_spec = json.loads(json.dumps(template.get("spec") or {}))
        name = f"{job_name[:57]}-{secrets.token_hex(3)[:5]}"
        labels = {
            **((template.get("metadata") or {}).get("labels") or {}),
            "job-name": job_name,
            "batch.kubernetes.io/job-name": job_name,
            "controller-uid": uid,
            "batch.kubernetes.io/controller-uid": uid,
        }
        obj: dict[str, Any] = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": job_name,
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
            "status": {"phase": "Pending"},
        }
        self._stamp(obj)
        self.objects[("pods", namespace, name)] = obj
        pod = _Pod(obj)
        self.pods[(namespace, name)] = pod
        workdir = pod.workdir = tempfile.mkdtemp(prefix=f"k8s-standin-{name}-")
        try:
            argv, env = self._container(pod_spec, namespace, name, workdir)
            pod.process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=workdir,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr,  # the stand-in's stdout carries only its URL
            )
        except (ApiError, OSError) as error:
            _remove_workdir(pod)
            self._pod_status(pod, "Failed", 128, "ContainerCannotRun", str(error))
            return pod
        now = _now()
        obj["status"] = {
            "phase": "Running",
            "startTime": now,
            "containerStatuses": [
                _container_status(pod_spec, True, {"running": {"startedAt": now}})
            ],
        }
        self._stamp(obj)
        return pod

    def _container(
        self, pod_spec: dict[str, Any], namespace: str, pod_name: str, workdir: str
    ) -> tuple[list[str], dict[str, str]]:
        container = pod_spec["containers"][0]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": workdir,
            "HOSTNAME": pod_name,
        }
        if "LANG" in os.environ:
            env["LANG"] = os.environ["LANG"]
        for entry in container.get("env") or []:
            if "value" in entry:
                env[entry["name"]] = str(entry["value"])
                continue
            ref = ((entry.get("valueFrom") or {}).get("secretKeyRef")) or {}
            value = self._secret_value(namespace, ref.get("name", ""), ref.get("key", ""))
            if value is not None:
                env[entry["name"]] = value
            elif not ref.get("optional"):
                raise ApiError(
                    400,
                    "CreateContainerConfigError",
                    f"secret {ref.get('name')!r} or its key {ref.get('key')!r} not found",
                    {},
                )
        rewrites: dict[str, str] = {}
        volumes = {volume["name"]: volume for volume in pod_spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            source = (volumes.get(mount["name"]) or {}).get("secret")
            if source is None:
                continue
            folder = Path(workdir, "volumes", mount["name"])
            folder.mkdir(parents=True)
            secret = self.objects.get(("secrets", namespace, source.get("secretName", "")))
            if secret is None:
                raise ApiError(
                    400, "FailedMount", f"secret {source.get('secretName')!r} not found", {}
                )
            data = secret.get("data") or {}
            items = source.get("items") or [{"key": key, "path": key} for key in data]
            for item in items:
                target = folder / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(data[item["key"]]))
            rewrites[mount["mountPath"].rstrip("/")] = str(folder)
        argv = [*container.get("command", []), *container.get("args", [])]
        for mount_path, folder in rewrites.items():
            argv = [part.replace(mount_path, folder) for part in argv]
        return argv, env

    def _secret_value(self, namespace: str, name: str, key: str) -> str | None:
        secret = self.objects.get(("secrets", namespace, name))
        if secret is None or key not in (secret.get("data") or {}):
            return None
        return base64.b64decode(secret["data"][key]).decode()

    async def _wait_pod(self, pod: _Pod, remaining: float | None) -> int | None:
        """The attempt's exit code; ``None`` when the deadline killed it."""
        process = pod.process
        if process is None:
            return 128
        try:
            code = await asyncio.wait_for(process.wait(), remaining)
        except asyncio.TimeoutError:
            self._kill(pod, grace=0.0)
            await process.wait()
            _remove_workdir(pod)
            self._pod_status(pod, "Failed", 137, "DeadlineExceeded", "")
            return None
        _remove_workdir(pod)
        if pod.deleted:
            return code if code != 0 else 143  # a deleted Pod counts as failed
        phase = "Succeeded" if code == 0 else "Failed"
        self._pod_status(pod, phase, code, "Completed" if code == 0 else "Error", "")
        return code

    def _pod_status(self, pod: _Pod, phase: str, code: int, reason: str, message: str) -> None:
        obj = pod.obj
        terminated = {"exitCode": code, "reason": reason, "finishedAt": _now()}
        if message:
            terminated["message"] = message
        obj["status"] = {
            **obj.get("status", {}),
            "phase": phase,
            "containerStatuses": [
                _container_status(obj["spec"], False, {"terminated": terminated})
            ],
        }
        self._stamp(obj)

    def _kill(self, pod: _Pod, grace: float) -> None:
        process = pod.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL if grace <= 0 else signal.SIGTERM)
        if grace > 0:
            loop = asyncio.get_running_loop()
            timer = loop.call_later(grace, self._kill, pod, 0.0)
            self._timers.add(timer)


def _remove_workdir(pod: _Pod) -> None:
    workdir, pod.workdir = pod.workdir, None
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def _container_status(pod_spec: dict[str, Any], ready: bool, state: Any) -> dict[str, Any]:
    container = pod_spec["containers"][0]
    return {
        "name": container.get("name", "main"),
        "image": container.get("image", ""),
        "imageID": "",  # no image is ever pulled
        "ready": ready,
        "restartCount": 0,
        "started": ready,
        "state": state,
    }


async def _json_body(request: web.Request, *, optional: bool = False) -> Any:
    text = await request.text()
    if not text.strip():
        if optional:
            return {}
        raise ApiError(400, "BadRequest", "the request body is empty", {})
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ApiError(400, "BadRequest", f"the body is not JSON: {error}", {}) from None


def _not_allowed(request: web.Request) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"{request.method} {request.path} is not emulated", {})


# -- as a process ---------------------------------------------------------------------------------
async def _serve(port: int) -> None:
    server = StandInServer()
    url = await server.start(port)
    print(url, flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A stand-in Kubernetes API server (tests only).")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    options = parser.parse_args(argv)
    asyncio.run(_serve(options.port))
    return 0


class StandIn:
    """The stand-in as a subprocess a fixture starts, restarts on the same port, and stops by
    its PID (SIGTERM: it kills its Pods' processes before exiting)."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process, self.url = process, url
        self.port = int(url.rsplit(":", 1)[1])

    @classmethod
    def start(cls, port: int = 0, *, timeout: float = 30.0) -> StandIn:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--port", str(port)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("http://"):
            process.kill()
            process.wait()
            raise RuntimeError(f"the Kubernetes stand-in did not start (it printed {line!r})")
        deadline = time.monotonic() + timeout
        while not _answers(line):
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"the Kubernetes stand-in at {line} does not answer")
            time.sleep(0.05)
        return cls(process, line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def restart(self) -> None:
        """Stop it and start a new one on the same port (every object is lost)."""
        self.stop()
        fresh = StandIn.start(self.port)
        self.process, self.url = fresh.process, fresh.url

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/version", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def running(port: int = 0) -> Iterator[StandIn]:
    """``with running() as standin:`` -- a stand-in for the block."""
    standin = StandIn.start(port)
    try:
        yield standin
    finally:
        standin.stop()


if __name__ == "__main__":
    sys.exit(main())
