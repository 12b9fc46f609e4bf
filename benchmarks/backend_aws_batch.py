"""Benchmark the ``aws_batch`` executor: one task's round trip through Wove against Batch's own
submit-and-poll of the same addition.

    python benchmarks/backend_aws_batch.py [--rounds 3] [--repeat 3]

Starts its own local AWS Batch (``tests-integration/aws_batch_service.py``: moto's server on
127.0.0.1 with podman running each job as a container of this interpreter) and stops it after.

* through Wove: a one-task weave in an ``aws_batch`` environment -- the payload goes in the
  job's ``WOVE_PAYLOAD``, the container runs ``python -m wove_aws_batch.job``, which verifies
  it, claims the run on the callback server, runs the task and posts the result back;
* native: ``submit_job`` of a job whose command is ``python -c "print(2 + 3)"`` in the same job
  definition, then ``describe_jobs`` every 0.1 s until it is SUCCEEDED -- the usual way to wait
  for a Batch job (its output would then still have to be read from CloudWatch Logs).

Each round trip is dominated by moto's job thread (it checks each state every 0.5 s) and a
container start, so the default rounds are few. Needs ``wove-core`` and
``wove-aws-batch`` installed (editable is fine). The ratio is printed, never asserted.
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
import aws_batch_service

QUEUE = "wove-bench"
DEFINITION = "wove-bench"
WAIT_SECONDS = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))

    import wove
    from wove_aws_batch import register_job_definition

    batch = aws_batch_service.LocalBatch().start()
    client = batch.client()
    try:
        aws_batch_service.create_job_queue(batch, QUEUE)
        register_job_definition(
            client,
            DEFINITION,
            aws_batch_service.IMAGE,
            vcpus=1,
            memory=256,
            python=sys.executable,
            environment={"WOVE_SECRET": os.environ["WOVE_SECRET"]},  # a benchmark, not prod
            volumes=[(path, path) for _name, path in aws_batch_service.host_volumes()],
        )
        print(f"local AWS Batch at {batch.endpoint_url}, image {aws_batch_service.IMAGE}")
        wove.config(
            environments={
                "batch": {
                    "executor": "aws_batch",
                    "executor_config": {
                        "client": client,
                        "job_queue": QUEUE,
                        "job_definition": DEFINITION,
                        "python": sys.executable,
                        "security": "env:WOVE_SECRET",
                    },
                }
            }
        )

        def through_wove() -> int:
            with wove.weave(environment="batch") as w:

                @w.do
                def add() -> int:
                    return 2 + 3

            result: int = w.result.add
            return result

        def native() -> str:
            job = client.submit_job(
                jobName=f"native-{secrets.token_hex(4)}",
                jobQueue=QUEUE,
                jobDefinition=DEFINITION,
                containerOverrides={"command": [sys.executable, "-c", "print(2 + 3)"]},
            )
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline:
                described = client.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
                if described["status"] == "SUCCEEDED":
                    return str(described["jobId"])
                if described["status"] == "FAILED":
                    raise RuntimeError(f"Batch job {job['jobId']} failed: {described}")
                time.sleep(0.1)
            raise TimeoutError(f"Batch job {job['jobId']} did not finish in {WAIT_SECONDS}s")

        compare("aws_batch", through_wove, native, rounds=options.rounds, repeat=options.repeat)
    finally:
        client.close()
        batch.stop()


if __name__ == "__main__":
    main()
