"""Build hook: a second copy of the ``wove`` package, out of reach of an old ``wove`` uninstall.

wove 2.x was a single distribution named ``wove`` that owned the ``wove`` import package; wove-core
owns it now. pip removes an old distribution by the file list it recorded, without asking who owns
those files today, so uninstalling wove 2.x after wove-core is installed (which is what
``pip install -U wove`` does: the new meta-distribution is installed after its dependency
wove-core) deletes ``wove/__init__.py`` and the other paths both releases ship.

The wheel therefore also carries the package under ``_wove_core_fallback/wove`` and a ``.pth``
line that appends that folder to ``sys.path``. While the regular copy is whole, it comes first on
``sys.path`` and the fallback is never imported. Once its ``__init__.py`` is gone, the remains are
only a namespace portion, and Python's import system prefers a regular package found later on the
path: the fallback copy. No old release recorded a path under ``_wove_core_fallback``, so no old
uninstall can remove it. Editable installs skip it (they have no second copy to fall back to).
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

FALLBACK_DIRECTORY = "_wove_core_fallback"


class FallbackCopyHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version != "standard":
            return
        build_data["force_include"]["src/wove"] = f"{FALLBACK_DIRECTORY}/wove"
        build_data["force_include"][f"build-support/{FALLBACK_DIRECTORY}.pth"] = (
            f"{FALLBACK_DIRECTORY}.pth"
        )
