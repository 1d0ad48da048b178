"""The GitHub Actions job summary ($GITHUB_STEP_SUMMARY) and step outputs ($GITHUB_OUTPUT)."""

from __future__ import annotations

import os

from mlgate import actions_env
from mlgate.report import markdown
from mlgate.report.interface import Delivery, ReportOptions, Sink
from mlgate.report.model import Report


class JobSummarySink(Sink):
    name = "job-summary"

    def wanted(self, options: ReportOptions) -> bool:
        return bool(os.environ.get("GITHUB_STEP_SUMMARY") or os.environ.get("GITHUB_OUTPUT"))

    def deliver(self, report: Report, options: ReportOptions) -> Delivery:
        actions_env.set_output("verdict", report.verdict.outcome)
        actions_env.set_output("report-path", str(options.output_dir))
        summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path:
            with open(summary_path, "a", encoding="utf-8") as handle:
                handle.write(markdown.full(report, markdown.SUMMARY_LIMIT) + "\n")
        return Delivery("job summary and step outputs written")
