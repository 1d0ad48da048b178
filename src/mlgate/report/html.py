"""A self-contained HTML report: one file, inline CSS, no scripts, every value escaped."""

from __future__ import annotations

from mlgate.report.escape import html_text as esc
from mlgate.report.model import ICONS, LABELS, Report

_CSS = """
body{font:14px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1f2328}
table{border-collapse:collapse;margin:1rem 0;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}.pass{color:#1a7f37}.fail{color:#cf222e}.inconclusive{color:#9a6700}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;white-space:pre-wrap}
details{margin:.3rem 0}summary{cursor:pointer}
"""


def render(report: Report) -> str:
    verdict = report.verdict
    rows = "".join(
        f"<tr><td class='{r.outcome}'>{ICONS[r.outcome]} {LABELS[r.outcome]}</td>"
        f"<td>{esc(r.stage)}</td><td><code>{esc(r.rule)}</code></td><td>{esc(r.reason)}</td></tr>"
        for r in verdict.rules
    )
    stages = "".join(
        f"<tr><td>{ICONS[verdict.stage_outcome(s)]}</td><td>{esc(report.stage_title(s))}</td>"
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
    run = f"<p><a href='{esc(report.run_url)}'>Workflow run</a></p>" if report.run_url else ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"
        f"<title>{esc(report.title)}: {LABELS[verdict.outcome]}</title><style>{_CSS}</style>"
        f"</head><body><h1 class='{verdict.outcome}'>{ICONS[verdict.outcome]} "
        f"{esc(report.title)}: {LABELS[verdict.outcome]}</h1>{run}"
        f"<p>Verdict made {esc(verdict.created_at)}; policy {esc(verdict.policy_digest)}</p>"
        "<h2>Stages</h2><table><tr><th></th><th>Stage</th><th>Summary</th></tr>"
        f"{stages}</table><h2>Rules</h2><table><tr><th>Result</th><th>Stage</th><th>Rule</th>"
        f"<th>Reason</th></tr>{rows}</table>"
        + "".join(
            f"<h2>{esc(report.stage_title(s))}</h2>{report.stage_html(s)}"
            for s in report.stages
            if report.stage_html(s)
        )
        + (f"<h2>Findings</h2>{findings}" if findings else "")
        + "</body></html>\n"
    )
