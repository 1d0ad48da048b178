"""Rendering limits: everything fits GitHub's size limits, with a notice naming the artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate import config, policy
from mlgate import evidence as ev
from mlgate.report import files, markdown, model
from mlgate.stages.interface import RunContext
from mlgate.stages.tests import TestsStage
from mlgate.stages.tests_config import TestsConfig
from tests.helpers import junit_xml


def make_report(tmp_path: Path, failed: int, message: str = "assert 0.71 >= 0.9") -> model.Report:
    junit_xml(tmp_path / "j.xml", passed=10, failed=failed, message=message)
    evidence = TestsStage().run(
        TestsConfig(junit=[str(tmp_path / "j.xml")]), RunContext(tmp_path / "ev", None)
    )
    ev.write(evidence, tmp_path / "ev")
    cfg = config.parse({"stages": {"tests": {}}})
    policy.write(policy.evaluate(cfg, tmp_path / "ev"), tmp_path / "verdict.json")
    return model.load(cfg, tmp_path / "verdict.json", tmp_path / "ev")


@pytest.mark.parametrize("limit", [markdown.CHECK_LIMIT, markdown.COMMENT_LIMIT, 5000])
def test_large_report_fits_with_truncation_notice(tmp_path: Path, limit: int) -> None:
    report = make_report(tmp_path, failed=2000, message="x" * 300)
    text = markdown.full(report, limit)
    assert len(text) <= limit
    assert "**Truncated:**" in text and "`mlgate-report` artifact" in text
    shown = text.count("<details>")
    assert f"{2000 - shown} more not shown" in text
    summary, details = markdown.stage(report, "tests", limit)
    assert len(summary) <= limit and len(details) <= limit and "Truncated" in details


def test_a_limited_text_renders_only_the_findings_it_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comment, summary and check texts stop rendering at their limit: 2,000 findings
    cost a few dozen renderings in a 5,000-character comment, not 2,000."""
    report = make_report(tmp_path, failed=2000)
    rendered: list[str] = []
    entry = markdown.finding_entry

    def counted(finding: ev.Finding) -> str:
        rendered.append(finding.id)
        return entry(finding)

    monkeypatch.setattr(markdown, "finding_entry", counted)
    text = markdown.full(report, 5000)
    shown = text.count("<details>")
    assert 0 < shown < len(rendered) <= shown + 1
    rendered.clear()
    markdown.stage(report, "tests", 5000)
    assert 0 < len(rendered) < 100


def test_small_report_is_complete(tmp_path: Path) -> None:
    report = make_report(tmp_path, failed=3)
    text = markdown.full(report, markdown.COMMENT_LIMIT, marker="<!-- m -->")
    assert text.startswith("<!-- m -->\n\n❌ **mlgate: failed**")
    assert text.count("<details>") == 3 and "Truncated" not in text
    assert "tests\\: 3 failed\\, 0 allowed" in text


def test_hostile_test_output_cannot_forge_the_marker(tmp_path: Path) -> None:
    report = make_report(
        tmp_path, failed=1, message="<!-- mlgate:comment:mlgate --> @admin <img src=x>"
    )
    text = markdown.full(report, markdown.COMMENT_LIMIT, marker="<!-- mlgate:comment:mlgate -->")
    assert text.count("<!-- mlgate:comment:mlgate -->") == 1
    assert "<img" not in text and "@admin" not in text


def test_local_files_hold_everything(tmp_path: Path) -> None:
    report = make_report(tmp_path, failed=2000, message="y" * 300)
    md, page = files.write(report, tmp_path / "out")
    assert md.read_text().count("<details>") == 2000
    html = page.read_text()
    assert html.count("<details>") == 2000 and "<script" not in html


def rendered_html(markdown_text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown_text)


def test_every_context_renders_hostile_text_as_plain_text(tmp_path: Path) -> None:
    import html as html_lib
    import re

    hostile = "`x` <img src=x> @octocat **b** \\ <!-- mlgate:comment:mlgate -->"
    report = make_report(tmp_path, failed=1, message=hostile)
    finding = report.evidence["tests"].findings[0]
    report.evidence["tests"].findings[0] = finding.model_copy(
        update={"title": hostile, "path": f"a`b/{hostile}.py"}
    )
    page = rendered_html(
        markdown.full(report, markdown.COMMENT_LIMIT, marker="<!-- mlgate:comment:mlgate -->")
    )
    tags = set(re.findall(r"<([a-z0-9]+)", page))
    assert tags <= {
        "p",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "strong",
        "code",
        "details",
        "summary",
        "pre",
        "h3",
    }, tags
    assert page.count("<!-- mlgate:comment:mlgate -->") == 1
    summary = re.search(r"<summary>(.*?)</summary>", page).group(1)  # type: ignore[union-attr]
    # What a reader sees is the text itself: no escape backslashes, mention and the emoji
    # shortcode ":comment:" broken.
    assert html_lib.unescape(summary) == "high: " + hostile.replace("@", "@\u2060").replace(
        "mlgate:comment", "mlgate:\u2060comment"
    )
    code_spans = [html_lib.unescape(c) for c in re.findall(r"<code>(.*?)</code>", page)]
    assert any(c.startswith("a'b/'x' <img src=x>") for c in code_spans), code_spans
    assert "tests.max_failures" in code_spans and "\\" not in "".join(
        c for c in code_spans if "tests." in c
    )
