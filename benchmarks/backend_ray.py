"""Benchmark the ``ray`` executor: one task's round trip through Wove against Ray's own
submit-and-wait of the same addition.

    python benchmarks/backend_ray.py [--rounds 5] [--repeat 20] [--address HOST:PORT]

Without ``--address`` it starts its own single-node cluster (``ray start --head --block`` on
127.0.0.1, 2 CPUs, no dashboard; see ``tests-integration/ray_service.py``) and stops it by its
PID afterwards. This process is the Ray driver for both sides:

* through Wove: a one-task weave in a ``ray`` environment -- the payload is signed and submitted
  as a Ray task calling ``wove_ray.worker.run_payload``, whose worker verifies it, claims the run
  on the callback server, runs the task and posts its events back;
* native: ``ray.get(add.remote(2, 3))`` for a ``@ray.remote`` function doing the same addition.

Needs ``wove-core`` and ``wove-ray`` installed (editable is fine). The ratio is
printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from _backend_roundtrip import compare

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests-integration"))
import ray_service

WAIT_SECONDS = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--address", help="an existing cluster (its workers need WOVE_SECRET)")
    options = parser.parse_args()
    os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))
    ray_service.configure_driver_environment()

    import ray

    import wove

    head = None
    address = options.address
    if address is None:
        head = ray_service.RayHead(num_cpus=2)  # inherits WOVE_SECRET for its workers
        head.start()
        address = head.address
    print(f"cluster: {address}")
    try:
        wove.config(
            environments={
                "ray": {
                    "executor": "ray",
                    "executor_config": {"address": address, "security": "env:WOVE_SECRET"},
                }
            }
        )

        def through_wove() -> int:
            with wove.weave(environment="ray") as w:

                @w.do
                def add() -> int:
                    return 2 + 3

            result: int = w.result.add
            return result

        def plus(x: int, y: int) -> int:
            return x + y

        add = ray.remote(plus).options(max_retries=0)

        def native() -> int:
            result: int = ray.get(add.remote(2, 3), timeout=WAIT_SECONDS)
            if result != 5:
                raise RuntimeError(f"Ray gave {result!r}")
            return result

        through_wove()  # connects the driver (ray.init) before native() uses it
        compare("ray", through_wove, native, rounds=options.rounds, repeat=options.repeat)
    finally:
        ray.shutdown()
        if head is not None:
            head.close()


if __name__ == "__main__":
    main()
