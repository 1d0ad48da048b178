"""Make untrusted text (test names, failure messages, fork PR content) inert in markdown and HTML.

Escaped text renders as exactly its characters: no markup, links, HTML, @-mentions,
#-references, emoji shortcodes, or forged comment markers.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Iterable, Sequence

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping all of
# them is simpler to trust than reasoning about which are special in which position.
# '<', '>' and '&' become entities instead, so no HTML tag or comment marker can be formed.
_INLINE = str.maketrans(
    {char: "\\" + char for char in string.punctuation} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
)
_WORD_JOINER = "\u2060"
# GitHub links @user, @org/team, #123 and owner/repo#123 in rendered text, even in HTML...
_MENTION = re.compile(r"[@#](?=\w)")
# ...and shows :name: as an emoji: a test named ":white_check_mark: fine" would show a pass mark.
# A word joiner after the '@', '#' or first ':' breaks each, invisibly.
_EMOJI = re.compile(r":(?=[\w+-]+:)")
# C0 and C1 controls (ESC and CSI start terminal escape sequences), not tab and line breaks.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def inline(text: str, limit: int = 1000) -> str:
    """One line of untrusted text for a markdown paragraph or table cell."""
    text = " ".join(_CONTROL.sub("", text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    # The word joiner goes in before escaping, so the escaped '@' is still separated.
    return _break_references(text).translate(_INLINE)


def html_inline(text: str, limit: int = 1000) -> str:
    """One line of untrusted text inside raw HTML in markdown (e.g. <summary>), where
    markdown escapes would show as backslashes: HTML-escaped, mentions broken."""
    text = " ".join(_CONTROL.sub("", text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(_break_references(text), quote=True)


def code(text: str, limit: int = 300) -> str:
    """Untrusted text as an inline code span: nothing inside one is markup, so only the
    backtick (which would end it) and line breaks need to go."""
    text = " ".join(_CONTROL.sub("", text).split()).replace("`", "'")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`" if text else "` `"


def block(text: str, limit: int = 4000) -> str:
    """Multi-line untrusted text as a preformatted HTML block inside markdown."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    # GitHub shows no emoji inside <pre>: only mentions need breaking (a traceback's
    # "file.py:11:" is copied from here, so no joiner goes after its colons).
    text = _break_references(text, emoji=False)
    # A line-initial <pre> opens an HTML block that only </pre> ends (blank lines do not), and
    # markdown is not parsed inside it; html.escape makes every tag, entity and marker literal.
    return f"<pre>{html.escape(text, quote=False)}</pre>"


def _break_references(text: str, *, emoji: bool = True) -> str:
    text = _MENTION.sub(r"\g<0>" + _WORD_JOINER, text)
    return _EMOJI.sub(":" + _WORD_JOINER, text) if emoji else text


def plain(text: str, limit: int = 2000) -> str:
    """Untrusted text as one line of plain text (the terminal, a check run's title): no
    control characters (an escape sequence could rewrite a terminal's screen or title), no
    line breaks."""
    text = " ".join(_CONTROL.sub("", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def html_text(text: str) -> str:
    """Untrusted text for the self-contained HTML report."""
    return html.escape(_CONTROL.sub("", text), quote=True)


def markdown_table(headers: Sequence[str], rows: Iterable[Iterable[str]]) -> list[str]:
    """The lines of a Markdown table: a header row, its rule, a row each. Cells go in as they
    are: the caller makes untrusted ones inert (inline, code) with the limit each column wants."""
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def html_table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """An HTML table of untrusted cells (and headers), every one escaped; "" for no rows."""
    body = "".join(
        "<tr>" + "".join(f"<td>{html_text(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    if not body:
        return ""
    head = "".join(f"<th>{html_text(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
