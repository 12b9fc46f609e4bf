"""The ``wove`` command: --version, plugins list, doctor and plugin worker services."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from wove import Executor
from wove._cli import main
from wove._registry import get_registry, reset_registry
from wove.plugins import hookimpl

ROW_KEYS = {
    "name",
    "distribution",
    "version",
    "kind",
    "requires",
    "missing",
    "ok",
    "install",
    "error",
}


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WOVE_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, so no wove_config.py is found above it by accident."""
    directory = tmp_path / "project"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


@pytest.fixture
def sentinel_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A throwaway distribution whose plugin requires a missing module and loads a backend."""
    site = tmp_path / "site"
    site.mkdir()
    dist_info = site / "acme_sentinel-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-sentinel\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[wove.executors]\nsentinel = acme_sentinel_plugin\n"
    )
    (site / "acme_sentinel_plugin.py").write_text(
        textwrap.dedent(
            """
            from wove.plugins import hookimpl

            def _load():
                from acme_sentinel_backend import SentinelExecutor
                return SentinelExecutor

            @hookimpl
            def register_executors(register):
                register(name="sentinel", kind="backend", load=_load,
                         requires=("json_backend_sentinel_xyz",))
            """
        )
    )
    (site / "acme_sentinel_backend.py").write_text(
        textwrap.dedent(
            """
            from wove import Executor

            class SentinelExecutor(Executor):
                kind = "backend"

                async def start(self, environment_name, environment_config, run_config):
                    pass

                async def send(self, frame):
                    pass

                async def recv(self):
                    return None

                async def stop(self):
                    pass
            """
        )
    )
    importlib.invalidate_caches()
    yield site
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(site)):
            del sys.modules[name]


def run_wove(
    *arguments: str, cwd: Path, extra_path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "wove", *arguments, cwd=cwd, extra_path=extra_path)


def run_python(
    *arguments: str, cwd: Path, extra_path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "WOVE_STRICT_PLUGINS"}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def column_starts(line: str) -> list[int]:
    return [match.start() for match in re.finditer(r"\S+", line)]


def write_config(directory: Path, source: str) -> Path:
    path = directory / "wove_config.py"
    path.write_text(textwrap.dedent(source))
    return path


class PigeonExecutor(Executor):
    kind = "network"
    config_keys = frozenset({"loft", "security"})

    async def start(self, environment_name, environment_config, run_config):
        pass

    async def send(self, frame):
        pass

    async def recv(self):
        return None

    async def stop(self):
        pass


# -- wove --version and usage ----------------------------------------------------------------


def test_version_prints_the_core_distribution_version(capsys):
    assert main(["--version"]) == 0

    assert capsys.readouterr().out == f"wove-core {importlib.metadata.version('wove-core')}\n"


def test_python_dash_m_wove_prints_the_version(workdir):
    done = run_wove("--version", cwd=workdir)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wove-core {importlib.metadata.version('wove-core')}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2

    assert "plugins" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["frobnicate"]) == 2

    assert "invalid choice" in capsys.readouterr().err


# -- wove plugins list -----------------------------------------------------------------------


def test_plugins_list_prints_an_aligned_table(capsys):
    assert main(["plugins", "list"]) == 0

    lines = capsys.readouterr().out.splitlines()
    header = lines[0]
    local = next(line for line in lines if line.startswith("local "))
    assert header.split() == ["NAME", "DISTRIBUTION", "VERSION", "KIND", "DEPS", "STATUS"]
    assert local.split() == [
        "local",
        "wove-core",
        importlib.metadata.version("wove-core"),
        "local",
        "ok",
        "ok",
    ]
    assert column_starts(header) == column_starts(local)


def test_plugins_without_subcommand_lists(capsys):
    assert main(["plugins"]) == 0

    assert "wove-core" in capsys.readouterr().out


def test_plugins_list_json_rows(capsys):
    assert main(["plugins", "list", "--json"]) == 0

    rows = json.loads(capsys.readouterr().out)
    [local] = [row for row in rows if row["name"] == "local"]
    assert set(local) == ROW_KEYS
    assert local == {
        "name": "local",
        "distribution": "wove-core",
        "version": importlib.metadata.version("wove-core"),
        "kind": "local",
        "requires": [],
        "missing": [],
        "ok": True,
        "install": "pip install wove-core",
        "error": None,
    }


def test_plugins_list_shows_broken_plugins_and_how_to_fix_them(capsys):
    class Broken:
        @hookimpl
        def register_executors(self, register):
            register(name="pigeon", kind="teleport", load=lambda: PigeonExecutor)

    get_registry().register_plugin(Broken(), distribution="acme-pigeon", version="0.1")

    assert main(["plugins", "list"]) == 0

    out = capsys.readouterr().out
    pigeon = next(line for line in out.splitlines() if line.startswith("pigeon "))
    assert "acme-pigeon" in pigeon
    assert "broken: executor 'pigeon' has kind 'teleport'" in pigeon
    assert "pigeon: pip install acme-pigeon" in out


def test_plugins_list_json_reports_missing_modules_without_importing_the_backend(
    sentinel_site, workdir
):
    script = textwrap.dedent(
        """
        import sys
        from wove._cli import main
        status = main(["plugins", "list", "--json"])
        imported = "acme_sentinel_backend" in sys.modules
        print("BACKEND IMPORTED" if imported else "backend not imported", file=sys.stderr)
        raise SystemExit(status)
        """
    )

    done = run_python("-c", script, cwd=workdir, extra_path=sentinel_site)

    assert done.returncode == 0, done.stderr
    assert "backend not imported" in done.stderr
    [row] = [row for row in json.loads(done.stdout) if row["name"] == "sentinel"]
    assert row["distribution"] == "acme-sentinel"
    assert row["kind"] == "backend"
    assert row["requires"] == ["json_backend_sentinel_xyz"]
    assert row["missing"] == ["json_backend_sentinel_xyz"]
    assert row["ok"] is False
    assert row["install"] == "pip install acme-sentinel"
    assert row["error"] is None


def test_loading_the_executor_does_import_the_backend(sentinel_site, workdir):
    # The control for the test above: the check it makes would see a backend import.
    script = textwrap.dedent(
        """
        import sys
        from wove._registry import get_registry
        get_registry().executor_class("sentinel", "jobs")
        assert "acme_sentinel_backend" in sys.modules
        """
    )

    done = run_python("-c", script, cwd=workdir, extra_path=sentinel_site)

    assert done.returncode == 0, done.stderr


def test_python_dash_m_wove_lists_plugins_as_json(sentinel_site, workdir):
    done = run_wove("plugins", "list", "--json", cwd=workdir, extra_path=sentinel_site)

    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    names = [row["name"] for row in rows]
    assert {"local", "sentinel"} <= set(names)
    assert names == sorted(names)
    assert all(set(row) == ROW_KEYS for row in rows)


def test_strict_mode_makes_the_command_fail_naming_the_distribution(
    sentinel_site, monkeypatch, capsys
):
    (sentinel_site / "acme_sentinel_plugin.py").write_text("raise ImportError('sabotaged')\n")
    importlib.invalidate_caches()
    monkeypatch.syspath_prepend(str(sentinel_site))
    monkeypatch.setenv("WOVE_STRICT_PLUGINS", "1")

    assert main(["plugins", "list"]) == 1

    err = capsys.readouterr().err
    assert "'acme-sentinel'" in err
    assert "sabotaged" in err


# -- wove doctor -----------------------------------------------------------------------------


def test_doctor_passes_on_the_built_in_configuration(workdir, capsys):
    assert main(["doctor"]) == 0

    out = capsys.readouterr().out
    assert "configuration: built-in defaults" in out
    assert "environment 'default': ok (executor 'local' from wove-core" in out
    assert "no problems found" in out


def test_doctor_reports_a_missing_executor_plugin_with_its_install_line(workdir, capsys):
    path = write_config(
        workdir,
        """
        WOVE_CONFIG = {"environments": {"jobs": {"executor": "nomad", "retries": 2}}}
        """,
    )

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert f"configuration: {path}" in out
    assert "environment 'default': ok" in out
    assert "environment 'jobs': 1 problem (executor 'nomad')" in out
    assert "pip install wove-nomad" in out


def test_doctor_reads_the_file_given_with_config(tmp_path, workdir, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = 'WOVE_CONFIG = {"environments": {"grid": {"executor": "nomad"}}}\n'
    path = write_config(elsewhere, config)

    assert main(["doctor", "--config", str(path)]) == 1

    out = capsys.readouterr().out
    assert f"configuration: {path.resolve()}" in out
    assert "pip install wove-nomad" in out


def test_doctor_rejects_a_typo_in_the_config_file(workdir, capsys):
    write_config(workdir, 'WOVE_CONFIG = {"environments": {"jobs": {"executer": "local"}}}\n')

    assert main(["doctor"]) == 2

    err = capsys.readouterr().err
    assert "cannot load the configuration" in err
    assert "'executer'" in err
    assert "Did you mean 'executor'?" in err


def test_doctor_reports_a_config_file_that_does_not_run(workdir, capsys):
    write_config(workdir, "WOVE_CONFIG = {\n")

    assert main(["doctor"]) == 2

    assert "SyntaxError" in capsys.readouterr().err


def test_doctor_reports_a_missing_config_file(workdir, capsys):
    assert main(["doctor", "--config", str(workdir / "absent.py")]) == 2

    assert "does not exist" in capsys.readouterr().err


def test_doctor_rejects_executor_config_keys_the_executor_does_not_accept(workdir, capsys):
    write_config(
        workdir,
        """
        WOVE_CONFIG = {
            "environments": {"default": {"executor": "local", "executor_config": {"lof": 1}}},
        }
        """,
    )

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert "executor_config key 'lof' is not accepted by 'local'" in out
    assert "Accepted keys: (none)" in out


def test_doctor_checks_keys_of_a_plugin_executor_with_a_hint(workdir, capsys):
    class Plugin:
        @hookimpl
        def register_executors(self, register):
            register(name="pigeon", kind="network", load=lambda: PigeonExecutor)

    get_registry().register_plugin(Plugin(), distribution="acme-pigeon", version="1.0")
    write_config(
        workdir,
        """
        WOVE_CONFIG = {
            "environments": {"birds": {"executor": "pigeon", "executor_config": {"lofts": 2}}},
        }
        """,
    )

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert "environment 'birds': 1 problem (executor 'pigeon' from acme-pigeon 1.0)" in out
    assert "Did you mean 'loft'?" in out


@pytest.mark.parametrize(
    "security",
    ["env:WOVE_DOCTOR_UNSET_SECRET", {"secret_env": "WOVE_DOCTOR_UNSET_SECRET"}],
)
def test_doctor_reports_a_secret_variable_that_is_not_set(workdir, capsys, monkeypatch, security):
    monkeypatch.delenv("WOVE_DOCTOR_UNSET_SECRET", raising=False)

    class Plugin:
        @hookimpl
        def register_executors(self, register):
            register(name="pigeon", kind="network", load=lambda: PigeonExecutor)

    get_registry().register_plugin(Plugin(), distribution="acme-pigeon", version="1.0")
    write_config(
        workdir,
        f"""
        WOVE_CONFIG = {{
            "environments": {{
                "birds": {{"executor": "pigeon", "executor_config": {{"security": {security!r}}}}},
            }},
        }}
        """,
    )

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert "environment 'birds': 1 problem" in out
    assert "'WOVE_DOCTOR_UNSET_SECRET', which is not set here" in out
    monkeypatch.setenv("WOVE_DOCTOR_UNSET_SECRET", "s3cret")
    assert main(["doctor"]) == 0


def test_doctor_reports_missing_required_modules(sentinel_site, monkeypatch, workdir, capsys):
    monkeypatch.syspath_prepend(str(sentinel_site))
    write_config(workdir, 'WOVE_CONFIG = {"environments": {"s": {"executor": "sentinel"}}}\n')

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert "'json_backend_sentinel_xyz'" in out
    assert "pip install acme-sentinel" in out
    assert "acme_sentinel_backend" not in sys.modules


def test_doctor_checks_an_executor_given_as_an_instance(workdir, capsys):
    write_config(
        workdir,
        """
        from wove import InProcessExecutor

        class Inline(InProcessExecutor):
            pass

        WOVE_CONFIG = {
            "environments": {"inline": {"executor": Inline(), "executor_config": {"x": 1}}},
        }
        """,
    )

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert "environment 'inline': 1 problem (executor instance of Inline)" in out
    assert "executor_config key 'x' is not accepted by 'Inline'" in out


def test_doctor_runs_plugin_diagnostics_for_matching_environments(workdir, capsys):
    seen = []

    class Plugin:
        @hookimpl
        def register_diagnostics(self, register):
            def loft_reachable(environment):
                seen.append(environment.name)
                return ["the loft does not answer"]

            def always_fails(environment):
                raise OSError("no route to host")

            register(name="loft", check=loft_reachable, executor="local")
            register(name="route", check=always_fails, executor="pigeon")

    get_registry().register_plugin(Plugin(), distribution="acme-diagnostics")

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert seen == ["default"]
    assert "environment 'default': 1 problem" in out
    assert "loft (acme-diagnostics): the loft does not answer" in out
    assert "no route to host" not in out


def test_doctor_reports_a_diagnostic_that_raises(workdir, capsys):
    class Plugin:
        @hookimpl
        def register_diagnostics(self, register):
            def always_fails(environment):
                raise OSError("no route to host")

            register(name="route", check=always_fails)

    get_registry().register_plugin(Plugin(), distribution="acme-diagnostics")

    assert main(["doctor"]) == 1

    assert "route (acme-diagnostics): the check itself failed: OSError: no route to host" in (
        capsys.readouterr().out
    )


def test_doctor_reports_a_broken_plugin_used_by_an_environment(workdir, capsys):
    class Broken:
        @hookimpl
        def register_executors(self, register):
            raise RuntimeError("boom")

    get_registry().register_plugin(Broken(), distribution="acme-pigeon", name="pigeon")
    write_config(workdir, 'WOVE_CONFIG = {"environments": {"birds": {"executor": "pigeon"}}}\n')

    assert main(["doctor"]) == 1

    out = capsys.readouterr().out
    assert "note: plugin 'pigeon' from 'acme-pigeon' is broken" in out
    assert "the plugin for executor 'pigeon' from 'acme-pigeon' is broken" in out
    assert "register_executors raised RuntimeError: boom" in out


# -- wove worker -----------------------------------------------------------------------------


def test_plugin_commands_run_under_wove_worker(capsys):
    class Plugin:
        @hookimpl
        def register_commands(self, register):
            def configure(parser):
                parser.add_argument("--bind", required=True)

            def run(args):
                print(f"serving on {args.bind}")
                return 3

            register(name="loft", help="serve a loft", configure=configure, run=run)

    get_registry().register_plugin(Plugin(), distribution="acme-loft")

    assert main(["worker", "loft", "--bind", "127.0.0.1:8765"]) == 3
    assert capsys.readouterr().out == "serving on 127.0.0.1:8765\n"

    assert main(["worker", "loft"]) == 2
    assert "--bind" in capsys.readouterr().err

    assert main(["worker", "--help"]) == 0
    assert "serve a loft" in capsys.readouterr().out


def test_unknown_worker_service_gives_the_install_line(capsys):
    assert main(["worker", "pigeon", "--bind", "0.0.0.0:80"]) == 2

    err = capsys.readouterr().err
    assert "no installed plugin provides 'wove worker pigeon'" in err
    assert "pip install wove-pigeon" in err


def test_worker_without_a_service_lists_the_installed_services(capsys):
    assert main(["worker"]) == 2

    captured = capsys.readouterr()
    shown = captured.out + captured.err
    # With service plugins installed the usage lists them; without, it says where they come from.
    assert "Executor plugins add services here" in shown or "pip install wove-http" in shown
