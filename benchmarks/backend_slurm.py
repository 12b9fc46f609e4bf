"""Benchmark the ``slurm`` executor against Slurm's own submit-and-wait of the same function.

    python benchmarks/backend_slurm.py [--rounds 3] [--repeat 5]

Both sides go through one single-node Slurm cluster started here
(``tests-integration/slurm_service.py``: munged, slurmctld and slurmd on 127.0.0.1). Wove's side
is a one-task weave (payload file, ``sbatch``, ``python -m wove.backend_worker`` in the job,
events posted back to the callback server). Slurm's side submits a batch job that runs the same
function with the same interpreter (``python -c 'from backend_slurm import trivial; ...'``),
polls ``squeue`` every 50 ms until the job has completed, and reads the printed value from the
job's output file -- faster than ``sbatch --wait``, which polls with growing sleeps of seconds.
Both pay for one job and one interpreter start; the figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def trivial() -> int:
    """The function both sides run."""
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()

    sys.path.insert(0, str(HERE.parent / "tests-integration"))
    import slurm_service
    import wove
    from _backend_roundtrip import compare
    from wove._environments import reset_environments

    os.environ.setdefault("WOVE_SECRET", secrets.token_hex(32))
    cluster = slurm_service.SlurmCluster().start()
    env = {**os.environ, **cluster.env}
    scratch = Path(tempfile.mkdtemp(prefix="wove-slurm-bench-"))
    try:
        wove.config(
            environments={
                "slurm": {
                    "executor": "slurm",
                    "executor_config": {
                        "slurm_conf": str(cluster.conf),
                        "payload_dir": str(scratch),
                        "security": "env:WOVE_SECRET",
                        "status_interval": 1.0,
                    },
                }
            }
        )

        def through_wove() -> object:
            with wove.weave(environment="slurm") as w:
                w.do(trivial)
            return w.result.trivial

        command = f"{shlex.quote(sys.executable)} -c " + shlex.quote(
            f"import sys; sys.path.insert(0, {str(HERE)!r}); "
            "from backend_slurm import trivial; print(trivial())"
        )

        def native() -> object:
            output = scratch / f"native-{secrets.token_hex(4)}.out"
            job = subprocess.run(
                ["sbatch", "--parsable", f"--output={output}", "--wrap", command],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            while True:
                state = subprocess.run(
                    ["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                if state == "COMPLETED":
                    break
                if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
                    raise RuntimeError(f"Slurm job {job} ended {state}")
                time.sleep(0.05)
            value = int(output.read_text().split()[-1])
            output.unlink()
            return value

        try:
            compare("slurm", through_wove, native, rounds=options.rounds, repeat=options.repeat)
        finally:
            reset_environments()  # stops the environment before the cluster goes
    finally:
        cluster.stop()
        for leftover in scratch.iterdir():
            leftover.unlink()
        scratch.rmdir()


if __name__ == "__main__":
    main()
