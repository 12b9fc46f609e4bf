"""Registering a job definition that runs Wove jobs.

Any container job definition works as long as its image has Python with ``wove-aws-batch``
installed and its container gets ``WOVE_SECRET``: the adapter overrides the command and adds
``WOVE_PAYLOAD`` for every job. :func:`register_job_definition` writes one with those pieces in
place, so the common case is one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["register_job_definition"]


def register_job_definition(
    client: Any,
    name: str,
    image: str,
    *,
    vcpus: float = 1,
    memory: int = 2048,
    python: str = "python3",
    secrets: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    job_role_arn: str | None = None,
    execution_role_arn: str | None = None,
    platform: Literal["EC2", "FARGATE"] = "EC2",
    volumes: Sequence[tuple[str, str]] = (),
    timeout_seconds: int | None = None,
    retry_attempts: int = 1,
    container_properties: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register (a new revision of) a container job definition for Wove jobs; return its ARN.

    Its default command is ``<python> -m wove_aws_batch.job``, the one the adapter also sets on
    each job, so a job submitted by hand with ``WOVE_PAYLOAD`` runs the same way.

    Args:
        client: a boto3 Batch client (``boto3.client("batch")``).
        name: the job definition's name (what ``job_definition`` in ``executor_config`` names).
        image: the container image; it needs Python with ``wove-aws-batch`` (and your tasks'
            packages) installed.
        vcpus, memory: the container's resources (vCPUs, MiB), as ``resourceRequirements``.
        python: the interpreter inside the image.
        secrets: environment variable -> Secrets Manager secret ARN or SSM parameter ARN/name,
            resolved by Batch when the container starts: the way to give jobs ``WOVE_SECRET``
            (and ``WOVE_CALLBACK_TOKEN``) without showing them in any job description. Needs
            ``execution_role_arn`` allowed to read them.
        environment: plain environment variables (visible to anyone who may describe the job
            definition; never put the secret here outside tests).
        job_role_arn: the IAM role the task's code runs as.
        execution_role_arn: the role ECS uses to pull the image and read ``secrets``
            (required on Fargate).
        platform: ``"EC2"`` or ``"FARGATE"``.
        volumes: ``(host path, container path)`` bind mounts (EC2 only).
        timeout_seconds: Batch terminates an attempt running longer (Wove's own
            ``timeout``/``delivery_timeout`` are checked by the weave anyway).
        retry_attempts: Batch's own attempts per job (1-10). A retried job cannot claim a run
            that already started, so only a job that died before starting the task reruns it.
        container_properties: any other ``containerProperties`` fields, merged last (for
            example ``networkConfiguration`` or ``fargatePlatformConfiguration``).
        tags: tags of the job definition.
    """
    properties: dict[str, Any] = {
        "image": image,
        "command": [python, "-m", "wove_aws_batch.job"],
        "resourceRequirements": [
            {"type": "VCPU", "value": f"{vcpus:g}"},
            {"type": "MEMORY", "value": str(memory)},
        ],
    }
    if environment:
        properties["environment"] = [
            {"name": key, "value": value} for key, value in environment.items()
        ]
    if secrets:
        properties["secrets"] = [
            {"name": key, "valueFrom": value} for key, value in secrets.items()
        ]
    if job_role_arn is not None:
        properties["jobRoleArn"] = job_role_arn
    if execution_role_arn is not None:
        properties["executionRoleArn"] = execution_role_arn
    if volumes:
        named = [(f"wove{index}", host, inside) for index, (host, inside) in enumerate(volumes)]
        properties["volumes"] = [
            {"name": volume, "host": {"sourcePath": host}} for volume, host, _inside in named
        ]
        properties["mountPoints"] = [
            {"sourceVolume": volume, "containerPath": inside, "readOnly": False}
            for volume, _host, inside in named
        ]
    properties.update(container_properties or {})
    request: dict[str, Any] = {
        "jobDefinitionName": name,
        "type": "container",
        "containerProperties": properties,
        "platformCapabilities": [platform],
        "retryStrategy": {"attempts": retry_attempts},
    }
    if timeout_seconds is not None:
        request["timeout"] = {"attemptDurationSeconds": timeout_seconds}
    if tags:
        request["tags"] = dict(tags)
    answer = client.register_job_definition(**request)
    arn: str = answer["jobDefinitionArn"]
    return arn
