"""Publish a report to GitHub: checks (or statuses when checks are not allowed), the comment.

Publishing never loses the verdict: a token that may not write checks falls back to commit
statuses, one that may not write those leaves the job summary; each such step is a warning.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from mlgate.config import ReportConfig
from mlgate.github import checks, comments, statuses
from mlgate.github.client import NotPermitted, connect
from mlgate.github.context import GitHubContext
from mlgate.report import markdown
from mlgate.report.model import LABELS, Report


@dataclass
class Published:
    checks: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    comment: str = "skipped"
    warnings: list[str] = field(default_factory=list)


def outputs(report: Report, check_name: str) -> list[checks.CheckOutput]:
    result = []
    for stage in report.stages:
        summary, text = markdown.stage(report, stage)
        result.append(
            checks.CheckOutput(
                name=f"{check_name}/{stage}",
                outcome=report.verdict.stage_outcome(stage),
                title=report.stage_summary(stage)[:200],
                summary=summary,
                text=text,
                annotations=checks.to_annotations(report.findings(stage)),
            )
        )
    summary, text = markdown.aggregate(report)
    result.append(
        checks.CheckOutput(
            name=check_name,
            outcome=report.verdict.outcome,
            title=f"{check_name}: {LABELS[report.verdict.outcome]}",
            summary=summary,
            text=text,
            annotations=[],
        )
    )
    return result


def verdict_digest(report: Report) -> str:
    """What 'on-change' compares: the verdict's substance, not run links or timestamps."""
    rules = [(r.rule, r.outcome, r.reason) for r in report.verdict.rules]
    findings = sorted(f.id for s in report.stages for f in report.findings(s))
    blob = json.dumps([report.verdict.outcome, rules, findings])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def publish(
    report: Report, context: GitHubContext, config: ReportConfig, write_delay: float
) -> Published:
    gh = connect(context, write_delay)
    repo = gh.get_repo(context.repository)
    done = Published()
    check_outputs = outputs(report, config.check_name)
    try:
        for output in check_outputs:
            checks.publish(repo, context, output)
            done.checks.append(output.name)
    except NotPermitted as exc:
        done.warnings.append(
            f"cannot create check runs ({exc}); falling back to commit statuses. Give the "
            "workflow 'checks: write', or use the workflow_run pattern for fork pull requests."
        )
        try:
            for output in check_outputs:
                statuses.publish(repo, context, output.name, output.outcome, output.title)
                done.statuses.append(output.name)
        except NotPermitted as exc2:
            done.warnings.append(
                f"cannot set commit statuses either ({exc2}); the verdict is in the job "
                "summary and the report artifact only."
            )
    if context.pr_number is not None:
        digest = verdict_digest(report)
        tag = comments.marker(config.check_name)
        body = markdown.full(
            report,
            markdown.COMMENT_LIMIT,
            marker=tag + "\n" + comments.digest_marker(digest),
        )
        try:
            done.comment = comments.upsert(
                gh,
                repo,
                context.pr_number,
                config.check_name,
                body,
                digest,
                failing=report.verdict.outcome != "pass",
                mode=config.comment,
            )
        except NotPermitted as exc:
            done.warnings.append(f"cannot comment on the pull request ({exc})")
    return done
