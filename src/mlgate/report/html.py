"""A self-contained HTML report: one file, inline CSS, no scripts, every value escaped.

It reads top down as a user acts: the verdict and what it is about (model, version, commit),
then the rules that failed or could not decide, with their reasons, then the stages, every rule,
each stage's comparison and charts, and the findings. Outcomes are words on coloured badges,
not emoji (a browser without an emoji font shows those as empty boxes)."""

from __future__ import annotations

from mlgate.report import comparison
from mlgate.report.escape import html_text as esc
from mlgate.report.model import LABELS, WORDS, Report, verdict_label
from mlgate.verdict import Outcome, RuleResult

_CSS = """
body{font:14px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1f2328}
table{border-collapse:collapse;margin:1rem 0;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}.pass{color:#1a7f37}.fail{color:#cf222e}.inconclusive,.warn{color:#9a6700}
.badge{display:inline-block;padding:0 .55rem;border-radius:1rem;color:#fff;font-weight:600;
white-space:nowrap}.badge.pass{background:#1a7f37;color:#fff}
.badge.fail{background:#cf222e;color:#fff}.badge.inconclusive,.badge.warn{background:#9a6700;color:#fff}
table.facts{width:auto}table.facts th{width:7rem}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;white-space:pre-wrap}
details{margin:.3rem 0}summary{cursor:pointer}svg{display:block;margin:.5rem 0}
"""


def badge(outcome: Outcome, text: str | None = None) -> str:
    return f"<span class='badge {outcome}'>{esc(text or WORDS[outcome])}</span>"


def _rules_table(rules: list[RuleResult]) -> str:
    rows = "".join(
        f"<tr><td>{badge(r.outcome)}</td><td>{esc(r.stage)}</td><td><code>{esc(r.rule)}</code>"
        f"</td><td class='{r.outcome}'>{esc(r.reason)}</td></tr>"
        for r in rules
    )
    return (
        "<table class='rules'><tr><th>Result</th><th>Stage</th><th>Rule</th><th>Reason</th></tr>"
        f"{rows}</table>"
    )


def _header(report: Report) -> str:
    verdict = report.verdict
    counts = ", ".join(
        f"{n} {LABELS[o]}"
        for o in ("fail", "inconclusive", "warn", "pass")
        if (n := sum(1 for r in verdict.rules if r.outcome == o))
    )
    subject = report.subject
    facts = [
        ("Verdict", f"{badge(verdict.outcome, verdict_label(verdict))} {esc(counts)} rules"),
        ("Model", esc(subject.model or "not named by the evidence")),
        ("Version", esc(subject.version or "not a registered version")),
        ("Candidate", f"<code>{esc(subject.uri)}</code>" if subject.uri else "not named"),
        ("Commit", f"<code>{esc(verdict.commit)}</code>" if verdict.commit else "not recorded"),
        ("Judged", f"{esc(verdict.created_at)}; policy <code>{esc(verdict.policy_digest)}</code>"),
    ]
    if report.run_url:
        facts.append(("Run", f"<a href='{esc(report.run_url)}'>workflow run</a>"))
    rows = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in facts)
    return (
        f"<header><h1>{esc(report.title)}: {badge(verdict.outcome, verdict_label(verdict))}"
        f"</h1><table class='facts'>{rows}</table></header>"
    )


def render(report: Report) -> str:
    verdict = report.verdict
    ordered = report.rules_in_order()
    to_act_on = [r for r in ordered if r.outcome != "pass"]
    attention = (
        "<h2 id='attention'>Needs attention</h2>" + _rules_table(to_act_on)
        if to_act_on
        else "<h2 id='attention'>Needs attention</h2><p>Nothing: every rule passed.</p>"
    )
    passing = [r for r in ordered if r.outcome == "pass"]
    passed = f"<h2>Passed rules</h2>{_rules_table(passing)}" if passing else ""
    stages = "".join(
        f"<tr><td>{badge(verdict.stage_outcome(s))}</td><td>{esc(report.stage_title(s))}</td>"
        f"<td>{esc(report.stage_summary(s))}</td></tr>"
        for s in report.stages
    )
    findings = "".join(
        f"<details><summary>{esc(f.severity)}: {esc(f.title or f.id)}</summary>"
        f"<p>{esc(f.message)}"
        + (f" — <code>{esc(f.path)}{f':{f.line}' if f.line else ''}</code>" if f.path else "")
        + "</p>"
        + (f"<pre>{esc(f.detail)}</pre>" if f.detail else "")
        + "</details>"
        for s in report.stages
        for f in report.findings(s)
    )
    sections = ""
    for s in report.stages:
        body = "".join(comparison.html(c) for c in report.comparisons(s)) + report.stage_html(s)
        if body:
            sections += f"<section><h2>{esc(report.stage_title(s))}</h2>{body}</section>"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"
        f"<title>{esc(report.title)}: {verdict_label(verdict)}</title><style>{_CSS}</style>"
        f"</head><body>{_header(report)}{attention}"
        "<h2>Stages</h2><table><tr><th>Result</th><th>Stage</th><th>Summary</th></tr>"
        f"{stages}</table>{passed}{sections}"
        + (f"<h2>Findings</h2>{findings}" if findings else "")
        + "</body></html>\n"
    )
