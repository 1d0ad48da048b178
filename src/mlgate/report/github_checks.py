"""GitHub as a report sink: check runs (or statuses), the sticky PR comment."""

from __future__ import annotations

from mlgate.report.interface import Delivery, DeliveryFailed, ReportOptions, Sink
from mlgate.report.model import Report


class GitHubSink(Sink):
    name = "github"

    def wanted(self, options: ReportOptions) -> bool:
        return options.in_actions and not options.local_only

    def deliver(self, report: Report, options: ReportOptions) -> Delivery:
        if not options.github_token:
            return Delivery(
                "nothing published",
                ["no GitHub token: the verdict is in the job summary and the report only"],
            )
        from mlgate.github import context, publish
        from mlgate.github.client import Rejected, Unreachable

        ctx = context.from_env(options.github_token, options.pr_number, options.sha)
        try:
            done = publish.publish(report, ctx, options.settings, options.write_delay)
        except (Unreachable, Rejected) as exc:
            raise DeliveryFailed(f"could not publish to GitHub: {exc}") from None
        published = ", ".join(done.checks or done.statuses) or "no checks"
        return Delivery(f"published {published}; comment {done.comment}", done.warnings)
