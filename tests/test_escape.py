"""The escaper, checked by rendering: escaped text is plain text to a CommonMark renderer."""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from mlgate.report import escape

RENDERER = MarkdownIt("commonmark").enable("table")
WJ = "\u2060"
HOSTILE = [
    "<!-- mlgate:comment:mlgate -->",
    "<script>alert(1)</script>",
    "@octocat please look",
    "fixes #12 and org/repo#3",
    "**bold** _it_ `code` [link](http://x) ![img](http://x)",
    "| table | break |",
    "# heading\n- list\n> quote",
    "&lt; already escaped &amp;",
    "back\\slash \\* star",
    "```\nfence\n```",
    "<details><summary>x</summary>",
    ":white_check_mark: fine :+1: and :-1:",
]


def visible_text(markdown: str) -> str:
    """What a reader sees: the text content of the rendered HTML."""
    rendered = RENDERER.render(markdown)
    assert re.fullmatch(r"<p>.*</p>\n", rendered, re.S) or rendered == "", rendered
    return html.unescape(re.sub(r"</?p>", "", rendered)).strip()


def expected(text: str) -> str:
    one_line = " ".join(re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", "", text).split())
    one_line = re.sub(r"([@#])(?=\w)", r"\1" + WJ, one_line)
    return re.sub(r":(?=[\w+-]+:)", ":" + WJ, one_line)


def test_hostile_examples_render_as_their_text() -> None:
    for text in HOSTILE:
        out = escape.inline(text)
        assert "<!--" not in out and "<script" not in out
        assert visible_text(out) == expected(text)


def test_mentions_and_references_are_broken() -> None:
    out = escape.inline("@octocat #12")
    assert "@octocat" not in visible_text(out) and "#12" not in visible_text(out)


def test_emoji_shortcodes_are_broken_outside_preformatted_text() -> None:
    # GitHub would show a pass mark for a test that names one; in <pre> it shows none, and a
    # traceback's "file.py:11:" is copied from there as written.
    for out in (escape.inline(":white_check_mark: ok"), escape.html_inline(":+1: ok")):
        assert not re.search(r":[\w+-]+:", out.replace("\\", "")), out
    assert "x.py:11: AssertionError" in escape.block("x.py:11: AssertionError")
    assert escape.block("@octocat") == f"<pre>@{WJ}octocat</pre>"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_renders_as_itself(text: str) -> None:
    out = escape.inline(text)
    rendered = RENDERER.render(out)
    # No element other than the paragraph: no links, emphasis, code, html, headings, lists.
    tags = set(re.findall(r"<(/?\w+)", rendered))
    assert tags <= {"p", "/p"}, (text, rendered)
    assert visible_text(out) == expected(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_block_is_one_inert_pre_element(text: str) -> None:
    out = escape.block(text)
    rendered = RENDERER.render(out)
    assert rendered.count("<pre>") == 1 and rendered.rstrip().endswith("</pre>"), rendered
    inner = rendered.strip()[len("<pre>") : -len("</pre>")]
    assert "<" not in inner  # every tag from the text stays escaped


def test_limits_are_applied() -> None:
    assert len(escape.inline("x" * 5000, limit=100)) == 100
