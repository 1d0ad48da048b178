"""The verdict in the terminal (rich), for local runs and the Actions log."""

from __future__ import annotations

import secrets
import shutil

from mlgate.report import escape as untrusted
from mlgate.report.interface import Delivery, ReportOptions, Sink
from mlgate.report.model import ICONS, LABELS, Report

_STYLES = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
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

    # Wide enough for the rule table in a CI log or pipe, where the width is unknown.
    console = Console(highlight=False, width=max(110, shutil.get_terminal_size().columns))
    verdict = report.verdict
    table = Table(title=f"{escape(report.title)}: {LABELS[verdict.outcome]}", title_justify="left")
    for column in ("", "Stage", "Rule", "Reason"):
        table.add_column(column)
    for rule in verdict.rules:
        table.add_row(
            ICONS[rule.outcome],
            escape(rule.stage),
            escape(rule.rule),
            f"[{_STYLES[rule.outcome]}]{escape(rule.reason)}[/]",
        )
    console.print(table)
    findings = [f for stage in report.stages for f in report.findings(stage)]
    for finding in findings[:_FINDINGS_SHOWN]:
        where = f" ({finding.path}:{finding.line or ''})" if finding.path else ""
        console.print(
            f"  • {escape(finding.title or finding.id)}{escape(where)}: "
            f"{escape(finding.message.splitlines()[0] if finding.message else '')}"
        )
    if len(findings) > _FINDINGS_SHOWN:
        console.print(f"  … and {len(findings) - _FINDINGS_SHOWN} more in the full report")
