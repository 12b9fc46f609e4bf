"""Plugin discovery through real entry points: metadata, laziness, broken and duplicate plugins."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wove import Executor, InProcessExecutor
from wove._errors import DuplicatePluginError, MissingExecutorPluginError, PluginError
from wove._registry import Registry, get_registry, reset_registry
from wove.plugins import hookimpl

InstallDistribution = Callable[..., Path]

# A plugin module template: `register_executors` registers NAME with KIND, REQUIRES and a load
# that imports BACKEND (a module of its own, so tests can see whether it was imported).
PLUGIN_SOURCE = """
from wove.plugins import hookimpl

def _load():
    from {backend} import BackendExecutor
    return BackendExecutor

@hookimpl
def register_executors(register):
    register(name={name!r}, kind={kind!r}, requires={requires!r}, load=_load,
             description="a throwaway plugin")
"""

BACKEND_SOURCE = """
from wove import Executor

class BackendExecutor(Executor):
    kind = {kind!r}

    async def start(self, environment_name, environment_config, run_config):
        pass

    async def send(self, frame):
        pass

    async def recv(self):
        return None

    async def stop(self):
        pass
"""


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WOVE_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def install_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InstallDistribution]:
    """Write throwaway distributions (dist-info + modules) into a directory on ``sys.path``."""
    site = tmp_path / "site"
    site.mkdir()

    def install(
        name: str,
        entry_points: dict[str, str],
        modules: dict[str, str],
        version: str = "1.0",
    ) -> Path:
        dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        lines = ["[wove.executors]", *(f"{ep} = {target}" for ep, target in entry_points.items())]
        (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
        if str(site) not in sys.path:
            monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        return site

    yield install
    for module_name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(site)):
            del sys.modules[module_name]


def plugin_module(
    name: str, backend: str, kind: str = "backend", requires: tuple[str, ...] = ()
) -> str:
    return PLUGIN_SOURCE.format(name=name, backend=backend, kind=kind, requires=requires)


def install_plugin(
    install: InstallDistribution,
    distribution: str,
    name: str,
    *,
    kind: str = "backend",
    requires: tuple[str, ...] = (),
    entry_point: str | None = None,
) -> str:
    """Install a working throwaway plugin; return its module prefix."""
    prefix = f"{distribution.replace('-', '_')}_{name}"
    install(
        distribution,
        {entry_point or name: f"{prefix}_plugin"},
        {
            f"{prefix}_plugin": plugin_module(name, f"{prefix}_backend", kind, requires),
            f"{prefix}_backend": BACKEND_SOURCE.format(kind=kind),
        },
    )
    return prefix


class PigeonExecutor(Executor):
    kind = "network"

    async def start(self, environment_name, environment_config, run_config):
        pass

    async def send(self, frame):
        pass

    async def recv(self):
        return None

    async def stop(self):
        pass


class PigeonPlugin:
    """An in-memory plugin, registered with ``register_plugin`` the way llm's tests do."""

    def __init__(self, *, name="pigeon", kind="network", load=lambda: PigeonExecutor, **extra):
        self.offer = {"name": name, "kind": kind, "load": load, **extra}

    @hookimpl
    def register_executors(self, register):
        register(**self.offer)


# -- the built-in local plugin ---------------------------------------------------------------


def test_local_plugin_is_discovered_with_its_metadata():
    info = get_registry().plugin("local")

    assert info is not None
    assert info.name == "local"
    assert info.distribution == "wove-core"
    assert info.version == importlib.metadata.version("wove-core")
    assert info.kind == "local"
    assert info.requires == ()
    assert info.install == "pip install wove-core"
    assert not info.is_broken
    assert info.missing_modules() == ()


def test_local_executor_class_is_loaded_once_and_cached():
    from wove import LocalExecutor

    registry = get_registry()
    first = registry.executor_class("local", "default")

    assert first is LocalExecutor
    assert issubclass(first, InProcessExecutor)
    assert registry.executor_class("local", "default") is first
    registry.check_requirements("local")


def test_registry_is_process_wide_until_reset():
    registry = get_registry()
    assert get_registry() is registry

    reset_registry()

    assert get_registry() is not registry


def test_importing_wove_discovers_nothing():
    script = textwrap.dedent(
        """
        import sys
        import wove
        import wove._registry as registry
        assert registry._registry is None, "import wove discovered plugins"
        assert "wove._local" not in sys.modules, "import wove imported a plugin"
        registry.get_registry()
        assert "wove._local" in sys.modules
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


# -- third-party plugins through real entry points -------------------------------------------


def test_third_party_plugin_is_discovered_with_distribution_metadata(install_distribution):
    install_plugin(
        install_distribution, "acme-pigeon", "pigeon", kind="network", requires=("json",)
    )

    info = get_registry().plugin("pigeon")

    assert info is not None
    assert (info.distribution, info.version, info.kind) == ("acme-pigeon", "1.0", "network")
    assert info.requires == ("json",)
    assert info.description == "a throwaway plugin"
    assert info.missing_modules() == ()
    names = [plugin.name for plugin in get_registry().plugins()]
    assert {"local", "pigeon"} <= set(names)
    assert names == sorted(names)


def test_listing_and_checking_never_import_the_backend(install_distribution):
    prefix = install_plugin(
        install_distribution, "acme-raven", "raven", requires=("wove_absent_backend_xyz",)
    )
    registry = get_registry()

    info = registry.plugin("raven")
    assert info is not None
    assert info.missing_modules() == ("wove_absent_backend_xyz",)
    with pytest.raises(PluginError, match="wove_absent_backend_xyz") as raised:
        registry.check_requirements("raven", "jobs")
    assert "pip install acme-raven" in str(raised.value)
    assert f"{prefix}_backend" not in sys.modules

    executor_class = registry.executor_class("raven", "jobs")

    assert executor_class.__module__ == f"{prefix}_backend"


def test_requirement_is_checked_by_top_level_module(install_distribution):
    install_plugin(install_distribution, "acme-owl", "owl", requires=("json.decoder", "email"))

    info = get_registry().plugin("owl")

    assert info is not None
    assert info.missing_modules() == ()


def test_broken_plugin_is_reported_not_fatal(install_distribution, caplog):
    install_distribution(
        "acme-broken",
        {"brittle": "acme_brittle_plugin"},
        {"acme_brittle_plugin": "raise ImportError('the brittle plugin cannot load')\n"},
    )

    with caplog.at_level(logging.WARNING, logger="wove._registry"):
        registry = get_registry()

    [broken] = registry.broken()
    assert (broken.name, broken.distribution, broken.version) == ("brittle", "acme-broken", "1.0")
    assert broken.error is not None
    assert "ImportError: the brittle plugin cannot load" in broken.error
    assert registry.plugin("local") is not None
    assert not registry.plugin("local").is_broken
    assert "acme-broken" in caplog.text
    assert "WOVE_STRICT_PLUGINS" in caplog.text
    with pytest.raises(PluginError, match=r"'brittle'.*'acme-broken' is broken"):
        registry.executor_class("brittle", "jobs")


def test_broken_plugin_is_fatal_in_strict_mode(install_distribution, monkeypatch):
    install_distribution(
        "acme-broken",
        {"brittle": "acme_brittle_plugin"},
        {"acme_brittle_plugin": "raise ImportError('the brittle plugin cannot load')\n"},
    )
    monkeypatch.setenv("WOVE_STRICT_PLUGINS", "1")

    with pytest.raises(PluginError, match="distribution 'acme-broken'") as raised:
        get_registry()

    assert "entry point brittle = acme_brittle_plugin" in str(raised.value)
    assert "the brittle plugin cannot load" in str(raised.value)


def test_hook_that_raises_makes_the_plugin_broken(install_distribution):
    install_distribution(
        "acme-grumpy",
        {"grumpy": "acme_grumpy_plugin"},
        {
            "acme_grumpy_plugin": """
            from wove.plugins import hookimpl

            @hookimpl
            def register_executors(register):
                raise RuntimeError("no executors today")
            """
        },
    )

    [broken] = get_registry().broken()

    assert broken.name == "grumpy"
    assert broken.error == "register_executors raised RuntimeError: no executors today"


def test_entry_point_name_must_be_the_executor_name(install_distribution):
    install_plugin(install_distribution, "acme-dove", "dove", entry_point="pigeon")

    registry = get_registry()

    [broken] = registry.broken()
    assert broken.name == "pigeon"
    assert "entry point 'pigeon' registers executor 'dove'" in (broken.error or "")
    assert registry.plugin("dove") is None


def test_unknown_kind_makes_the_plugin_broken(install_distribution):
    install_plugin(install_distribution, "acme-odd", "odd", kind="teleport")

    [broken] = get_registry().broken()

    assert "kind 'teleport'" in (broken.error or "")
    assert "'backend'" in (broken.error or "")


def test_duplicate_executor_names_name_both_distributions(install_distribution):
    install_plugin(install_distribution, "acme-one", "twin")
    install_plugin(install_distribution, "acme-two", "twin")

    with pytest.raises(DuplicatePluginError, match="'acme-one' and 'acme-two'"):
        get_registry()


def test_duplicate_of_the_local_executor_is_an_error(install_distribution):
    install_plugin(install_distribution, "acme-local", "local", kind="local")

    with pytest.raises(DuplicatePluginError) as raised:
        get_registry()

    assert set(raised.value.distributions) == {"acme-local", "wove-core"}
    assert "'acme-local'" in str(raised.value)
    assert "'wove-core'" in str(raised.value)


def test_duplicate_is_an_error_even_when_one_plugin_is_broken(install_distribution):
    install_plugin(install_distribution, "acme-one", "twin")
    install_distribution(
        "acme-two", {"twin": "acme_two_twin_plugin"}, {"acme_two_twin_plugin": "1/0"}
    )

    with pytest.raises(DuplicatePluginError, match=r"acme-one.*acme-two"):
        get_registry()


# -- lookups the engine makes ----------------------------------------------------------------


def test_unknown_executor_gives_the_install_line():
    with pytest.raises(MissingExecutorPluginError, match="pip install wove-nomad") as raised:
        get_registry().executor_class("nomad", "jobs")

    assert "environment 'jobs'" in str(raised.value)
    assert "'local'" in str(raised.value)


def test_unknown_executor_install_line_uses_dashes():
    with pytest.raises(MissingExecutorPluginError, match="pip install wove-google-batch"):
        get_registry().check_requirements("google_batch", "batch")


def test_load_must_return_an_executor_subclass():
    registry = get_registry()
    registry.register_plugin(PigeonPlugin(load=lambda: object), distribution="acme-pigeon")

    with pytest.raises(PluginError, match=r"not a subclass of wove\.Executor"):
        registry.executor_class("pigeon", "jobs")


def test_load_must_return_a_class_of_the_registered_kind():
    registry = get_registry()
    registry.register_plugin(PigeonPlugin(kind="backend"), distribution="acme-pigeon")

    with pytest.raises(PluginError, match=r"kind 'backend' but PigeonExecutor\.kind is 'network'"):
        registry.executor_class("pigeon", "jobs")


def test_load_that_cannot_import_its_backend_names_the_install_line():
    def load():
        raise ModuleNotFoundError("No module named 'pigeon_sdk'")

    registry = get_registry()
    registry.register_plugin(PigeonPlugin(load=load), distribution="acme-pigeon")

    with pytest.raises(PluginError, match=r"pigeon_sdk.*pip install acme-pigeon"):
        registry.executor_class("pigeon", "jobs")


# -- in-memory plugins -----------------------------------------------------------------------


def test_in_memory_plugin_registers_and_unregisters_everything():
    class Plugin:
        @hookimpl
        def register_executors(self, register):
            register(name="pigeon", kind="network", load=lambda: PigeonExecutor)

        @hookimpl
        def register_commands(self, register):
            register(name="loft", help="run a loft", configure=lambda parser: None, run=lambda a: 0)

        @hookimpl
        def register_diagnostics(self, register):
            register(name="loft-reachable", check=lambda environment: [], executor="pigeon")

    registry = get_registry()
    installed_commands = {command.name for command in registry.commands()}
    installed_diagnostics = {d.name for d in registry.diagnostics()}
    plugin = Plugin()
    registry.register_plugin(plugin, distribution="acme-pigeon", version="2.0", name="pigeon")

    assert registry.executor_class("pigeon", "jobs") is PigeonExecutor
    assert registry.plugin("pigeon").version == "2.0"
    assert {command.name for command in registry.commands()} - installed_commands == {"loft"}
    added = [
        (d.name, d.executor) for d in registry.diagnostics() if d.name not in installed_diagnostics
    ]
    assert added == [("loft-reachable", "pigeon")]

    registry.unregister_plugin(plugin)

    assert registry.plugin("pigeon") is None
    assert {command.name for command in registry.commands()} == installed_commands
    assert {d.name for d in registry.diagnostics()} == installed_diagnostics
    with pytest.raises(MissingExecutorPluginError):
        registry.executor_class("pigeon", "jobs")


def test_in_memory_duplicate_names_both_distributions():
    with pytest.raises(DuplicatePluginError, match="'wove-core' and 'acme-local'"):
        get_registry().register_plugin(PigeonPlugin(name="local"), distribution="acme-local")


def test_misspelled_hook_makes_the_plugin_broken():
    class Plugin:
        @hookimpl
        def register_executor(self, register):  # singular: no such hook
            register(name="pigeon", kind="network", load=lambda: PigeonExecutor)

    registry = get_registry()
    registry.register_plugin(Plugin(), distribution="acme-typo", name="pigeon")

    [broken] = registry.broken()
    assert "unknown hook 'register_executor'" in (broken.error or "")
    assert registry.plugin("pigeon") is broken


def test_requires_must_be_a_sequence_of_module_names():
    registry = get_registry()
    registry.register_plugin(PigeonPlugin(requires="pigeon_sdk"), distribution="acme-pigeon")

    [broken] = registry.broken()
    assert broken.name == "pigeon"
    assert "requires must be a sequence of module names" in (broken.error or "")


def test_commands_must_be_unique_across_plugins():
    def commands_plugin():
        class Plugin:
            @hookimpl
            def register_commands(self, register):
                register(name="loft", help="", configure=lambda parser: None, run=lambda a: 0)

        return Plugin()

    registry = get_registry()
    registry.register_plugin(commands_plugin(), distribution="acme-one")
    registry.register_plugin(commands_plugin(), distribution="acme-two")

    [broken] = registry.broken()
    assert broken.distribution == "acme-two"
    assert "'wove worker loft' is already provided by 'acme-one'" in (broken.error or "")
    loft = [command for command in registry.commands() if command.name == "loft"]
    assert [command.distribution for command in loft] == ["acme-one"]


def test_strict_mode_applies_to_in_memory_plugins():
    registry = Registry(strict=True)

    with pytest.raises(
        PluginError, match="distribution 'acme-odd' is broken: executor 'pigeon' has kind"
    ):
        registry.register_plugin(PigeonPlugin(kind="teleport"), distribution="acme-odd")


def test_plugin_using_the_registry_while_imported_is_broken(install_distribution):
    install_distribution(
        "acme-eager",
        {"eager": "acme_eager_plugin"},
        {"acme_eager_plugin": "from wove._registry import get_registry\nget_registry()\n"},
    )

    [broken] = get_registry().broken()

    assert "while plugins are being discovered" in (broken.error or "")


def test_strict_variable_accepts_common_spellings(monkeypatch):
    from wove._registry import is_strict

    for value, expected in [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)]:
        monkeypatch.setenv("WOVE_STRICT_PLUGINS", value)
        assert is_strict() is expected
    monkeypatch.delenv("WOVE_STRICT_PLUGINS")
    assert not is_strict()
    assert "WOVE_STRICT_PLUGINS" not in os.environ
