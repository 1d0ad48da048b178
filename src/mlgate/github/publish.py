"""Publish a report to GitHub: checks (or statuses when checks are not allowed), the comment.

Publishing never loses the verdict: a token that may not write checks falls back to commit
statuses, one that may not write those leaves the job summary; each such step is a warning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from mlgate import artifact_paths
from mlgate.config import MAX_ANNOTATIONS, ReportConfig
from mlgate.github import checks, code_scanning, comments, statuses
from mlgate.github.client import NotPermitted, Rejected, connect, with_retry
from mlgate.github.context import GitHubContext
from mlgate.report import escape, markdown, sarif
from mlgate.report.model import Report, verdict_label

if TYPE_CHECKING:
    from github import Github
    from github.Repository import Repository


@dataclass
class Published:
    checks: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    comment: str = "skipped"
    sarif: list[str] = field(default_factory=list)  # SARIF files uploaded to code scanning
    warnings: list[str] = field(default_factory=list)


def outputs(
    report: Report,
    check_name: str,
    evidence_from: str | None = None,
    max_annotations: int = MAX_ANNOTATIONS,
) -> list[checks.CheckOutput]:
    result = []
    for stage in report.stages:
        findings = report.findings(stage)
        annotations = checks.to_annotations(findings)
        note = ""
        if len(annotations) > max_annotations:
            note = markdown.annotation_notice(report, max_annotations, len(annotations))
            ranked = checks.to_annotations(checks.most_pressing_first(findings))
            annotations = ranked[:max_annotations]
        summary, text = markdown.stage(report, stage, note=note)
        result.append(
            checks.CheckOutput(
                name=f"{check_name}/{stage}",
                outcome=report.verdict.stage_outcome(stage),
                # Plain text, one line: the summary quotes evidence.
                title=escape.plain(report.stage_summary(stage), limit=200),
                summary=summary,
                text=text,
                annotations=annotations,
            )
        )
    summary, text = markdown.aggregate(report)
    result.append(
        checks.CheckOutput(
            name=check_name,
            outcome=report.verdict.outcome,
            title=escape.plain(
                f"{check_name}: {verdict_label(report.verdict)}"
                + (f", judged on fork-made evidence ({evidence_from})" if evidence_from else ""),
                limit=200,
            ),
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
    """Publish everything it can. Raises Unreachable when GitHub cannot be reached (nothing
    more is tried), or Rejected after trying the rest when some requests were refused."""
    gh = connect(context, write_delay)
    repo = gh.get_repo(context.repository)
    done = Published()
    refused: list[str] = []
    check_outputs = outputs(
        report, config.check_name, context.evidence_from, config.max_annotations
    )
    if not context.pr_head_checked and context.pr_number is not None:
        # A verdict about one commit must not land on a pull request that has moved on.
        _require_pull_head(repo, context.pr_number, context.sha)
    denied = _publish_each(
        check_outputs, lambda out: checks.publish(repo, context, out), done.checks, refused
    )
    if denied is not None:
        done.warnings.append(
            f"cannot create check runs ({denied}); falling back to commit statuses. Give the "
            "workflow 'checks: write', or use the workflow_run pattern for fork pull requests."
        )
        _fall_back_to_statuses(repo, context, check_outputs, done, refused)
    if context.pr_number is not None:
        try:
            done.comment = _comment(gh, repo, report, context.pr_number, config)
        except NotPermitted as exc:
            done.warnings.append(f"cannot comment on the pull request ({exc})")
        except Rejected as exc:
            refused.append(str(exc))
    if config.code_scanning:
        _upload_sarif(repo, context, report, done, refused)
    if refused:
        raise Rejected("; ".join(refused))
    return done


def _require_pull_head(repo: Repository, number: int, sha: str) -> None:
    try:
        head = with_retry(lambda: repo.get_pull(number).head.sha, f"reading pull request #{number}")
    except NotPermitted as exc:
        raise Rejected(f"{exc}; nothing published") from None
    if head.lower() != sha.lower():
        raise Rejected(
            f"pull request #{number} is at {head[:12]}, the verdict is about {sha[:12]}: "
            "nothing published"
        )


def _upload_sarif(
    repo: Repository, context: GitHubContext, report: Report, done: Published, refused: list[str]
) -> None:
    """Upload the SARIF files the scan evidence lists, read only through artifact_paths (the
    evidence is untrusted: a name could point at the runner's secrets); a file refused, or one
    GitHub would not take, is a warning, and the others still go."""
    scan = report.evidence.get("scan")
    names = scan.data.get("sarif") if scan is not None else None
    if scan is None or not isinstance(names, list) or not names or report.evidence_dir is None:
        return
    for name in names:
        try:
            if not isinstance(name, str):
                raise artifact_paths.ArtifactRefused(f"{name!r}: not a file name")
            content = artifact_paths.read(report.evidence_dir, scan, name, sarif.MAX_BYTES)
            code_scanning.upload(repo, context, name, content)
            done.sarif.append(PurePosixPath(name).name)
        except (artifact_paths.ArtifactRefused, code_scanning.Unfit) as exc:
            done.warnings.append(f"SARIF not uploaded to code scanning: {exc}")
        except NotPermitted as exc:
            done.warnings.append(
                f"SARIF not uploaded to code scanning ({exc}): it needs 'security-events: "
                "write' and code scanning enabled (forks get neither); the findings are in the "
                "checks and the report artifact."
            )
            return
        except Rejected as exc:
            refused.append(f"SARIF {artifact_paths.label(name)}: {exc}")


def _fall_back_to_statuses(
    repo: Repository,
    context: GitHubContext,
    check_outputs: list[checks.CheckOutput],
    done: Published,
    refused: list[str],
) -> None:
    denied = _publish_each(
        check_outputs,
        lambda out: statuses.publish(repo, context, out.name, out.outcome, out.title),
        done.statuses,
        refused,
    )
    if denied is not None:
        done.warnings.append(
            f"cannot set commit statuses either ({denied}); the verdict is in the job "
            "summary and the report artifact only."
        )


def _publish_each(
    check_outputs: list[checks.CheckOutput],
    publish_one: Callable[[checks.CheckOutput], object],
    published: list[str],
    refused: list[str],
) -> NotPermitted | None:
    """Publish every output, naming each in `published`; one the API refuses goes to `refused`
    and the others still go. Returns NotPermitted when the token may publish none of them."""
    try:
        for output in check_outputs:
            try:
                publish_one(output)
                published.append(output.name)
            except Rejected as exc:
                refused.append(str(exc))
    except NotPermitted as exc:
        return exc
    return None


def _comment(
    gh: Github, repo: Repository, report: Report, number: int, config: ReportConfig
) -> comments.Action:
    digest = verdict_digest(report)
    body = markdown.full(
        report,
        markdown.COMMENT_LIMIT,
        marker=comments.marker(config.check_name) + "\n" + comments.digest_marker(digest),
    )
    return comments.upsert(
        gh,
        repo,
        number,
        config.check_name,
        body,
        digest,
        failing=report.verdict.outcome != "pass",
        mode=config.comment,
    )
