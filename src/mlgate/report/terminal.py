"""The verdict in the terminal (rich), for local runs and the Actions log."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from mlgate.report import charts
from mlgate.report import escape as untrusted
from mlgate.report.comparison import Comparison
from mlgate.report.interface import Delivery, ReportOptions, Sink
from mlgate.report.model import Report, verdict_label

if TYPE_CHECKING:
    from rich.console import Console

_STYLES = {"pass": "green", "warn": "yellow", "fail": "red", "inconclusive": "yellow"}
# Enough failing tests to act on; the files hold the rest.
_FINDINGS_SHOWN = 20


class TerminalSink(Sink):
    name = "terminal"

    def wanted(self, options: ReportOptions) -> bool:
        return True

    def deliver(self, report: Report, options: ReportOptions) -> Delivery:
        if not options.in_actions:
            render(report)
            return Delivery("printed")
        # The report quotes test names and messages: in a workflow log, a wrapped line of them
        # must not be read as a workflow command, so commands are off while it prints.
        token = secrets.token_hex(16)
        print(f"::stop-commands::{token}", flush=True)
        try:
            render(report)
        finally:
            print(f"::{token}::", flush=True)
        return Delivery("printed")


def render(report: Report) -> None:
    from rich.console import Console
    from rich.markup import escape as markup_escape
    from rich.table import Table

    def escape(text: str) -> str:
        # Evidence text: neither rich markup nor terminal control sequences.
        return markup_escape(untrusted.plain(text))

    def word(outcome: str, text: str | None = None) -> str:
        # A word in colour: an emoji alone may show as an empty box in a terminal or log.
        return f"[bold {_STYLES.get(outcome, 'default')}]{escape(text or outcome)}[/]"

    # Wide enough for the rule table in a CI log or pipe, where the width is unknown; no
    # emoji codes: `:smile:` in a test name is evidence text, printed as written.
    console = Console(
        highlight=False, emoji=False, width=max(110, shutil.get_terminal_size().columns)
    )
    verdict = report.verdict
    console.print(
        f"{escape(report.title)}: {word(verdict.outcome, verdict_label(verdict).upper())}"
    )
    subject = report.subject.line()
    if subject:
        console.print(f"  model: {escape(subject)}")
    if verdict.commit:
        console.print(f"  commit: {escape(verdict.commit)}")
    table = Table(title="Rules (failing, inconclusive and warnings first)", title_justify="left")
    for column in ("Result", "Stage", "Rule", "Reason"):
        table.add_column(column)
    for rule in report.rules_in_order():
        table.add_row(
            word(rule.outcome),
            escape(rule.stage),
            escape(rule.rule),
            f"[{_STYLES[rule.outcome]}]{escape(rule.reason)}[/]",
        )
    console.print(table)
    for stage in report.stages:
        for found in report.comparisons(stage):
            _comparison(console, found, escape, word)
    findings = [f for stage in report.stages for f in report.findings(stage)]
    for finding in findings[:_FINDINGS_SHOWN]:
        where = f" ({finding.path}:{finding.line or ''})" if finding.path else ""
        console.print(
            f"  • {escape(finding.title or finding.id)}{escape(where)}: "
            f"{escape(finding.message.splitlines()[0] if finding.message else '')}"
        )
    if len(findings) > _FINDINGS_SHOWN:
        console.print(f"  … and {len(findings) - _FINDINGS_SHOWN} more in the full report")


def _comparison(
    console: Console,
    found: Comparison,
    escape: Callable[[str], str],
    word: Callable[[str, str | None], str],
) -> None:
    """The comparison's table (decisions in colour), its line and its interval chart."""
    from rich.markup import escape as markup_escape
    from rich.table import Table

    table = Table(title=escape(found.title), title_justify="left", caption_justify="left")
    for header in found.headers:
        table.add_column(escape(header))
    for index, row in enumerate(found.rows):
        cells = [escape(c) for c in row]
        if found.outcome(index) and cells:
            cells[-1] = word(found.outcome(index), row[-1])
        table.add_row(*cells)
    console.print(table)
    console.print(f"  {escape(found.caption)}")
    if found.intervals:
        console.print(f"  {escape(found.axis)}")
        # Labels made plain first: the chart's spacing must survive (plain() collapses it).
        rows = [replace(row, label=untrusted.plain(row.label)) for row in found.intervals]
        for line in charts.text_intervals(rows):
            console.print(f"  {markup_escape(line)}")
        console.print(f"  {escape(charts.TEXT_LEGEND)}")
