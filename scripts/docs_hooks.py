"""The documentation build's mkdocs hooks (``hooks:`` in ``mkdocs.yml``).

- Code width: every line of a fenced code block fits in 88 columns, about what the content
  column shows at 1280 px; a longer line scrolls off the right edge and hides its end, often a
  comment. ``mkdocs build --strict`` fails on a page with such a line, naming the page, the
  line and its width.
- Whole identifiers: each word of inline code (``limit_per_minute``, ``http://host:port``,
  ``--pre``) is marked with the class ``wv-token``, which ``docs/stylesheets/extra.css`` keeps on
  one line. Inline code then breaks only at its spaces, never in the middle of a name, a flag or
  a URL, in a narrow table column or at the end of a line of prose. Code blocks are left alone.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any, Final

from mkdocs.plugins import get_plugin_logger

if TYPE_CHECKING:
    from mkdocs.structure.pages import Page

__all__ = ["MAX_COLUMNS", "long_code_lines", "on_page_content", "on_page_markdown"]

#: The widest code line a page may show: the code style's line length.
MAX_COLUMNS: Final = 88

_log = get_plugin_logger("docs_hooks")
# An opening or closing fence: indentation, three or more backticks or tildes, then the info.
_FENCE: Final = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_PRE: Final = re.compile(r"(<pre\b.*?</pre>)", re.DOTALL)
# Inline code with no markup inside: a code span written in Markdown with backticks.
_INLINE_CODE: Final = re.compile(r"<code>([^<]+)</code>")
_SPACES: Final = re.compile(r"(\s+)")


def _columns(line: str) -> int:
    """The columns ``line`` takes in a monospace font: wide (East Asian) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def long_code_lines(markdown: str, limit: int = MAX_COLUMNS) -> list[tuple[int, int]]:
    """Return ``(line number, columns)`` for each fenced-code line of ``markdown`` over ``limit``.

    A block's own indentation (inside a list item or an admonition) is not counted.
    """
    found: list[tuple[int, int]] = []
    fence = ""
    indent = 0
    for number, raw in enumerate(markdown.splitlines(), start=1):
        line = raw.expandtabs(4)
        match = _FENCE.match(line)
        if not fence:
            if match:
                fence = match["fence"]
                indent = len(match["indent"])
            continue
        if match and match["fence"].startswith(fence) and not match["info"].strip():
            fence = ""  # a closing fence: same character, at least as long, nothing after
            continue
        # Drop the block's indentation, as Markdown does, but no more than the line has.
        leading = len(line) - len(line.lstrip(" "))
        width = _columns(line[min(indent, leading) :].rstrip())
        if width > limit:
            found.append((number, width))
    return found


def on_page_markdown(markdown: str, page: Page, **kwargs: Any) -> str:
    """Warn about each code line of ``page`` wider than ``MAX_COLUMNS``."""
    for number, width in long_code_lines(markdown):
        _log.warning(
            "%s:%d: a code line is %d columns wide, over the limit of %d; wrap it.",
            page.file.src_uri,
            number,
            width,
            MAX_COLUMNS,
        )
    return markdown


def _mark_tokens(code: re.Match[str]) -> str:
    text = code[1]
    if not _SPACES.search(text):
        return f'<code class="wv-token">{text}</code>'
    words = (
        part if not part or part.isspace() else f'<span class="wv-token">{part}</span>'
        for part in _SPACES.split(text)
    )
    return f"<code>{''.join(words)}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    """Mark each word of the page's inline code, outside code blocks, as one token."""
    pieces = _PRE.split(html)  # code blocks at the odd indexes
    return "".join(
        piece if index % 2 else _INLINE_CODE.sub(_mark_tokens, piece)
        for index, piece in enumerate(pieces)
    )
