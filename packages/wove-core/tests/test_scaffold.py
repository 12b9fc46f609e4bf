"""``wove plugins new``: the files it writes for each kind, the names it refuses, and that it
never overwrites anything. (tests-integration/test_scaffold.py installs what it writes and runs
its tests.)"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from wove._cli import main
from wove._scaffold import KINDS, MAX_NAME_LENGTH, check_name

CORE_VERSION = importlib.metadata.version("wove-core")

COMMON_FILES = {
    "pyproject.toml",
    "README.md",
    "docs/index.md",
    "src/wove_pigeon_post/__init__.py",
    "src/wove_pigeon_post/plugin.py",
    "src/wove_pigeon_post/py.typed",
    "tests/test_plugin.py",
    "tests/test_conformance.py",
}
KIND_FILES = {
    "backend": {"src/wove_pigeon_post/_adapter.py", "src/wove_pigeon_post/worker.py"},
    "network": {
        "src/wove_pigeon_post/_executor.py",
        "src/wove_pigeon_post/_service.py",
        "tests/conftest.py",
    },
    "process": {"src/wove_pigeon_post/_executor.py"},
}
CORE_EXTRAS = {"backend": "callback,dispatch", "network": "dispatch", "process": "dispatch"}
KITS = {
    "backend": "BackendExecutorConformance",
    "network": "RemoteExecutorConformance",
    "process": "RemoteExecutorConformance",
}
#: A private module of wove-core, as scripts/check_layout.py looks for them.
PRIVATE_CORE = re.compile(r"\bwove(?:\.[A-Za-z]\w*)*\._\w*|\bfrom\s+wove(?:\.\w+)*\s+import\s+_")


def new(*arguments: str) -> int:
    return main(["plugins", "new", *arguments])


def written(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("kind", KINDS)
def test_plugins_new_writes_an_installable_distribution_of_each_kind(
    kind: str, tmp_path: Path
) -> None:
    assert new("pigeon-post", "--kind", kind, "--directory", str(tmp_path)) == 0

    files = written(tmp_path / "wove-pigeon-post")
    assert set(files) == COMMON_FILES | KIND_FILES[kind]
    pyproject = files["pyproject.toml"]
    assert 'name = "wove-pigeon-post"' in pyproject
    assert '[project.entry-points."wove.executors"]' in pyproject
    assert 'pigeon_post = "wove_pigeon_post.plugin"' in pyproject
    assert f'"wove-core[{CORE_EXTRAS[kind]}]>={CORE_VERSION}"' in pyproject
    assert 'build-backend = "hatchling.build"' in pyproject
    assert 'packages = ["src/wove_pigeon_post"]' in pyproject
    group = pyproject.split("[dependency-groups]")[1].split("\n\n")[0]
    for requirement in (f"wove-core[testing]>={CORE_VERSION}", "pytest>=8.0", "pytest-timeout"):
        assert requirement in group
    assert "wove_fresh_state = true" in pyproject
    assert f'kind="{kind}"' in files["src/wove_pigeon_post/plugin.py"]
    assert 'name="pigeon_post"' in files["src/wove_pigeon_post/plugin.py"]
    assert files["src/wove_pigeon_post/py.typed"] == ""
    assert "class TestPigeonPostPlugin(PluginConformance)" in files["tests/test_plugin.py"]
    assert f'kind = "{kind}"' in files["tests/test_plugin.py"]
    assert f"class TestPigeonPostConformance({KITS[kind]}):" in files["tests/test_conformance.py"]
    assert f"wove plugins new pigeon_post --kind {kind}" in files["docs/index.md"]
    assert "pip install wove-pigeon-post" in files["README.md"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_generated_code_is_complete_python_on_the_public_sdk(kind: str, tmp_path: Path) -> None:
    longest = "p" * MAX_NAME_LENGTH
    assert new(longest, "--kind", kind, "--directory", str(tmp_path)) == 0

    files = written(tmp_path / f"wove-{longest}")
    for path, text in files.items():
        assert "${" not in text, f"{path} has a placeholder left"
        too_long = [line for line in text.splitlines() if len(line) > 100]
        if path.endswith(".py"):
            compile(text, path, "exec")
            assert not PRIVATE_CORE.search(text), f"{path} imports a private wove module"
            assert not too_long, f"{path}: lines over the 100 columns its ruff allows"
    marked = [path for path, text in files.items() if "YOUR SYSTEM" in text]
    assert any(path.startswith("src/") for path in marked)


def test_plugins_new_says_what_it_wrote_and_what_to_do_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert new("pigeon", "--kind", "process", "--directory", str(tmp_path)) == 0

    out = capsys.readouterr().out
    assert f"Created wove-pigeon in {tmp_path / 'wove-pigeon'}" in out
    assert "a process executor plugin (executor 'pigeon', import package wove_pigeon)" in out
    assert "  src/wove_pigeon/_executor.py" in out
    assert f"python -m pip install -e . 'wove-core[testing]>={CORE_VERSION}'" in out
    assert "python -m pytest" in out
    assert '"YOUR SYSTEM"' in out


def test_hyphens_and_underscores_give_the_same_plugin(tmp_path: Path) -> None:
    assert new("pigeon_post", "--kind", "backend", "--directory", str(tmp_path)) == 0

    assert (tmp_path / "wove-pigeon-post" / "src" / "wove_pigeon_post" / "_adapter.py").exists()
    assert check_name("pigeon-post") == check_name("pigeon_post") == "pigeon_post"


def test_the_directory_is_created_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert new("pigeon", "--kind", "network") == 0
    assert new("pigeon", "--kind", "network", "--directory", "plugins/ours") == 0

    assert (tmp_path / "wove-pigeon" / "src" / "wove_pigeon" / "_service.py").exists()
    assert (tmp_path / "plugins" / "ours" / "wove-pigeon" / "pyproject.toml").exists()


def test_an_existing_directory_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "wove-pigeon"
    existing.mkdir()
    (existing / "pyproject.toml").write_text("# mine\n")

    assert new("pigeon", "--kind", "backend", "--directory", str(tmp_path)) == 2

    err = capsys.readouterr().err
    assert f"{existing} already exists" in err
    assert "never overwrites" in err
    assert "--directory DIR" in err
    assert written(existing) == {"pyproject.toml": "# mine\n"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Pigeon", "NAME must be lowercase, got 'Pigeon'; use 'pigeon'"),
        ("9lives", "must start with a letter"),
        ("pigeon post", "such as 'pigeon' or 'pigeon-post'; got 'pigeon post'"),
        ("pigeon--post", "single '-' or '_'"),
        ("pigeon-", "single '-' or '_'"),
        ("pigeon.post", "got 'pigeon.post'"),
        ("wove-pigeon", "run 'wove plugins new pigeon'"),
        ("wove_pigeon", "without the 'wove-' prefix"),
        ("core", "wove-core, which is Wove itself"),
        ("local", "'local' is already registered by 'wove-core'"),
        ("p" * (MAX_NAME_LENGTH + 1), f"more than {MAX_NAME_LENGTH}"),
        ("", "must not be empty"),
    ],
)
def test_names_that_cannot_be_used_are_refused_with_the_fix(
    name: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert new(name, "--kind", "process", "--directory", str(tmp_path)) == 2

    err = capsys.readouterr().err
    assert err.startswith("wove: plugins new: ")
    assert message in err
    assert list(tmp_path.iterdir()) == []


def test_the_kind_is_required_and_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert new("pigeon", "--directory", str(tmp_path)) == 2
    assert "--kind" in capsys.readouterr().err

    assert new("pigeon", "--kind", "local", "--directory", str(tmp_path)) == 2
    assert "choose from 'backend', 'network', 'process'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_plugins_new_appears_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "new", "--help"]) == 0

    out = capsys.readouterr().out
    assert "--kind {backend,network,process}" in out
    assert "--directory DIR" in out
