"""Backends whose client libraries disagree: install time where packaging can say so, else doctor.

arq pins ``redis<6``. Where a package declares what it needs, the resolver settles it at install
time: ``wove-taskiq[redis]`` next to ``wove-arq`` gets a taskiq-redis release that accepts
redis-py 5. kombu's Redis transport needs a newer redis-py only through kombu's ``redis`` extra,
which a plain ``celery`` install does not ask for: a plain ``wove-celery`` next to ``wove-arq``
installs cleanly and then refuses to start on a Redis broker. ``wove-celery[redis]`` lets the
resolver pick versions that fit together; without it, ``wove doctor`` names the mismatch.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from legacy import ROOT, clean_environ, make_venv, run

pytestmark = pytest.mark.timeout(900)

CELERY_ON_REDIS = """
WOVE_CONFIG = {
    "environments": {
        "jobs": {"executor": "celery", "executor_config": {"broker_url": "redis://127.0.0.1:6379/0"}},
    },
}
"""


def _venv(path: Path) -> Path:
    python = make_venv(path)
    run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    return python


def _install(python: Path, *requirements: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *requirements],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=clean_environ(),
        check=False,
    )


def _doctor(python: Path, project: Path) -> str:
    project.mkdir()
    (project / "wove_config.py").write_text(textwrap.dedent(CELERY_ON_REDIS))
    return run(python, "-m", "wove", "doctor", cwd=project, check=False)


def test_celery_beside_arq_without_the_redis_extra_is_named_by_doctor(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    done = _install(python, "./packages/wove-core", "./packages/wove-celery", "./packages/wove-arq")
    assert done.returncode == 0, done.stderr

    report = _doctor(python, tmp_path / "project")

    assert "environment 'jobs': 1 problem" in report, report
    assert "kombu's Redis transport needs redis" in report
    assert 'pip install "wove-celery[redis]"' in report


def test_celery_with_its_redis_extra_beside_arq_resolves_to_versions_that_fit(
    tmp_path: Path,
) -> None:
    python = _venv(tmp_path / "venv")
    done = _install(
        python, "./packages/wove-core", "./packages/wove-celery[redis]", "./packages/wove-arq"
    )
    assert done.returncode == 0, done.stderr

    report = _doctor(python, tmp_path / "project")

    assert "environment 'jobs': ok" in report, report


def test_taskiq_redis_beside_arq_resolves_at_install_time(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")

    done = _install(
        python, "./packages/wove-core", "./packages/wove-taskiq[redis]", "./packages/wove-arq"
    )

    assert done.returncode == 0, done.stderr
    run(python, "-m", "pip", "check")
    rows = json.loads(run(python, "-m", "wove", "plugins", "list", "--json", cwd=tmp_path))
    assert {row["name"]: row["ok"] for row in rows if row["name"] != "local"} == {
        "arq": True,
        "taskiq": True,
    }
