"""Benchmark the ``kubernetes_jobs`` executor: one task's round trip through Wove against
creating a Kubernetes Job that runs the same trivial Python command and waiting for it to
complete, both with the official client against the stand-in API server.

    python benchmarks/backend_kubernetes_jobs.py [--rounds 5] [--repeat 5]

No real cluster is available here, so both sides talk to ``tests-integration/k8s_standin.py``
(started and stopped by this script), whose kubelet runs each Job's command as a local Python
process; the figures measure the API calls, the Pod process start and the waiting, not image
pulls or scheduling, which a real cluster adds to both sides alike.

* through Wove: a one-task weave in a ``kubernetes_jobs`` environment -- a Secret with the
  signed payload, the Job, the Secret's owner patch; the Pod's ``python -m wove.backend_worker``
  verifies the payload, claims the run on the callback server, runs ``2 + 3`` and posts its
  events back;
* native: ``create_namespaced_job`` of a Job running ``python -c "print(2 + 3)"``, then
  ``read_namespaced_job_status`` every 10 ms until it is complete; printed a second time with
  a native Job that also imports ``wove.backend_worker``, to separate the worker runtime's
  import time (paid by every Wove Pod) from Wove's own per-run work.

Needs ``wove-core`` and ``wove-kubernetes-jobs`` installed (editable is fine).
The ratio is printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

from _backend_roundtrip import compare

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests-integration"))
import k8s_standin

WAIT_SECONDS = 60
NAMESPACE = "wove-bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

    from kubernetes import client

    import wove

    standin = k8s_standin.StandIn.start()
    print(f"stand-in API server: {standin.url}")
    configuration = client.Configuration()
    configuration.host = standin.url
    api = client.ApiClient(configuration)
    batch = client.BatchV1Api(api)
    try:
        wove.config(
            environments={
                "k8s": {
                    "executor": "kubernetes_jobs",
                    "executor_config": {
                        "host": standin.url,
                        "namespace": NAMESPACE,
                        "image": "python:3.12-slim",  # ignored by the stand-in
                        "python": sys.executable,
                        "ttl_seconds_after_finished": 0,
                        "security": "env:WOVE_SECRET",
                    },
                }
            }
        )

        def through_wove() -> int:
            with wove.weave(environment="k8s") as w:

                @w.do
                def add() -> int:
                    return 2 + 3

            result: int = w.result.add
            return result

        def native_job(code: str) -> object:
            name = f"native-{secrets.token_hex(4)}"
            container = client.V1Container(
                name="main", image="python:3.12-slim", command=[sys.executable, "-c", code]
            )
            job = client.V1Job(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1JobSpec(
                    backoff_limit=0,
                    ttl_seconds_after_finished=30,  # long enough for the last status read
                    template=client.V1PodTemplateSpec(
                        spec=client.V1PodSpec(restart_policy="Never", containers=[container])
                    ),
                ),
            )
            batch.create_namespaced_job(NAMESPACE, job)
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline:
                status = batch.read_namespaced_job_status(name, NAMESPACE).status
                if status is not None and status.succeeded:
                    return status.succeeded
                if status is not None and status.failed:
                    raise RuntimeError(f"Job {name} failed: {status}")
                time.sleep(0.01)
            raise RuntimeError(f"Job {name} did not complete within {WAIT_SECONDS}s")

        def native() -> object:
            return native_job("print(2 + 3)")

        def native_with_imports() -> object:
            return native_job("import wove.backend_worker; print(2 + 3)")

        compare(
            "kubernetes_jobs", through_wove, native, rounds=options.rounds, repeat=options.repeat
        )
        # The same, against a native Job whose Python also imports the worker runtime (aiohttp,
        # cloudpickle, msgspec): what is left is Wove's own work per run.
        compare(
            "kubernetes_jobs (native imports the worker runtime too)",
            through_wove,
            native_with_imports,
            rounds=options.rounds,
            repeat=options.repeat,
        )
    finally:
        api.close()
        standin.stop()


if __name__ == "__main__":
    main()
