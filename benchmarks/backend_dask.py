"""Benchmark the ``dask`` executor against Dask's own submit-and-wait of the same function.

    python benchmarks/backend_dask.py [--rounds 5] [--repeat 20]

Both sides go through one Dask cluster started here (``tests-integration/dask_service.py``:
``dask scheduler`` and one ``dask worker`` with 2 threads, on 127.0.0.1). Wove's side is a
one-task weave (signed payload, ``run_payload`` on the worker, the worker runtime, events
posted back to the callback server); Dask's side is ``client.submit(trivial, pure=False)``
then ``future.result()`` on a client of its own. The figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def trivial() -> int:
    """The function both sides run."""
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()

    sys.path.insert(0, str(HERE.parent / "tests-integration"))
    from distributed import Client

    import dask_service
    import wove
    from _backend_roundtrip import compare
    from wove._environments import reset_environments

    os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))
    cluster = dask_service.DaskCluster(nthreads=2).start()
    try:
        with Client(cluster.address, set_as_default=False) as client:
            wove.config(
                environments={
                    "dask": {
                        "executor": "dask",
                        "executor_config": {
                            "address": cluster.address,
                            "security": "env:WOVE_SECRET",
                        },
                    }
                }
            )

            def through_wove() -> object:
                with wove.weave(environment="dask") as w:
                    w.do(trivial)
                return w.result.trivial

            def native() -> object:
                return client.submit(trivial, pure=False).result(timeout=30)

            try:
                compare("dask", through_wove, native, rounds=options.rounds, repeat=options.repeat)
            finally:
                reset_environments()  # closes the environment's client before the cluster stops
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
