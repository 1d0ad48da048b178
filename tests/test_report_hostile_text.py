"""Every string in evidence is untrusted (the jobs that write it run the pull request's code):
put hostile text into each string field of valid evidence of every stage, render every report
(the comment and job summary, check-run summaries and texts, the HTML report, the model card)
and check that none of it is live: no image or link, no @-mention, no raw tag or comment, no
heading, no table broken by a pipe or a line break.

Markdown is checked as GitHub would read it: rendered by a CommonMark parser with GFM tables
(markdown-it-py), and the resulting HTML inspected element by element.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from mlgate import config
from mlgate import evidence as ev
from mlgate.github import publish
from mlgate.report import card, html, markdown, model, terminal
from mlgate.stages import STAGES
from mlgate.verdict import RuleResult, Verdict, worst

# The pipe first: renderers shorten long text, and the pipe must be inside what they keep.
HOSTILE = (
    "a|b ![x](http://evil.example/i.png) [link](http://evil.example/l) @org/team "
    "<script>alert(1)</script> `tick` <!-- mlgate --> <img src=x onerror=alert(1)> "
    "**bold** _em_ \x1b[2J\x1b]0;evil-title\x07\x9b31m x\n# evil-heading\n| c | d | :smile:"
)
_TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Which string fields must stay what they are for the evidence to be valid at all.
_FIXED = {"stage", "status", "started_at", "finished_at", "schema_version", "severity", "sha256"}
_DIGEST = "sha256:" + "ab" * 32


def _evidence(stage: str, **fields: Any) -> dict[str, Any]:
    now = ev.now().isoformat()
    provenance = {
        "repository": "octo/model",
        "git_sha": "a" * 40,
        "ref": "refs/pull/7/merge",
        "workflow_run_id": "42",
        "actor": "octo-dev",
        "runner_os": "Linux",
        "tool_versions": {"mlgate": "0.1.0", "python": "3.11.7"},
        "config_digest": "c" * 16,
    }
    document = {"stage": stage, "status": "passed", "started_at": now, "finished_at": now}
    return document | {"provenance": provenance} | fields


def finding(**fields: Any) -> dict[str, Any]:
    return {
        "id": "F-1",
        "severity": "high",
        "message": "something failed",
        "rule": "test-failure",
        "path": "tests/test_model.py",
        "line": 3,
        "title": "test_predict",
        "detail": "assert 1 == 2\nTraceback ...",
    } | fields


def samples() -> dict[str, dict[str, Any]]:
    """Valid evidence of every stage, with the fields their reports render."""
    model_ref = {"uri": "models:/iris/2", "resolved": "models:/iris/2", "digest": _DIGEST}
    # The report's header names the registered model and version.
    model_ref |= {"registered_model": "iris", "version": "2"}
    comparison = {"metric": "accuracy", "candidate": 0.91, "champion": 0.9, "difference": 0.01}
    comparison |= {"ci": [-0.01, 0.03], "p_value": 0.4, "higher_is_better": True}
    return {
        "tests": _evidence(
            "tests",
            status="failed",
            metrics={"tests": 3, "passed": 2, "failed": 1, "errors": 0, "skipped": 0, "flaky": 0}
            | {"duration_s": 1.5},
            findings=[finding(id="tests/test_model.py::test_predict")],
            data={"sources": ["junit.xml"]},
        ),
        "bench": _evidence(
            "bench",
            metrics={"tests/test_bench.py::test_predict.mean_ms": 1.25},
            data={
                "benchmarks": [
                    {
                        "name": "test_predict",
                        "fullname": "tests/test_bench.py::test_predict",
                        "samples_artifact": "bench-rounds.json.gz",
                    }
                ]
            },
        ),
        "load": _evidence(
            "load",
            metrics={"p50_ms": 5.0, "p90_ms": 8.0, "p95_ms": 9.0, "p99_ms": 12.0, "max_ms": 20.0}
            | {"mean_ms": 6.0, "throughput_rps": 100.0, "error_rate": 0.0, "requests": 1000}
            | {"users": 4, "mode": "closed", "duration_s": 10.0},
            data={
                "url": "http://127.0.0.1:8080/invocations",
                "samples_artifact": "load-samples.txt.gz",
                "comparison": {
                    "baseline_ms": {"p50": 5.0, "p90": 8.0, "p95": 9.0, "p99": 11.0},
                    "verdict": "no regression",
                    # A champion served side by side: the comparison every report shows.
                    "method": "paired rounds",
                    "rounds": 5,
                    "baseline": "champion (interleaved A/B)",
                    "metrics": [
                        {"metric": "p95", "relative_change": 0.02, "ci": [-0.05, 0.12]}
                        | {"p_value": 0.4, "baseline": 9.0, "candidate": 9.2}
                    ],
                },
                "serve": {"source": "mlflow", "model_uri": "models:/iris@candidate"},
                "champion": {"source": "mlflow", "model_uri": "models:/iris@production"},
            },
        ),
        "scan": _evidence(
            "scan",
            findings=[
                finding(
                    id="PYSEC-2019-217",
                    rule="vulnerable-dependency",
                    tool="pip-audit",
                    source="dependencies",
                    aliases=["CVE-2019-10906"],
                    package="jinja2",
                    version="2.10",
                    fixed_versions=["2.10.1"],
                    path="requirements.txt",
                    fingerprint="fp-1",
                    waived_by={"id": "CVE-2019-10906", "owner": "@ml", "reason": "unused"}
                    | {"expires": "2026-12-31"},
                ),
                finding(
                    id="github-pat",
                    severity="critical",
                    rule="secret",
                    tool="image",
                    source="secrets",
                    image="model:1",
                    path="/app/settings.env",
                    fingerprint="fp-2",
                ),
            ],
            data={
                "scanners": ["pip-audit", "image"],
                "sarif": [],
                "waivers": [
                    {
                        "id": "CVE-2019-10906",
                        "scope": {"package": "jinja2"},
                        "reason": "unused",
                        "owner": "@ml",
                        "expires": "2026-12-31",
                    }
                ],
            },
        ),
        "drift": _evidence(
            "drift",
            metrics={"features": 2, "drifted_features": 1, "max_psi": 0.4},
            data={
                "features": [
                    {
                        "feature": "age",
                        "kind": "numeric",
                        "test": "ks",
                        "psi": 0.4,
                        "statistic": 0.3,
                        "p_value": 0.001,
                        "p_value_raw": 0.0005,
                        "drifted": True,
                        "bins": 10,
                        "reference_missing": 0,
                        "current_missing": 0,
                    },
                    {
                        "feature": "colour",
                        "kind": "categorical",
                        "test": "chi2",
                        "psi": 0.01,
                        "statistic": 0.2,
                        "p_value": 0.8,
                        "p_value_raw": 0.8,
                        "drifted": False,
                        "bins": 3,
                        "reference_missing": 0,
                        "current_missing": 1,
                    },
                ],
                "drifted": ["age"],
            },
        ),
        "probe": _evidence(
            "probe",
            metrics={"cases_run": 3, "rejected": 1, "accepted_garbage": 0, "broke": 1}
            | {"stability_rate": 1.0, "compared_predictions": 10},
            findings=[finding(id="probe:nan", rule="probe-server-error", path=None, line=None)],
            data={
                "cases": [
                    {"case": "nan", "description": "NaN for a number", "outcome": "server-error"}
                    | {"status": 500, "detail": "HTTP 500"},
                    {"case": "empty-body", "description": "an empty body", "outcome": "crash"}
                    | {"status": None, "failure": "timeout", "detail": "no answer within 3 s"},
                    {"case": "invalid-json", "description": "not JSON", "outcome": "skipped"}
                    | {"detail": "not sent"},
                ],
            },
        ),
        "quality": _evidence(
            "quality",
            metrics={"rows": 200, "accuracy.candidate": 0.91},
            data={
                "task": "classification",
                "target": "label",
                "resamples": 1000,
                "confidence": 0.95,
                "dataset": {"path": "data/test.parquet", "sha256": "ab" * 32, "rows": 200},
                "candidate": model_ref,
                "champion": model_ref | {"uri": "models:/iris@champion"},
                "champion_note": "the registered champion",
                "metrics": [comparison],
                "slices": [
                    {
                        "column": "segment",
                        "value": "A",
                        "rows": 100,
                        "judged": True,
                        "metrics": [comparison],
                        "note": "few rows",
                    }
                ],
                "notes": ["the champion was trained on older data"],
            },
        ),
    }


def _string_leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in _FIXED:
                yield from _string_leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _string_leaves(value, (*path, index))
    elif isinstance(node, str):
        yield path


def _replaced(document: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return HOSTILE
    head, *rest = path
    if isinstance(document, dict):
        return {k: _replaced(v, tuple(rest)) if k == head else v for k, v in document.items()}
    return [_replaced(v, tuple(rest)) if i == head else v for i, v in enumerate(document)]


def variants(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each string field hostile on its own (other fields keep the renderers on their usual
    paths), all of them at once, and hostile metric names."""
    leaves = list(_string_leaves(document))
    everything = document
    for path in leaves:
        yield "/".join(map(str, path)), _replaced(document, path)
        everything = _replaced(everything, path)
    yield "every string", everything
    # Before the last dot, so suffixes such as '.mean_ms' still say what the number is.
    metrics = {
        "{0}{3}{1}{2}".format(*key.rpartition("."), HOSTILE): value
        for key, value in document.get("metrics", {}).items()
    }
    yield "metric names", document | {"metrics": metrics}


def report_of(evidence: ev.Evidence, evidence_dir: Path) -> model.Report:
    stage = STAGES[evidence.stage]
    try:
        rules = stage.evaluate(stage.policy_model(), evidence)
    except Exception as exc:  # odd evidence is another test's subject; the reports are this one's
        rules = [RuleResult(stage=evidence.stage, rule="x", outcome="fail", reason=str(exc))]
    if not rules:
        rules = [RuleResult(stage=evidence.stage, rule="x", outcome="pass", reason="ok")]
    verdict = Verdict(
        outcome=worst(r.outcome for r in rules),
        created_at=ev.now().isoformat(),
        commit="a" * 40,
        config_digest="c",
        policy_digest="p",
        rules=rules,
        evidence=[],
    )
    return model.Report(
        verdict=verdict,
        evidence={evidence.stage: evidence},
        title="mlgate",
        artifact_name="mlgate-report",
        stages=[evidence.stage],
        evidence_dir=evidence_dir,
    )


class _Elements(HTMLParser):
    """Tags, attributes, comments and text (with the tags it is inside) of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.comments: list[str] = []
        self.texts: list[tuple[tuple[str, ...], str]] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag not in ("br", "hr", "meta", "rect", "img", "input"):
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            while self._open.pop() != tag:
                pass

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_data(self, data: str) -> None:
        self.texts.append((tuple(self._open), data))


_LIVE_TAGS = {"script", "img", "a", "iframe", "object", "embed", "style", "form", "input", "link"}
_MENTION = re.compile(r"@\w")


def assert_inert_html(page: str, where: str, own_styles: int = 0, markdown: bool = True) -> None:
    """`own_styles`: the page's own <style> elements (a self-contained report has one);
    `markdown`: the page is rendered markdown, which GitHub shows with @-mentions linked (a
    self-contained HTML report is opened in a browser, where they are plain text)."""
    parsed = _Elements()
    parsed.feed(page)
    parsed.close()
    styles = [t for t, _ in parsed.tags if t == "style"]
    assert len(styles) == own_styles, f"{where}: {len(styles)} style elements"
    live = [t for t, _ in parsed.tags if t in _LIVE_TAGS - {"style"}]
    assert not live, f"{where}: live elements {live}"
    attributes = [(t, a) for t, attrs in parsed.tags for a in attrs if "evil" in str(a[1])]
    assert not attributes, f"{where}: hostile attributes {attributes}"
    assert not parsed.comments, f"{where}: HTML comments {parsed.comments}"
    for inside, text in parsed.texts:
        if "code" in inside or "pre" in inside:
            continue  # GitHub links no mention inside code
        assert not (markdown and _MENTION.search(text)), f"{where}: a live @-mention in {text!r}"
        if any(re.fullmatch(r"h[1-6]", tag) for tag in inside):
            assert "evil-heading" not in text, f"{where}: a heading from evidence: {text!r}"


_UNESCAPED_PIPE = re.compile(r"(?<!\\)(?:\\\\)*\|")


def assert_tables_intact(text: str, where: str) -> None:
    """Every row of every table has as many cells as its header: no pipe or line break from
    evidence split a row."""
    rows: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            rows.append(line)
            continue
        if rows:
            cells = [len(_UNESCAPED_PIPE.findall(row)) for row in rows]
            assert len(set(cells)) == 1, f"{where}: a table row split: {rows}"
            rows = []


_PARSER = MarkdownIt("commonmark").enable("table")


def assert_inert_markdown(text: str, where: str) -> None:
    assert_tables_intact(text, where)
    assert_inert_html(_PARSER.render(text), where)


def rendered(report: model.Report, evidence_dir: Path) -> Iterator[tuple[str, str, str]]:
    """(what, kind, text) of every report rendered from `report`."""
    yield "comment/job summary", "markdown", markdown.full(report, markdown.COMMENT_LIMIT)
    summary, text = markdown.aggregate(report)
    yield "aggregate check summary", "markdown", summary
    yield "aggregate check text", "markdown", text
    for output in publish.outputs(report, "mlgate"):
        yield f"{output.name} check summary", "markdown", output.summary
        yield f"{output.name} check text", "markdown", output.text
        yield f"{output.name} check title", "plain", output.title
    for output in publish.outputs(report, "mlgate", max_annotations=0):  # with its notice
        yield f"{output.name} check summary, not annotated", "markdown", output.summary
    yield "HTML report", "html", html.render(report)
    content = card.build(config.parse({"stages": {}}), evidence_dir)
    yield "model card", "markdown", card.markdown(content)
    yield "model card", "html", card.html(content)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        terminal.render(report)
    yield "terminal", "terminal", printed.getvalue()


def cases() -> dict[str, dict[str, Any]]:
    """The samples, and variants that take other paths through the renderers."""
    found = samples()
    quality = found["quality"]
    alone = {k: v for k, v in quality["data"].items() if k != "champion"}
    found["quality without a champion"] = quality | {"data": alone}
    for stage in STAGES:  # a stage that errored: its reason is shown instead
        found[f"{stage} error"] = found[stage] | {"status": "error", "reason": "it broke"}
    return found


def test_every_stage_has_a_sample() -> None:
    assert set(STAGES) <= set(samples())


@pytest.mark.parametrize("case", sorted(cases()))
def test_hostile_text_in_any_evidence_field_is_inert_in_every_report(
    case: str, tmp_path: Path
) -> None:
    document = cases()[case]
    stage = document["stage"]
    ev.Evidence.model_validate(document)  # the sample itself is valid evidence
    checked, reached = 0, False
    for field, variant in variants(document):
        try:
            evidence = ev.Evidence.model_validate(variant)
        except ValueError:
            continue  # a field whose format the schema fixes
        directory = tmp_path / str(checked)
        ev.write(evidence, directory)
        report = report_of(evidence, directory)
        outputs = list(rendered(report, directory))
        reached = reached or "evil" in outputs[0][2]
        for what, kind, text in outputs:
            where = f"{stage} {field}: {what}"
            assert not _TERMINAL_CONTROL.search(text), f"{where}: a control character"
            if kind == "markdown":
                assert_inert_markdown(text, where)
            elif kind == "html":
                assert_inert_html(text, where, own_styles=1, markdown=False)
            elif kind == "plain":
                assert "\n" not in text, f"{where}: a line break in a plain-text title"
            elif kind == "terminal":
                assert "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in text, (
                    f"{where}: an emoji code from evidence rendered"
                )
        checked += 1
    assert checked >= 5, f"only {checked} variants of {stage} evidence were valid"
    # The hostile text does reach the comment (inert); the load stage's reports show numbers only.
    assert reached or stage == "load", f"no {stage} evidence string reached the comment"


def test_the_checks_see_hostile_text_when_it_is_live() -> None:
    """The checks above are not blind: raw hostile text fails each of them."""
    for page in (
        _PARSER.render(HOSTILE),
        "<p>@org/team</p>",
        "<!-- mlgate -->",
        "<h1>evil-heading</h1>",
    ):
        with pytest.raises(AssertionError):
            assert_inert_html(page, "raw")
    with pytest.raises(AssertionError):
        assert_tables_intact("| a | b |\n|---|---|\n| a|b | c |", "raw")
    with pytest.raises(AssertionError):
        assert_tables_intact("| a | b |\n|---|---|\n| `a|b` | c |", "raw")
