"""The scan evidence in a report: findings counted by source and severity, the worst listed, in
Markdown and HTML."""

from __future__ import annotations

from collections import Counter

from mlgate.evidence import SEVERITIES, Evidence
from mlgate.report import escape


def findings_markdown(evidence: Evidence) -> str:
    """Findings grouped by source and severity: counts, then the worst ones listed."""
    if not evidence.findings:
        return ""
    grid: Counter[tuple[str, str]] = Counter(
        (f.source or "other", f.severity) for f in evidence.findings
    )
    sources = sorted({s for s, _ in grid})
    counts = []
    for source in sources:
        waived = sum(
            1 for f in evidence.findings if (f.source or "other") == source and f.waived_by
        )
        cells = [str(grid[(source, s)] or "") for s in SEVERITIES]
        counts.append([escape.inline(source), *cells, str(waived or "")])
    lines = escape.markdown_table(["source", *SEVERITIES, "waived"], counts)
    worst = sorted(evidence.findings, key=lambda f: SEVERITIES.index(f.severity))[:20]
    listed = []
    for f in worst:
        where = (f.package and f"{f.package} {f.version or ''}".strip()) or f.path or ""
        if f.image:
            where = f"{where} in {f.image}" if where else f.image
        mark = " (waived)" if f.waived_by else ""
        listed.append(
            [
                f"{f.severity}{mark}",
                escape.inline(f.id, 100),
                escape.inline(where, 200),
                escape.inline(f.title or f.message, 200),
            ]
        )
    lines += ["", *escape.markdown_table(["severity", "id", "where", "what"], listed)]
    if len(evidence.findings) > len(worst):
        lines.append(f"\n{len(evidence.findings) - len(worst)} more in the SARIF files.")
    return "\n".join(lines)


def findings_html(evidence: Evidence) -> str:
    if not evidence.findings:
        return ""
    return escape.html_table(
        ("severity", "source", "id", "aliases", "where", "image", "what"),
        (
            (
                f.severity + (" (waived)" if f.waived_by else ""),
                f.source or "",
                f.id,
                ", ".join(f.aliases),
                (f.package and f"{f.package} {f.version or ''}") or f.path or "",
                f.image or "",
                f.title or f.message,
            )
            for f in sorted(evidence.findings, key=lambda f: SEVERITIES.index(f.severity))
        ),
    )
