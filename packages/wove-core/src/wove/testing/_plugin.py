"""``PluginConformance``: the checks every executor plugin's packaging must pass.

A plugin's ``tests/test_plugin.py`` subclasses it and states what it ships. The checks, and what
each asserts:

``test_entry_point_names_the_plugin_module``
    The ``wove.executors`` entry point named after the executor points at the plugin module
    and belongs to the plugin's distribution.
``test_registry_lists_the_plugin_with_its_metadata``
    ``wove plugins list`` shows the executor with its distribution, installed version, kind,
    ``requires``, install line and a one-line description, and not broken.
``test_loading_gives_an_executor_of_the_declared_kind``
    The registered ``load`` callable gives an :class:`~wove.plugins.Executor` subclass of the
    declared kind, in process exactly when the kind is ``local``.
``test_plugin_module_imports_nothing_beyond_its_package``
    In a fresh interpreter, importing the plugin module loads nothing but its own package and
    :attr:`~PluginConformance.plugin_imports`.
``test_discovery_imports_no_backend``
    In a fresh interpreter, discovering the plugin -- importing its module and calling its
    hooks, as ``wove plugins list`` does -- imports no top-level package beyond the standard
    library, wove-core and its own dependencies (pluggy, msgspec) and the plugin's own package;
    and discovering every installed plugin imports none of the modules in ``requires`` or
    :attr:`~PluginConformance.backend_modules`. This holds for every plugin, whatever it
    declares: backend libraries are imported by the ``load`` callable, when an environment
    starts.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from typing import ClassVar, Final

import pytest

from .._executor import Executor
from .._registry import get_registry, reset_registry

__all__ = ["PluginConformance"]

#: The top-level packages wove-core brings: its own and its dependencies (not its extras).
CORE_PACKAGES: Final = frozenset({"wove", "pluggy", "msgspec"})

#: Run in a fresh interpreter: the modules that discovering one plugin adds (its entry point
#: loaded and registered in a registry of its own, as discovery does with each entry point),
#: then the modules that discovering every installed plugin adds.
_DISCOVERY_SCRIPT: Final = """
import importlib.metadata, json, sys
import wove.plugins
from wove._registry import Registry, get_registry

before = set(sys.modules)
[entry_point] = importlib.metadata.entry_points(group="wove.executors", name={name!r})
Registry().register_plugin(
    entry_point.load(), distribution={distribution!r}, name=entry_point.name
)
alone = sorted(set(sys.modules) - before)
get_registry().plugins()
every = sorted(set(sys.modules) - before)
print(json.dumps({{"alone": alone, "every": every}}))
"""


class PluginConformance:
    """Subclass with the plugin's facts as class attributes.

    Example:
        ``packages/wove-stdio/tests/test_plugin.py``::

            class TestStdioPlugin(PluginConformance):
                executor_name = "stdio"
                distribution = "wove-stdio"
                kind = "process"
                requires = ("cloudpickle",)
                backend_modules = ("wove_stdio._executor",)
    """

    executor_name: ClassVar[str]
    distribution: ClassVar[str]
    kind: ClassVar[str]
    #: The modules the plugin declares it needs (``requires=`` when it registers).
    requires: ClassVar[tuple[str, ...]] = ()
    #: Modules that importing the plugin module or discovering plugins must not import, besides
    #: those in :attr:`requires` (which are never imported at discovery either): typically the
    #: plugin's own executor module and what its backend library imports.
    backend_modules: ClassVar[tuple[str, ...]] = ()
    #: Modules of the plugin's own package that importing its plugin module may load too.
    plugin_imports: ClassVar[frozenset[str]] = frozenset()
    #: The module the entry point names; ``wove_<executor_name>.plugin`` unless set.
    plugin_module: ClassVar[str | None] = None

    @property
    def package(self) -> str:
        return (self.plugin_module or f"wove_{self.executor_name}").partition(".")[0]

    @property
    def entry_point_module(self) -> str:
        return self.plugin_module or f"{self.package}.plugin"

    @pytest.fixture(autouse=True)
    def _fresh_registry(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        monkeypatch.delenv("WOVE_STRICT_PLUGINS", raising=False)
        reset_registry()
        yield
        reset_registry()

    def test_entry_point_names_the_plugin_module(self) -> None:
        [entry_point] = importlib.metadata.entry_points(
            group="wove.executors", name=self.executor_name
        )
        assert entry_point.value == self.entry_point_module
        assert entry_point.dist is not None
        assert entry_point.dist.name == self.distribution

    def test_registry_lists_the_plugin_with_its_metadata(self) -> None:
        info = get_registry().plugin(self.executor_name)
        assert info is not None
        assert info.name == self.executor_name
        assert info.distribution == self.distribution
        assert info.version == importlib.metadata.version(self.distribution)
        assert info.kind == self.kind
        assert info.requires == self.requires
        assert info.install == f"pip install {self.distribution}"
        assert info.description
        assert "\n" not in info.description
        assert not info.is_broken

    def test_loading_gives_an_executor_of_the_declared_kind(self) -> None:
        executor_class = get_registry().executor_class(self.executor_name, "default")
        assert issubclass(executor_class, Executor)
        assert executor_class.kind == self.kind
        assert executor_class().runs_in_process is (self.kind == "local")

    def _run_fresh(self, script: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def _modules_added_by(self, statement: str) -> set[str]:
        script = "\n".join(
            [
                "import sys",
                "import wove.plugins",
                "before = set(sys.modules)",
                statement,
                "print('\\n'.join(sorted(set(sys.modules) - before)))",
            ]
        )
        return set(self._run_fresh(script).split())

    def test_plugin_module_imports_nothing_beyond_its_package(self) -> None:
        added = self._modules_added_by(f"import {self.entry_point_module}")
        allowed = {self.package, self.entry_point_module, *self.plugin_imports}
        assert added <= allowed, added

    def test_discovery_imports_no_backend(self) -> None:
        script = _DISCOVERY_SCRIPT.format(name=self.executor_name, distribution=self.distribution)
        added = json.loads(self._run_fresh(script))
        own = {self.package, *(module.partition(".")[0] for module in self.plugin_imports)}
        foreign = sorted(
            {
                top
                for top in (name.partition(".")[0] for name in added["alone"])
                if top not in sys.stdlib_module_names and top not in CORE_PACKAGES | own
            }
        )
        assert not foreign, (
            f"discovering plugin {self.executor_name!r} imported {foreign}: neither the standard "
            f"library, wove-core ({', '.join(sorted(CORE_PACKAGES))}) nor the plugin's own "
            f"package {self.package!r}. Import backend libraries in the load callable the "
            "plugin registers, not in its plugin module or its hooks"
        )
        forbidden = (*self.requires, *self.backend_modules)
        loaded = sorted(_within(added["every"], forbidden))
        assert not loaded, (
            f"plugin discovery imported {loaded}, which the plugin declares as backend "
            "(requires= or backend_modules)"
        )


def _within(modules: Iterable[str], packages: Iterable[str]) -> set[str]:
    """The ``modules`` that are one of ``packages`` or inside one."""
    prefixes = tuple(packages)
    return {
        name
        for name in modules
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)
    }
