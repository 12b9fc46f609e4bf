"""Run every Python block of the migration guide against the version it is written for.

``docs/migrating-from-2x.md`` shows each difference between wove 2.x and 3.x as code. A block
titled ``2.x`` runs against the published wove 2.0.3 in a virtualenv of its own, one titled
``3.x`` runs in this interpreter's environment (the workspace's packages), and one titled
``2.x and 3.x`` runs against both. Each block runs as a script in a fresh process and asserts the
behaviour it describes, so a guide that no longer matches either version fails here. A Python
block with no version title, or a block with no language at all, fails too: nothing in the
guide can go unchecked.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from legacy import clean_environ

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "migrating-from-2x.md"

#: What a block's title says it runs against.
VERSIONS = {"2.x": ("2.x",), "3.x": ("3.x",), "2.x and 3.x": ("2.x", "3.x")}
PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "py3", "pycon"})
#: Seconds one block may take; blocks run in milliseconds, this only turns a hang into a failure.
BLOCK_TIMEOUT = 120

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
_TITLE = re.compile(r'\btitle="(?P<title>[^"]*)"')

pytestmark = pytest.mark.timeout(600)


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of the guide."""

    line: int  # of the opening fence, 1-based
    language: str
    title: str | None
    code: str

    @property
    def is_python(self) -> bool:
        return self.language in PYTHON_LANGUAGES

    @property
    def versions(self) -> tuple[str, ...]:
        return VERSIONS.get(self.title or "", ())


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with its language and title."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        start = index + 1
        fence, indent = opening["fence"], len(opening["indent"])
        info = opening["info"].strip()
        language = info.split()[0].lower() if info else ""
        title = _TITLE.search(info)
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if closing and closing["fence"].startswith(fence) and not closing["info"].strip():
                break
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        else:
            raise AssertionError(f"line {start}: a code block is never closed")
        blocks.append(
            Block(
                line=start,
                language=language,
                title=title["title"] if title else None,
                code="\n".join(body) + "\n",
            )
        )
        index += 1
    return blocks


BLOCKS = parse_blocks(GUIDE.read_text(encoding="utf-8"))
RUNS = [(block, version) for block in BLOCKS if block.is_python for version in block.versions]


def test_every_block_says_what_it_is() -> None:
    """A Python block without a version title, or a block without a language, would never run."""
    unmarked = [
        f"{GUIDE.name}:{block.line}: ```{block.language} title={block.title!r}"
        for block in BLOCKS
        if not block.language or (block.is_python and not block.versions)
    ]
    assert not unmarked, (
        "these blocks run against no version; give each a language and, for Python, "
        'title="2.x", title="3.x" or title="2.x and 3.x":\n' + "\n".join(unmarked)
    )


def test_the_guide_shows_both_versions() -> None:
    versions = {version for _, version in RUNS}
    assert versions == {"2.x", "3.x"}, versions


def test_the_parser_finds_unmarked_blocks() -> None:
    text = '```python title="2.x"\nprint(2)\n```\n\n```python\nprint(3)\n```\n\n```\nx\n```\n'
    blocks = parse_blocks(text)
    assert [(b.line, b.language, b.title, b.versions) for b in blocks] == [
        (1, "python", "2.x", ("2.x",)),
        (5, "python", None, ()),
        (9, "", None, ()),
    ]
    assert blocks[0].code == "print(2)\n"


def _environ() -> dict[str, str]:
    """The environment a block runs in: no workspace paths and no Wove settings of ours."""
    return {key: value for key, value in clean_environ().items() if not key.startswith("WOVE_")}


@pytest.mark.parametrize(
    ("block", "version"),
    [pytest.param(block, version, id=f"line{block.line}-{version}") for block, version in RUNS],
)
def test_block_runs(
    block: Block, version: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    python = request.getfixturevalue("legacy_python") if version == "2.x" else Path(sys.executable)
    script = tmp_path / "block.py"
    script.write_text(block.code, encoding="utf-8")
    completed = subprocess.run(
        [os.fspath(python), os.fspath(script)],
        cwd=tmp_path,  # wove.config() looks for wove_config.py upward from here
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, (
        f"the {version} block at {GUIDE.name}:{block.line} failed "
        f"(exit status {completed.returncode}):\n"
        f"--- stdout ---\n{completed.stdout}\n--- stderr ---\n{completed.stderr}"
    )
