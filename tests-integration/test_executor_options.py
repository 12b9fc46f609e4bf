"""scripts/executor_options.py: the options tables on the executor pages come from the settings
declarations, and ``--check`` (run by ``hatch run lint``) fails when a page's copy is stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "executor_options.py"


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("executor_options", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "DOCS", tmp_path / "docs")
    (tmp_path / "docs" / "executors").mkdir(parents=True)
    return module


def page(script: ModuleType, name: str, text: str) -> Path:
    path = script.DOCS / "executors" / name
    path.write_text(text)
    return path


def test_the_table_lists_every_declared_key_with_its_default(script: ModuleType) -> None:
    from wove_stdio import StdioExecutor

    table = script.render("stdio", StdioExecutor.settings_class)

    for key in StdioExecutor.config_keys:
        assert f"| `{key}` |" in table
    assert "| `start_timeout` | a datetime.timedelta or a positive number of seconds | `30` |" in (
        table
    )
    assert "wove_stdio._executor.StdioSettings" in table


def test_shared_keys_come_in_their_own_table(script: ModuleType) -> None:
    from wove_kubernetes_jobs import KubernetesJobsExecutor

    table = script.render("kubernetes_jobs", KubernetesJobsExecutor.settings_class)
    own, shared = table.split("Every backend environment also takes these keys:")

    assert "| `image` |" in own
    assert "| `security` |" in shared
    # Declared again by the adapter, with the bound a Secret sets, in the shared table.
    assert "| `max_inline_payload_bytes` | an integer from 0 to 716800" in shared


def test_check_fails_on_a_stale_table_and_write_fixes_it(
    script: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = page(
        script,
        "stdio.md",
        "# stdio\n\nIntro.\n\n<!-- options:begin -->\n| old | table |\n"
        "<!-- options:end -->\n\nMore.\n",
    )

    assert script.main(["--check"]) == 1
    assert "out of date: docs/executors/stdio.md" in capsys.readouterr().err

    assert script.main(["--write"]) == 0
    text = stale.read_text()
    assert "| old | table |" not in text
    assert "| `processes` | a positive integer |" in text
    assert text.startswith("# stdio\n\nIntro.\n\n<!-- options:begin -->\n\n")
    assert text.endswith("\n\n<!-- options:end -->\n\nMore.\n")
    assert script.main(["--check"]) == 0


def test_a_marker_may_name_its_executor(script: ModuleType) -> None:
    overview = page(script, "overview.md", "<!-- options:begin rq -->\n<!-- options:end -->\n")

    assert script.main(["--write"]) == 0

    assert "| `enqueue_options` |" in overview.read_text()


def test_a_marker_for_an_executor_that_declares_nothing_is_an_error(script: ModuleType) -> None:
    page(script, "pigeon.md", "<!-- options:begin -->\n<!-- options:end -->\n")

    with pytest.raises(SystemExit, match="no executor 'pigeon' declares keys"):
        script.main(["--check"])


def test_pages_without_markers_are_listed(
    script: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    page(script, "http.md", "<!-- options:begin -->\n<!-- options:end -->\n")

    assert script.main(["--write"]) == 0
    listed = capsys.readouterr().err

    assert "no <!-- options:begin --> / <!-- options:end --> markers yet" in listed
    assert "kubernetes_jobs" in listed
    # http's page has them, and https is documented there too
    assert "http," not in listed
    assert "https" not in listed
