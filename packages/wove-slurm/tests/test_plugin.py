"""The ``slurm`` plugin: its entry point, its metadata, and what importing it costs."""

from __future__ import annotations

import pytest

import wove_slurm
from wove.backends import BackendExecutor
from wove.testing import PluginConformance
from wove_slurm import SlurmAdapter, SlurmExecutor


def test_public_names() -> None:
    assert wove_slurm.__all__ == [
        "SLURM_CONFIG_KEYS",
        "SlurmAdapter",
        "SlurmExecutor",
        "SlurmJob",
        "job_script",
        "slurm_job_name",
        "write_payload",
    ]
    assert all(getattr(wove_slurm, name) for name in wove_slurm.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = wove_slurm.Nope


def test_executor_drives_the_slurm_adapter_and_accepts_its_keys() -> None:
    assert issubclass(SlurmExecutor, BackendExecutor)
    assert SlurmExecutor.adapter_class is SlurmAdapter
    assert SlurmExecutor.config_keys is not None
    assert SlurmExecutor.config_keys >= wove_slurm.SLURM_CONFIG_KEYS
    assert {
        "job_name",
        "partition",
        "account",
        "time_limit",
        "sbatch_options",
        "python",
        "payload_dir",
        "mode",
        "security",
    } <= SlurmExecutor.config_keys


class TestSlurmPlugin(PluginConformance):
    """Entry point, metadata, and import cost, checked by the shared plugin suite."""

    executor_name = "slurm"
    distribution = "wove-slurm"
    kind = "backend"
    requires = ("cloudpickle", "aiohttp")
    backend_modules = ("wove_slurm._adapter", "wove_slurm.job")
