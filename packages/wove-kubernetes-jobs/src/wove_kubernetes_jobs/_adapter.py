"""The Kubernetes Jobs adapter: each run becomes one ``batch/v1`` Job whose single Pod runs
``python -m wove.backend_worker --payload-file /var/run/wove/payload/payload``.

Per run the adapter makes three API calls: it creates a Secret holding the signed payload (and,
unless ``worker_secret`` names a Secret of yours, the shared secret and callback token), then
the Job that mounts it, then patches the Secret's ``ownerReferences`` to the Job, so deleting
the Job (a cancel, ``ttlSecondsAfterFinished``) garbage-collects the Secret with it. The Secret
exists before the Job, so the Pod never waits on a missing volume.

Results come back through the callback server, never through the Job's status or logs; the
Job's status is only polled to notice runs that ended without a word. This is the only module
of the package that imports ``kubernetes``; every call into it blocks, so each one goes through
:meth:`~wove.backends.BackendAdapter.call_blocking`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal

from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from wove import InvalidOptionError
from wove.backends import (
    BACKEND_CONFIG_KEYS,
    BackendAdapter,
    BackendExecutor,
    BackendJob,
    BackendSettings,
    DuplicateJobError,
    JobStatus,
    worker_environment,
)
from wove.plugins import (
    ExecutorSettings,
    FilePath,
    Security,
    config_location,
    given_options,
    setting,
    setting_keys,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_TTL_SECONDS",
    "KUBERNETES_JOBS_CONFIG_KEYS",
    "PAYLOAD_FILE",
    "KubernetesJobsAdapter",
    "KubernetesJobsExecutor",
    "KubernetesJobsSettings",
    "kubernetes_label_value",
    "kubernetes_name",
]

logger = logging.getLogger("wove_kubernetes_jobs")

DEFAULT_NAMESPACE: Final = "default"
#: Seconds Kubernetes keeps a finished Job (and, through it, its Pod and Secret).
DEFAULT_TTL_SECONDS: Final = 300
#: Where the payload Secret is mounted in the container, and the file the worker reads.
PAYLOAD_DIRECTORY: Final = "/var/run/wove/payload"
PAYLOAD_FILE: Final = f"{PAYLOAD_DIRECTORY}/payload"
#: A Secret object may hold at most 1 MiB; the payload is stored base64-encoded (4/3 larger).
SECRET_PAYLOAD_LIMIT: Final = 700 * 1024
CONTAINER_NAME: Final = "wove"
MANAGED_BY: Final = "wove"

_DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE: Final = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_RESERVED_ENV: Final = frozenset({"WOVE_SECRET", "WOVE_SECRET_KEY_ID", "WOVE_CALLBACK_TOKEN"})
_MAX_NAME: Final = 63
_DIGEST: Final = 10


class ResourceRequirements(ExecutorSettings, kw_only=True):
    """The container's ``resources``, as Kubernetes spells them."""

    requests: Annotated[
        Mapping[str, Any] | None, setting("minimum resources, such as `{'cpu': '500m'}`")
    ] = None
    limits: Annotated[
        Mapping[str, Any] | None, setting("maximum resources, such as `{'memory': '1Gi'}`")
    ] = None
    claims: Annotated[list[Any] | None, setting("dynamic resource claims")] = None


class KubernetesJobsSettings(BackendSettings, kw_only=True):
    """The ``executor_config`` of a ``kubernetes_jobs`` environment: the adapter's own keys,
    and the ones every backend takes."""

    image: Annotated[
        str,
        setting(
            "the container image the Jobs run, with Python, `wove-core[callback,dispatch]` and "
            "your task's modules installed",
            expect="an image reference, such as 'registry.example.com/app:1.4'",
            pattern=r"\S",
        ),
    ]
    namespace: Annotated[
        str,
        setting(
            "where Jobs, their Pods and Secrets are created",
            expect="a Kubernetes namespace name (a DNS-1123 label such as 'default' or "
            "'batch-jobs')",
            pattern=rf"^{_DNS_LABEL.pattern}$",
            max_length=63,
        ),
    ] = DEFAULT_NAMESPACE
    host: Annotated[
        str | None,
        setting(
            "the API server's URL (`https://10.0.0.1:6443`), without credentials; for proxies "
            "(`kubectl proxy` at `http://127.0.0.1:8001`) and test servers",
            expect="the API server's http:// or https:// URL, such as 'https://10.0.0.1:6443'",
            pattern=r"^https?://",
        ),
    ] = None
    kubeconfig: Annotated[
        FilePath | None, setting("a kubeconfig file", default="the default kubeconfig")
    ] = None
    context: Annotated[
        str | None,
        setting("a context in the kubeconfig", default="its current context", min_length=1),
    ] = None
    api_client: Annotated[
        client.ApiClient | None,
        setting(
            "a `kubernetes.client.ApiClient` you built; the adapter uses it and leaves it open",
            expect="a kubernetes.client.ApiClient",
        ),
    ] = None
    python: Annotated[
        str | tuple[str, ...],
        setting(
            "the interpreter command in the image: a string or a list (`['/opt/venv/bin/python']`)",
            expect="the interpreter command in the image, as a string ('python', "
            "'/opt/venv/bin/python') or a list of strings",
            min_length=1,
        ),
    ] = "python"
    resources: Annotated[
        ResourceRequirements | client.V1ResourceRequirements | None,
        setting(
            "the container's `{'requests': {...}, 'limits': {...}}`, or a `V1ResourceRequirements`",
            expect="a dict like {'requests': {'cpu': '500m', 'memory': '256Mi'}, 'limits': "
            "{'memory': '1Gi'}} or a V1ResourceRequirements",
        ),
    ] = None
    service_account: Annotated[
        str | None,
        setting(
            "the Pods' service account; without one, no API token is mounted (workers never "
            "call the API)",
            expect="a service account name",
            default="the namespace's default",
            min_length=1,
        ),
    ] = None
    env: Annotated[
        Mapping[Annotated[str, setting(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")], str],
        setting(
            "extra plain environment variables for the container",
            expect="a dict of environment variable names to string values (for values from "
            "Secrets or ConfigMaps use job_template)",
            reserved=dict.fromkeys(
                sorted(_RESERVED_ENV),
                "the adapter passes it from a Secret, never as a plain value in the Job spec",
            ),
        ),
    ] = {}
    labels: Annotated[Mapping[str, str], setting("extra labels on the Jobs, Pods and Secrets")] = {}
    job_template: Annotated[
        Callable[[client.V1Job], client.V1Job] | None,
        setting(
            "a callable receiving the `V1Job` the adapter built and returning it, modified "
            "(node selectors, tolerations, image pull secrets, volumes, `valueFrom` env...); it "
            "must keep the name",
            expect="a callable taking the V1Job the adapter built and returning it (modified)",
        ),
    ] = None
    ttl_seconds_after_finished: Annotated[
        int | None,
        setting(
            "Kubernetes deletes a finished Job (with its Pod and Secret) after this many "
            "seconds; `0` deletes it at once, `None` keeps it",
            expect="an integer >= 0 (0 deletes a Job as soon as it finishes) or None (keep "
            "finished Jobs)",
            ge=0,
        ),
    ] = DEFAULT_TTL_SECONDS
    payload: Annotated[
        Literal["secret", "fetch"],
        setting(
            "`'secret'`: the signed payload travels in the run's Secret (payloads over "
            "`max_inline_payload_bytes` as a reference); `'fetch'`: the Secret holds only the "
            "signed reference, and every worker fetches its payload from the callback server",
            expect="'secret' (the signed payload travels in a Secret mounted into the Pod) or "
            "'fetch' (the Secret holds only a signed reference the worker fetches the payload "
            "with)",
        ),
    ] = "secret"
    worker_secret: Annotated[
        str | None,
        setting(
            "the name of a Secret of yours (in `namespace`) holding `WOVE_SECRET` (and "
            "optionally `WOVE_SECRET_KEY_ID`, `WOVE_CALLBACK_TOKEN`); without it the adapter "
            "copies them into each run's Secret",
            expect="the name of a Secret in the namespace, holding the key WOVE_SECRET",
            pattern=r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$",
        ),
    ] = None
    max_inline_payload_bytes: Annotated[
        int,
        setting(
            "larger payloads stay on the callback server; the Secret carries a signed "
            "reference. At most 700 KiB: a Secret holds at most 1 MiB, base64-encoded",
            expect=f"an integer from 0 to {SECRET_PAYLOAD_LIMIT}: a larger payload does not "
            "fit in a Kubernetes Secret (at most 1 MiB, stored base64-encoded) and is fetched "
            "from the callback server instead",
            default="512 KiB",
            ge=0,
            le=SECRET_PAYLOAD_LIMIT,
        ),
    ] = 512 * 1024


#: ``executor_config`` keys of the adapter, beyond the ones every backend takes.
KUBERNETES_JOBS_CONFIG_KEYS: Final = setting_keys(KubernetesJobsSettings) - BACKEND_CONFIG_KEYS


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST]


def kubernetes_name(job_id: str) -> str:
    """The Job (and Secret) name Wove uses for ``job_id`` (an idempotency key or a run id).

    A DNS-1123 label -- lowercase letters, digits and ``-``, starting and ending with a letter
    or digit, at most 63 characters -- is used unchanged, so run ids and keys such as
    ``invoice-42`` name their Job directly. Anything else is lowercased, each run of other
    characters becomes ``-``, it is cut to 52 characters, and ``-`` plus 10 hex digits of the
    original's SHA-256 are appended, so ``"Order 7/EU"`` becomes ``order-7-eu-<digest>`` and two
    keys differing only in replaced characters still get two Jobs.

    Example:
        >>> kubernetes_name("invoice-42")
        'invoice-42'
        >>> kubernetes_name("Order 7/EU").startswith("order-7-eu-")
        True
    """
    if len(job_id) <= _MAX_NAME and _DNS_LABEL.fullmatch(job_id):
        return job_id
    base = re.sub(r"[^a-z0-9]+", "-", job_id.lower())[: _MAX_NAME - _DIGEST - 1].strip("-")
    return f"{base or 'wove'}-{_digest(job_id)}"


def kubernetes_label_value(text: str) -> str:
    """``text`` as a valid label value: unchanged when it already is one (at most 63
    characters of ``[A-Za-z0-9_.-]``, alphanumeric at both ends), else sanitized like
    :func:`kubernetes_name` (case kept) with a digest of the original appended."""
    if len(text) <= _MAX_NAME and _LABEL_VALUE.fullmatch(text):
        return text
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[: _MAX_NAME - _DIGEST - 1]
    base = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", base)
    return f"{base or 'wove'}-{_digest(text)}"


@dataclasses.dataclass(frozen=True)
class _Handle:
    """What :meth:`KubernetesJobsAdapter.submit` returns: enough to find the Job again."""

    name: str
    uid: str


class KubernetesJobsAdapter(BackendAdapter):
    """Create, delete and poll Wove runs as Kubernetes Jobs; see the module docstring."""

    name = "kubernetes_jobs"
    settings_class = KubernetesJobsSettings

    def __init__(self) -> None:
        super().__init__()
        self._api: client.ApiClient | None = None
        self._owns_api = False
        self._settings: KubernetesJobsSettings | None = None
        self._secret_data: dict[str, str] = {}
        self._where = "the Kubernetes API"
        self.fetch_payloads = False

    # -- the BackendAdapter contract -----------------------------------------------------------
    async def start(self, environment_name: str, config: Mapping[str, Any]) -> None:
        where = config_location(environment_name, self.name)
        settings = self._settings = self.configured(
            KubernetesJobsSettings, environment_name, config
        )
        self.fetch_payloads = settings.payload == "fetch"
        if self.fetch_payloads:
            # Every payload stays on the callback server; the Secret carries only the signed
            # reference, so task code and arguments never reach etcd.
            self.max_inline_payload_bytes = 0
        self._secret_data = _worker_secrets(self.security, settings, where)
        if self._api is None:  # kept across weaves: one ApiClient (and its pool) per adapter
            made, self._owns_api = await self.call_blocking(_api_client, settings, where)
            self._api = made
        api = self._api
        self._where = str(api.configuration.host)
        namespace = settings.namespace
        try:
            await self.call_blocking(self._check, namespace)
        except Exception as error:
            await self.close()
            if isinstance(error, ApiException) and error.status in (401, 403):
                raise PermissionError(
                    f"{where}: the Kubernetes API at {self._where} refused to list Jobs in "
                    f"namespace {namespace!r} ({error.status} {error.reason}); the credentials "
                    "need create/get/list/delete on jobs and create/patch/delete on secrets "
                    "there"
                ) from error
            raise ConnectionError(
                f"{where}: cannot reach the Kubernetes API at {self._where} "
                f"({type(error).__name__}: {_short(error)}); check host/kubeconfig/context"
            ) from error

    async def submit(self, job: BackendJob) -> _Handle:
        return await self.call_blocking(self._submit, job)

    async def cancel(self, job: BackendJob) -> bool:
        handle: _Handle = job.handle
        return await self.call_blocking(self._delete, handle)

    async def status(self, job: BackendJob) -> JobStatus:
        handle: _Handle = job.handle
        return await self.call_blocking(self._status, handle)

    async def close(self) -> None:
        api, self._api = self._api, None
        if api is not None and self._owns_api:
            try:
                await self.call_blocking(api.close)
            except RuntimeError:
                # At interpreter exit no thread can start; closing the pool does not wait.
                api.close()  # type: ignore[no-untyped-call]
        await super().close()

    # -- building the objects ------------------------------------------------------------------
    def build_job(self, job: BackendJob, name: str) -> client.V1Job:
        """The Job for ``job`` before ``job_template`` sees it; public for tests and tools."""
        settings = self._require_settings()
        secret_name = settings.worker_secret or name
        env = [
            client.V1EnvVar(name=key, value=value) for key, value in sorted(settings.env.items())
        ]
        for key in sorted(_RESERVED_ENV):
            optional = settings.worker_secret is not None or key != "WOVE_SECRET"
            if settings.worker_secret is None and key not in self._secret_data:
                continue
            env.append(
                client.V1EnvVar(
                    name=key,
                    value_from=client.V1EnvVarSource(
                        secret_key_ref=client.V1SecretKeySelector(
                            name=secret_name, key=key, optional=optional
                        )
                    ),
                )
            )
        container = client.V1Container(
            name=CONTAINER_NAME,
            image=settings.image,
            command=[
                *_command(settings.python),
                *("-m", "wove.backend_worker", "--payload-file", PAYLOAD_FILE),
            ],
            env=env,
            resources=_resources(settings.resources),
            volume_mounts=[
                client.V1VolumeMount(
                    name="wove-payload", mount_path=PAYLOAD_DIRECTORY, read_only=True
                )
            ],
        )
        labels = self._labels(job)
        pod = client.V1PodSpec(
            restart_policy="Never",
            containers=[container],
            service_account_name=settings.service_account,
            # The worker talks only to the callback server, never to the Kubernetes API.
            automount_service_account_token=settings.service_account is not None,
            volumes=[
                client.V1Volume(
                    name="wove-payload",
                    secret=client.V1SecretVolumeSource(
                        secret_name=name,
                        items=[client.V1KeyToPath(key="payload", path="payload")],
                        default_mode=0o400,
                    ),
                )
            ],
        )
        return client.V1Job(
            api_version="batch/v1",
            kind="Job",
            metadata=client.V1ObjectMeta(
                name=name, labels=labels, annotations=self._annotations(job)
            ),
            spec=client.V1JobSpec(
                backoff_limit=0,  # Wove's retry policy decides about another attempt
                ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels), spec=pod
                ),
            ),
        )

    def _labels(self, job: BackendJob) -> dict[str, str]:
        settings = self._require_settings()
        return {
            **settings.labels,
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "wove.dev/run-id": job.run_id,
            "wove.dev/task": kubernetes_label_value(job.task_id),
            "wove.dev/environment": kubernetes_label_value(job.environment),
            "wove.dev/attempt": str(job.attempt),
        }

    @staticmethod
    def _annotations(job: BackendJob) -> dict[str, str]:
        annotations = {"wove.dev/task-id": job.task_id, "wove.dev/job-id": job.job_id}
        if job.idempotency_key is not None:
            annotations["wove.dev/idempotency-key"] = job.idempotency_key
        return annotations

    # -- blocking calls, run on the adapter's threads ------------------------------------------
    def _require_settings(self) -> KubernetesJobsSettings:
        if self._settings is None:
            raise RuntimeError("the kubernetes_jobs adapter was not started")
        return self._settings

    def _batch(self) -> client.BatchV1Api:
        if self._api is None:
            raise RuntimeError("the kubernetes_jobs adapter was closed")
        return client.BatchV1Api(self._api)

    def _core(self) -> client.CoreV1Api:
        if self._api is None:
            raise RuntimeError("the kubernetes_jobs adapter was closed")
        return client.CoreV1Api(self._api)

    def _check(self, namespace: str) -> None:
        self._batch().list_namespaced_job(namespace, limit=1)

    def _submit(self, job: BackendJob) -> _Handle:
        settings = self._require_settings()
        namespace = settings.namespace
        name = kubernetes_name(job.job_id)
        core, batch = self._core(), self._batch()
        secret = client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels=self._labels(job)),
            type="Opaque",
            string_data={"payload": job.payload, **self._secret_data},
        )
        try:
            core.create_namespaced_secret(namespace, secret)
        except ApiException as error:
            if error.status == 409:
                raise self._duplicate(name, "Secret") from error
            raise
        uid: str | None = None
        try:
            built = self.build_job(job, name)
            if settings.job_template is not None:
                built = _apply_template(settings.job_template, built, name)
            created = batch.create_namespaced_job(namespace, built)
            uid = str(created.metadata.uid if created.metadata else "")
            owner = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": name,
                "uid": uid,
                "blockOwnerDeletion": True,
            }
            core.patch_namespaced_secret(
                name, namespace, {"metadata": {"ownerReferences": [owner]}}
            )
        except BaseException as error:
            self._quietly_delete_secret(name)
            if isinstance(error, ApiException) and error.status == 409:
                raise self._duplicate(name, "Job") from error
            if uid is not None:  # the Job exists, but its Secret is gone: it cannot run
                self._delete(_Handle(name, uid))
            raise
        return _Handle(name, uid)

    def _duplicate(self, name: str, kind: str) -> DuplicateJobError:
        namespace = self._require_settings().namespace
        return DuplicateJobError(
            f"namespace {namespace!r} at {self._where} already holds a {kind} named {name!r}; "
            "finished Jobs are kept for ttl_seconds_after_finished"
        )

    def _quietly_delete_secret(self, name: str) -> None:
        try:
            self._core().delete_namespaced_secret(name, self._require_settings().namespace)
        except Exception:
            logger.debug("deleting Secret %r failed", name, exc_info=True)

    def _delete(self, handle: _Handle) -> bool:
        namespace = self._require_settings().namespace
        try:
            self._batch().delete_namespaced_job(
                handle.name,
                namespace,
                propagation_policy="Background",
                body=client.V1DeleteOptions(
                    propagation_policy="Background",
                    preconditions=client.V1Preconditions(uid=handle.uid),
                ),
            )
        except ApiException as error:
            if error.status in (404, 409):  # gone already, or a different Job by that name
                return False
            raise
        return True

    def _status(self, handle: _Handle) -> JobStatus:
        namespace = self._require_settings().namespace
        try:
            job = self._batch().read_namespaced_job_status(handle.name, namespace)
        except ApiException as error:
            if error.status == 404:
                return JobStatus(
                    "missing",
                    f"namespace {namespace!r} has no Job {handle.name!r} any more (deleted, or "
                    "removed by ttlSecondsAfterFinished)",
                )
            raise
        if job.metadata is None or job.metadata.uid != handle.uid:
            return JobStatus("missing", f"Job {handle.name!r} was replaced by another one")
        status = job.status
        if status is None:
            return JobStatus("pending")
        for condition in status.conditions or []:
            if condition.status != "True":
                continue
            if condition.type == "Failed":
                reason = condition.reason or "Failed"
                message = f": {condition.message}" if condition.message else ""
                return JobStatus("failed", f"{reason}{message}; {self._pods(handle)}")
            if condition.type == "Complete":
                return JobStatus("succeeded")
        if status.succeeded:
            return JobStatus("succeeded")
        if status.active:
            return JobStatus("running")
        if status.failed:
            return JobStatus("failed", f"{status.failed} failed pod(s); {self._pods(handle)}")
        return JobStatus("pending")

    def _pods(self, handle: _Handle) -> str:
        """How the Job's pods ended, for the error a failed Job's run fails with."""
        namespace = self._require_settings().namespace
        try:
            pods = (
                self._core()
                .list_namespaced_pod(namespace, label_selector=f"job-name={handle.name}")
                .items
            )
        except Exception as error:
            return f"its pods could not be listed ({type(error).__name__})"
        if not pods:
            return "no pod of it is left (deleted from outside, or evicted?)"
        described = []
        for pod in pods:
            phase = pod.status.phase if pod.status else "Unknown"
            words = f"pod {pod.metadata.name if pod.metadata else '?'} {phase}"
            for container in (pod.status.container_statuses or []) if pod.status else []:
                ended = container.state.terminated if container.state else None
                if ended is not None:
                    words += f" (exit code {ended.exit_code}, {ended.reason or 'terminated'})"
            described.append(words)
        return "; ".join(described)


# -- configuration --------------------------------------------------------------------------------
def _command(python: str | tuple[str, ...]) -> tuple[str, ...]:
    return (python,) if isinstance(python, str) else python


def _resources(
    resources: ResourceRequirements | client.V1ResourceRequirements | None,
) -> client.V1ResourceRequirements | None:
    if isinstance(resources, ResourceRequirements):
        return client.V1ResourceRequirements(**given_options(resources))
    return resources


def _worker_secrets(
    security: Security | None, settings: KubernetesJobsSettings, where: str
) -> dict[str, str]:
    """What each run's Secret carries besides the payload: the shared secret, its key id and
    the callback token, unless ``worker_secret`` names a Secret that holds them."""
    if settings.worker_secret is not None or security is None:
        return {}
    try:
        return worker_environment(security, callback_token=settings.callback_token, where=where)
    except InvalidOptionError as error:
        raise InvalidOptionError(
            f"{error}, or create a Secret yourself and set worker_secret"
        ) from None


def _api_client(settings: KubernetesJobsSettings, where: str) -> tuple[client.ApiClient, bool]:
    """The ApiClient from ``api_client``, ``host``, ``kubeconfig``/``context``, in-cluster
    configuration or the default kubeconfig, and whether the adapter owns (closes) it."""
    api, host = settings.api_client, settings.host
    kubeconfig, context = settings.kubeconfig, settings.context
    given = [key for key, value in (("api_client", api), ("host", host)) if value is not None]
    if kubeconfig is not None or context is not None:
        given.append("kubeconfig/context")
    if len(given) > 1:
        raise InvalidOptionError(
            f"{where}: set only one of api_client, host and kubeconfig/context, got "
            f"{' and '.join(given)}"
        )
    if api is not None:
        return api, False
    if host is not None:
        configuration = client.Configuration()
        configuration.host = host.rstrip("/")
        return client.ApiClient(configuration), True
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        try:
            kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except ConfigException as error:
            raise InvalidOptionError(f"{where}: in-cluster configuration failed: {error}") from None
        return client.ApiClient(configuration), True
    try:
        api = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=None if kubeconfig is None else os.fspath(kubeconfig), context=context
        )
    except (ConfigException, OSError) as error:
        raise InvalidOptionError(
            f"{where}: no Kubernetes API to talk to ({error}); set host='https://...', "
            "kubeconfig='/path/to/kubeconfig' (and context=...), or api_client=..., or run "
            "inside a cluster"
        ) from None
    return api, True


def _apply_template(
    hook: Callable[[client.V1Job], client.V1Job], built: client.V1Job, name: str
) -> client.V1Job:
    changed = hook(built)
    if not isinstance(changed, client.V1Job):
        raise TypeError(
            f"job_template returned {type(changed).__name__}, not the V1Job it was given"
        )
    if changed.metadata is None or changed.metadata.name != name:
        raise ValueError(f"job_template must keep the Job's name {name!r}")
    return changed


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else repr(error)


class KubernetesJobsExecutor(BackendExecutor):
    """The ``kubernetes_jobs`` executor: every run is a Kubernetes Job running
    ``python -m wove.backend_worker``; see :class:`KubernetesJobsAdapter` and the docs."""

    adapter_class = KubernetesJobsAdapter
