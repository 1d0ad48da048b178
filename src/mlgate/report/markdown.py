"""Markdown for the PR comment, check runs and job summary, always within a size limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

from mlgate.evidence import Finding
from mlgate.report import comparison, escape
from mlgate.report.model import ICONS, WORDS, Report, verdict_label
from mlgate.verdict import Outcome

# GitHub's limits: check-run summary/text and issue comments 65,535 characters.
CHECK_LIMIT = 65_535
COMMENT_LIMIT = 65_535
# The job summary takes 1 MiB per step; limits here count characters, and a character takes
# at most 4 bytes in UTF-8.
SUMMARY_LIMIT = 250_000


def headline(report: Report) -> str:
    outcome = report.verdict.outcome
    line = f"{ICONS[outcome]} **{escape.inline(report.title)}: {verdict_label(report.verdict)}**"
    subject = report.subject
    about = []
    if subject.model or subject.uri:
        about.append(f"model {escape.inline(subject.model or '?')}")
        if subject.version:
            about[-1] += f" version {escape.inline(subject.version)}"
        if subject.uri:
            about[-1] += f" ({escape.code(subject.uri)})"
    commit = report.verdict.commit
    # Which commit the verdict is about: a comment updated in place must say so.
    if commit:
        about.append(f"commit {escape.code(commit[:12])}")
    return line + (" for " + ", ".join(about) if about else "")


def outcome_cell(outcome: Outcome) -> str:
    """The outcome as a word beside its emoji: an emoji alone may render as an empty box."""
    return f"{ICONS[outcome]} {WORDS[outcome]}"


def rules_table(report: Report, stages: Sequence[str], limit: int = CHECK_LIMIT) -> str:
    header, rule_line, *rows = escape.markdown_table(
        ["Result", "Stage", "Rule", "Reason"],
        (
            [
                outcome_cell(rule.outcome),
                escape.inline(rule.stage),
                escape.code(rule.rule),
                escape.inline(rule.reason),
            ]
            for rule in report.rules_in_order()
            if rule.stage in stages
        ),
    )
    # The blank line ends the table before the notice.
    notice = "\n" + truncation_notice(report)
    return fit(f"{header}\n{rule_line}", rows, limit, notice, "\n")


def stages_table(report: Report) -> str:
    rows = (
        [
            outcome_cell(report.verdict.stage_outcome(stage)),
            escape.inline(report.stage_title(stage)),
            escape.inline(report.stage_summary(stage)),
        ]
        for stage in report.stages
    )
    return "\n".join(escape.markdown_table(["Result", "Stage", "Summary"], rows))


def finding_entry(finding: Finding) -> str:
    where = ""
    if finding.path:
        location = finding.path + (f":{finding.line}" if finding.line else "")
        where = f" — {escape.code(location)}"
    # <details> opens an HTML block up to the blank line: its text is HTML, not markdown.
    title = escape.html_inline(finding.title or finding.id, limit=300)
    lines = [
        f"<details><summary>{escape.html_inline(finding.severity)}: {title}</summary>",
        "",
        f"{escape.inline(finding.message, limit=2000)}{where}",
        "",
    ]
    if finding.detail:
        lines += [escape.block(finding.detail), ""]
    lines.append("</details>")
    return "\n".join(lines)


class _Entries(Sequence[str]):
    """Findings rendered as entries on demand: `fit` stops at its limit, so a comment of a
    report with thousands of findings renders only the few hundred it shows."""

    def __init__(self, findings: list[Finding]) -> None:
        self._findings = findings

    def __len__(self) -> int:
        return len(self._findings)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [finding_entry(f) for f in self._findings[index]]
        return finding_entry(self._findings[index])


def fit(head: str, entries: Sequence[str], limit: int, notice: str, separator: str = "\n\n") -> str:
    """`head` plus as many entries as fit in `limit` characters, and a notice if any were cut.

    The notice is formatted with the number of entries left out.
    """
    parts = [head]
    used = len(head)
    for index, entry in enumerate(entries):
        cost = len(entry) + len(separator)
        reserve = len(notice) + 20 if index < len(entries) - 1 else 0
        if used + cost + reserve > limit:
            parts.append(notice.format(omitted=len(entries) - index))
            break
        parts.append(entry)
        used += cost
    text = separator.join(parts)
    if len(text) > limit:  # the head alone was too long
        cut = notice.format(omitted=len(entries))
        text = text[: limit - len(cut) - 2] + "\n\n" + cut
    return text


def annotation_notice(report: Report, annotated: int, total: int) -> str:
    """Said on a stage's check run when it annotates fewer findings than it has."""
    return (
        f"> **Annotated:** {annotated:,} of {total:,} findings with a file, the most pressing "
        f"(`report.max_annotations`); all are in the {escape.code(report.artifact_name)} artifact."
    )


def truncation_notice(report: Report) -> str:
    where = f"the {escape.code(report.artifact_name)} artifact"
    if report.run_url:
        where += f" of [this run]({report.run_url})"
    return f"> **Truncated:** {{omitted}} more not shown here; the full report is in {where}."


def full(report: Report, limit: int, marker: str = "") -> str:
    """The whole gate: headline, stages, rules, findings — for the comment and job summary."""
    head = "\n\n".join(
        part
        for part in (
            marker,
            headline(report),
            # The rules first, failing and inconclusive ones on top: what to act on.
            rules_table(report, report.stages),
            stages_table(report),
            _run_link(report),
        )
        if part
    )
    for stage_name in report.stages:
        extra = stage_section(report, stage_name)
        if extra:
            head += f"\n\n### {escape.inline(report.stage_title(stage_name))}\n\n{extra}"
    card = report.evidence_dir.parent / "model-card.html" if report.evidence_dir else None
    if card is not None and card.is_file():
        artifact = escape.code(report.artifact_name)
        head += f"\n\nModel card: `model-card.html` in the {artifact} artifact."
    entries = _Entries([f for stage in report.stages for f in report.findings(stage)])
    if entries:
        head += "\n\n### Findings"
    return fit(head, entries, limit, truncation_notice(report))


def stage(
    report: Report, stage_name: str, limit: int = CHECK_LIMIT, note: str = ""
) -> tuple[str, str]:
    """Check-run summary and text for one stage; `note` (markdown) follows its first line."""
    line = (
        f"{outcome_cell(report.verdict.stage_outcome(stage_name))}: "
        f"{escape.inline(report.stage_summary(stage_name))}"
    ) + (f"\n\n{note}" if note else "")
    summary = line + "\n\n" + rules_table(report, [stage_name], limit - len(line) - 2)
    entries = _Entries(report.findings(stage_name))
    extra = stage_section(report, stage_name)
    text = fit(extra, entries, limit, truncation_notice(report)) if entries or extra else ""
    return summary, text


def aggregate(report: Report, limit: int = CHECK_LIMIT) -> tuple[str, str]:
    """Check-run summary and text for the aggregate check."""
    summary = fit(
        "\n\n".join([headline(report), stages_table(report)]),
        [],
        limit,
        truncation_notice(report),
    )
    return summary, rules_table(report, report.stages, limit)


def stage_section(report: Report, stage_name: str) -> str:
    """A stage's comparisons with the champion (table, decision, intervals), then its own part."""
    parts = [comparison.markdown(c) for c in report.comparisons(stage_name)]
    parts.append(report.stage_markdown(stage_name))
    return "\n\n".join(p for p in parts if p)


def _run_link(report: Report) -> str:
    return f"[Workflow run]({report.run_url})" if report.run_url else ""
