"""``PluginConformance``: the checks every executor plugin's packaging must pass.

A plugin's ``tests/test_plugin.py`` subclasses it and states what it ships; the suite checks
the entry point, the metadata ``wove plugins list`` shows, that loading gives an executor of the
declared kind, and -- in a fresh interpreter -- that importing the plugin module and discovering
plugins import no backend library.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from typing import ClassVar

import pytest

from .._executor import Executor
from .._registry import get_registry, reset_registry

__all__ = ["PluginConformance"]


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
    #: Modules that importing the plugin module or discovering plugins must not import.
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
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return set(done.stdout.split())

    def test_plugin_module_imports_nothing_beyond_its_package(self) -> None:
        added = self._modules_added_by(f"import {self.entry_point_module}")
        allowed = {self.package, self.entry_point_module, *self.plugin_imports}
        assert added <= allowed, added

    def test_discovery_imports_no_backend(self) -> None:
        added = self._modules_added_by(
            "from wove._registry import get_registry; get_registry().plugins()"
        )
        loaded = sorted(
            name
            for name in added
            for backend in self.backend_modules
            if name == backend or name.startswith(backend + ".")
        )
        assert not loaded, f"plugin discovery imported {loaded}"
