"""The report as a user reads it: what to act on first, what it is about, both comparisons with
the champion (latency and quality, each a table, a decision, intervals and a chart), and what
would decide an inconclusive rule; in the terminal, in markdown and in HTML, which headless
Chromium renders to a screenshot that must not be blank.

The evidence is what real stage runs wrote (tests/data/evidence): a load run against a champion
served side by side, a quality run against a registered champion.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from mlgate import config, policy
from mlgate import evidence as ev
from mlgate.report import files, html, markdown, model, terminal
from mlgate.stages.load.config import LoadPolicy
from mlgate.stages.load.stage import LoadStage
from mlgate.stages.quality.config import QualityPolicy
from mlgate.stages.quality.stage import QualityStage

SEEDS = Path(__file__).parent / "data" / "evidence"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONFIG: dict[str, Any] = {
    "stages": {
        "tests": {},
        "load": {"url": "http://127.0.0.1:1", "payload": "p.jsonl"},
        "quality": {"candidate": "models:/churn@candidate", "data": "d.csv", "target": "y"},
    },
    "policy": {
        # 0.15 lies inside accuracy's interval (-0.197 to -0.121): the data cannot tell.
        "quality": {"max_drop": {"accuracy": 0.15}, "floors": {"accuracy": 0.5}},
        "load": {"p95_ms_max": 250},
    },
    "promotion": {"model": "churn"},
}


def seed(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SEEDS / f"{name}.json").read_text())
    return loaded


def build(tmp_path: Path) -> model.Report:
    """The gate and the report over real evidence: tests (failing), load (a champion served
    side by side), quality (a registered candidate, worse than its champion)."""
    evidence_dir = tmp_path / "evidence"
    evidence_dir.mkdir()
    quality = seed("quality")
    quality["data"]["candidate"] |= {
        "uri": "models:/churn@candidate",
        "resolved": "models:/churn/3",
        "registered_model": "churn",
        "version": "3",
    }
    documents = {"tests": seed("tests"), "load": seed("load"), "quality": quality}
    for name, document in documents.items():
        (evidence_dir / f"{name}.json").write_text(json.dumps(document))
    cfg = config.parse(CONFIG)
    verdict = policy.evaluate(cfg, evidence_dir).model_copy(update={"commit": COMMIT})
    policy.write(verdict, tmp_path / "verdict.json")
    return model.load(cfg, tmp_path / "verdict.json", evidence_dir, commit=COMMIT)


class _Page(HTMLParser):
    """Headings, and the text of each table row under the heading it follows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headings: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self.svg_texts: list[str] = []
        self._heading: str | None = None
        self._row: list[str] | None = None
        self._in_svg = False
        self._section = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if re.fullmatch(r"h[1-3]", tag):
            self._heading = ""
        elif tag == "tr":
            self._row = []
        elif tag == "svg":
            self._in_svg = True

    def handle_endtag(self, tag: str) -> None:
        if re.fullmatch(r"h[1-3]", tag) and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._section, self._heading = self._heading.strip(), None
        elif tag == "tr" and self._row is not None:
            self.rows.setdefault(self._section, []).append(" ".join(self._row))
            self._row = None
        elif tag == "svg":
            self._in_svg = False

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading += data
        if self._row is not None and data.strip():
            self._row.append(data.strip())
        if self._in_svg and data.strip():
            self.svg_texts.append(data.strip())


def parse(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    return parsed


def test_html_puts_what_to_act_on_first_and_names_model_version_commit(tmp_path: Path) -> None:
    report = build(tmp_path)
    page = parse(html.render(report))
    assert page.headings[0].startswith("mlgate: failed")
    facts = " | ".join(page.rows[page.headings[0]])
    assert "Verdict failed" in facts and "Model churn" in facts and "Version 3" in facts
    assert "models:/churn/3" in facts and f"Commit {COMMIT}" in facts
    # Right after the header: the failing rules, then the inconclusive one, with reasons.
    assert page.headings[1] == "Needs attention"
    attention = page.rows["Needs attention"][1:]
    outcomes = [row.split()[0] for row in attention]
    assert outcomes == sorted(outcomes, key=["fail", "inconclusive"].index), outcomes
    assert outcomes.count("inconclusive") == 1 and "pass" not in outcomes
    assert any("tests: 2 failed, 0 allowed" in row for row in attention)
    # Outcomes are words, not emoji only: the page has none of them.
    assert not re.search("[\u2705\u274c\u26a0]", html.render(report))
    assert page.headings.index("Needs attention") < page.headings.index("Stages")


def test_inconclusive_rules_say_what_would_decide_them(tmp_path: Path) -> None:
    report = build(tmp_path)
    inconclusive = [r for r in report.verdict.rules if r.outcome == "inconclusive"]
    assert [r.rule for r in inconclusive] == ["quality.max_drop"]
    # Width 0.076, 0.011 from the tolerance, 1,000 rows: 1000 * (0.076 / 0.022)^2 = 11,934.
    assert "roughly 12,000 rows would decide it (now 1,000)" in inconclusive[0].reason
    # Latency: +5% (-2% to +14%) with a 10% tolerance over 5 rounds: 5 * (0.16 / 0.10)^2.
    load = ev.Evidence.model_validate(seed("load"))
    comparison = load.data["comparison"] | {
        "metrics": [
            {"metric": "p95", "relative_change": 0.05, "ci": [-0.02, 0.14]} | {"p_value": 0.3}
        ]
    }
    odd = load.model_copy(update={"data": load.data | {"comparison": comparison}})
    rules = {r.rule: r for r in LoadStage().evaluate(LoadPolicy(), odd)}
    assert rules["load.no_regression"].outcome == "inconclusive"
    assert "roughly 13 rounds would decide it (now 5)" in rules["load.no_regression"].reason


def test_the_rough_figure() -> None:
    from mlgate import sample_size

    assert sample_size.needed(1000, 0.076, 0.011) == 11_934
    assert sample_size.needed(100, 0.1, 0.2) == 101  # already narrow enough: one more decides
    assert sample_size.needed(100, 0.1, 0.0) is None  # on the tolerance: no amount decides
    assert "may not decide it" in sample_size.what_would_decide(100, 0.1, 0.0, "rows")
    assert "far more rows" in sample_size.what_would_decide(100, 10.0, 0.01, "rows")
    # Evidence without its row count: no figure, no false claim.
    assert (
        sample_size.what_would_decide(0, 0.1, 0.01, "rows") == "more rows would narrow the interval"
    )


def test_both_comparisons_in_markdown_with_champion_and_candidate_named(tmp_path: Path) -> None:
    report = build(tmp_path)
    text = markdown.full(report, markdown.COMMENT_LIMIT)
    first = text.splitlines()[0]
    assert first.startswith("❌ **mlgate: failed** for model churn version 3")
    assert f"commit `{COMMIT[:12]}`" in first
    # The rules table comes before the stages table, failing rules on top.
    rules_at, stages_at = (
        text.index("| Result | Stage | Rule |"),
        text.index("| Result | Stage | Summary |"),
    )
    assert rules_at < stages_at
    assert text.index("❌ fail |") < text.index("⚠️ inconclusive |") < text.index("✅ pass |")
    load = text[text.index("### Load") : text.index("### Model quality")]
    assert "**Latency\\: candidate vs champion**" in load
    assert (
        "| metric | champion ms | candidate ms | change | 95\\% CI | gate \\(two\\-sided\\) |"
        in load
    )
    assert (
        "| p95 | 21\\.02 | 7\\.82 | \\-71\\.9\\% | \\-83\\.2\\% to \\-53\\.0\\% | passes \\(faster\\) |"
        in load
    )
    assert "Bars, left to right: champion, candidate." in load and "| champion |" in load
    quality = text[text.index("### Model quality") :]
    assert "**Quality\\: candidate vs champion**" in quality
    assert (
        "| accuracy ↑ | \\-0\\.1610 | \\-0\\.1970 to \\-0\\.1210 | 0\\.15 | cannot tell |"
        in quality
    )
    assert "roughly 12\\,000 rows would decide it" in quality
    chart = re.search(r"<pre>candidate - champion.*?</pre>", quality, re.S)
    assert chart is not None and "accuracy  " in chart.group(0) and "!" in chart.group(0)


def test_both_comparisons_in_the_terminal(tmp_path: Path) -> None:
    report = build(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        terminal.render(report)
    text = printed.getvalue()
    assert text.startswith("mlgate: FAILED")
    assert "model: churn version 3 (models:/churn/3)" in text and f"commit: {COMMIT}" in text
    assert "Latency: candidate vs champion" in text and "Quality: candidate vs champion" in text
    assert re.search(
        r"│ p95\s+│ 21\.02\s+│ 7\.82\s+│ -71\.9%\s+│ -83\.2% to -53\.0%\s+│ passes \(faster\)",
        text,
    )
    assert re.search(r"│ accuracy ↑\s+│ -0\.1610 .* cannot tell", text)
    assert "accuracy: roughly 12,000 rows would decide it (now 1,000)" in " ".join(text.split())
    assert re.search(r"^  p95   \.*!\.*\|\.*!\.*\[=*o=*\]", text, re.M), text
    # Results are words: the rule table's first column says fail/inconclusive/pass.
    rows = re.findall(r"^│ (fail|inconclusive|pass)\s", text, re.M)
    assert rows and rows == sorted(rows, key=["fail", "inconclusive", "pass"].index)


def test_html_charts_label_champion_candidate_and_the_tolerance(tmp_path: Path) -> None:
    report = build(tmp_path)
    page = parse(html.render(report))
    assert "Latency: candidate vs champion" in page.headings
    assert "Latency percentiles: champion vs candidate" in page.headings
    assert "Quality: candidate vs champion" in page.headings
    assert "champion (ms)" in page.svg_texts and "candidate (ms)" in page.svg_texts
    # Quality's interval chart: a row per metric (lower-is-better ones negated), the tolerance.
    for label in ("accuracy", "f1_macro", "roc_auc", "-log_loss"):
        assert label in page.svg_texts
    assert "-0.15" in page.svg_texts and "-0.02" in page.svg_texts
    rows = page.rows["Quality: candidate vs champion"]
    assert rows[0] == "metric difference 95% CI tolerated drop decision"
    assert "accuracy ↑ -0.1610 -0.1970 to -0.1210 0.15 cannot tell" in rows


def test_stage_renderers_need_no_policy(tmp_path: Path) -> None:
    """A stage's comparisons under its default policy (a report made without a config)."""
    load = ev.Evidence.model_validate(seed("load"))
    quality = ev.Evidence.model_validate(seed("quality"))
    assert LoadStage().comparisons(load, LoadPolicy())[0].title == "Latency: candidate vs champion"
    found = QualityStage().comparisons(quality, QualityPolicy())[0]
    assert [row[-1] for row in found.rows] == ["worse beyond the tolerance"] * 4


def _chromium() -> str:
    found = shutil.which("chromium")
    assert found, "chromium is not installed: run scripts/setup.sh dev (Debian's chromium package)"
    return found


def test_chromium_renders_the_report_not_blank(tmp_path: Path) -> None:
    from PIL import Image

    report = build(tmp_path)
    _, page = files.write(report, tmp_path / "out")
    home = tmp_path / "home"
    home.mkdir()
    screenshot = tmp_path / "report.png"
    environment = os.environ | {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    done = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={screenshot}",
            "--window-size=1280,1600",
            page.as_uri(),
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and screenshot.is_file(), done.stderr[-2000:]
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1280, 1600)
    counts = {colour: count for count, colour in image.getcolors(1 << 24) or []}
    total = image.size[0] * image.size[1]
    ink = total - counts.get((255, 255, 255), 0)
    assert ink > 0.03 * total, f"only {ink} non-white pixels: a blank page?"
    assert len(counts) > 50, f"{len(counts)} colours: text and badges did not render"
    # The failed badges and the inconclusive one are on screen in their colours.
    for rgb in ((0xCF, 0x22, 0x2E), (0x9A, 0x67, 0x00)):
        assert counts.get(rgb, 0) > 200, f"no {rgb} badge on screen"


def test_the_model_card_shows_both_comparisons(tmp_path: Path) -> None:
    from mlgate.report import card

    build(tmp_path)
    content = card.build(config.parse(CONFIG), tmp_path / "evidence")
    text, page = card.markdown(content), card.html(content)
    for title in ("Latency\\: candidate vs champion", "Quality\\: candidate vs champion"):
        assert f"**{title}**" in text
    assert "<h3>Quality: candidate vs champion</h3>" in page and "<svg" in page
    assert "roughly 12\\,000 rows would decide it" in text


def test_a_passing_report_says_nothing_needs_attention(tmp_path: Path) -> None:
    evidence_dir = tmp_path / "evidence"
    evidence_dir.mkdir()
    (evidence_dir / "load.json").write_text(json.dumps(seed("load")))
    cfg = config.parse({"stages": {"load": CONFIG["stages"]["load"]}})
    policy.write(policy.evaluate(cfg, evidence_dir), tmp_path / "verdict.json")
    report = model.load(cfg, tmp_path / "verdict.json", evidence_dir)
    page = parse(html.render(report))
    assert page.headings[:3] == ["mlgate: passed", "Needs attention", "Stages"]
    assert "Nothing: every rule passed." in html.render(report)
    assert all(row.startswith("pass ") for row in page.rows["Passed rules"][1:])
    # No registered model in this evidence (a command served it): the header says so.
    assert "Model not named by the evidence" in page.rows[page.headings[0]]
