"""Check runs: one per stage plus the aggregate, each one's annotations delivered 50 at a time."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mlgate.evidence import SEVERITIES, Finding
from mlgate.github.client import with_retry
from mlgate.github.context import GitHubContext
from mlgate.verdict import Outcome

if TYPE_CHECKING:
    from github.CheckRun import CheckRun
    from github.Repository import Repository

ANNOTATIONS_PER_REQUEST = 50  # GitHub's limit per create/update request
_TEXT_LIMIT = 60_000  # annotation message/raw_details are capped at 64 KB
_TITLE_LIMIT = 255
_LEVELS = {
    "critical": "failure",
    "high": "failure",
    "medium": "warning",
    "low": "notice",
    "info": "notice",
    "unknown": "warning",
}


@dataclass(frozen=True)
class CheckOutput:
    name: str
    outcome: Outcome
    title: str
    summary: str
    text: str
    annotations: list[dict[str, Any]]

    @property
    def annotations_digest(self) -> str:
        """What a check run cannot change once sent: annotations are only ever appended."""
        return hashlib.sha256(json.dumps(self.annotations, sort_keys=True).encode()).hexdigest()[
            :16
        ]


def most_pressing_first(findings: list[Finding]) -> list[Finding]:
    """What to annotate when not all fit: unwaived before waived, then by severity, findings at
    a line before those at none (a header's unlisted tests); the report's order otherwise."""
    return sorted(
        findings,
        key=lambda f: (f.waived_by is not None, SEVERITIES.index(f.severity), f.line is None),
    )


def to_annotations(findings: list[Finding]) -> list[dict[str, Any]]:
    """Findings that point at a file, as check-run annotations (plain text, not markdown)."""
    result = []
    for finding in findings:
        # A path inside a container image is not a file of the repository.
        if not finding.path or finding.image:
            continue
        line = finding.line or 1
        title = finding.title or finding.id
        if finding.waived_by:
            title = f"(waived) {title}"
        annotation: dict[str, Any] = {
            "path": finding.path,
            "start_line": line,
            "end_line": line,
            # A waived finding stays visible, without the weight of a failure.
            "annotation_level": "notice" if finding.waived_by else _LEVELS[finding.severity],
            "title": title[:_TITLE_LIMIT],
            "message": finding.message[:_TEXT_LIMIT] or finding.id,
        }
        if finding.detail:
            annotation["raw_details"] = finding.detail[:_TEXT_LIMIT]
        result.append(annotation)
    return result


def conclusion(outcome: Outcome, details_url: str | None) -> str:
    if outcome == "pass":
        return "success"
    if outcome == "warn":
        return "neutral"  # does not block a merge (GitHub counts it as passing), not a success
    # Inconclusive must block a merge like a failure, but say it is not one; GitHub only
    # accepts action_required with a details URL.
    if outcome == "inconclusive" and details_url:
        return "action_required"
    return "failure"


def publish(repo: Repository, context: GitHubContext, output: CheckOutput) -> CheckRun:
    """Create or complete the check run for this run attempt; re-running is idempotent.

    The external id names the run attempt and the annotations, so a repeated publish finds
    its own check run: still in progress means a previous publish died mid-way and the
    remaining annotations are appended from where it stopped; completed with another title,
    summary, text or conclusion (a re-run step measured new durations) is edited in place.
    Only different annotations need a new check run, since GitHub cannot take one back.
    """
    external_id = f"mlgate:{context.run_key}:{output.annotations_digest}"
    existing = with_retry(
        lambda: _find(repo, context.sha, output.name, external_id), f"find check {output.name}"
    )
    if existing is not None and existing.status == "completed":
        if not _same_result(existing, output, context):
            with_retry(
                lambda: existing.edit(output=_output(output, []), **_completion(output, context)),
                f"update check {output.name}",
            )
        return existing
    if existing is None:
        first = output.annotations[:ANNOTATIONS_PER_REQUEST]
        done = len(first) == len(output.annotations)
        attempted = False

        def create() -> CheckRun:
            nonlocal attempted
            # A 502 can arrive after GitHub made the run: on a retry, look before making another.
            found = _find(repo, context.sha, output.name, external_id) if attempted else None
            attempted = True
            return found or _create(repo, context, output, external_id, first, done)

        run = with_retry(create, f"create check {output.name}")
        if done:
            return run
        delivered = len(first)
    else:
        run, delivered = existing, _delivered(repo, existing.id)
    _deliver_rest(repo, context, output, run, delivered)
    return run


def _same_result(run: CheckRun, output: CheckOutput, context: GitHubContext) -> bool:
    shown = run.output
    return (
        run.conclusion == conclusion(output.outcome, context.run_url)
        and shown.title == output.title
        and shown.summary == output.summary
        and (shown.text or "") == output.text
    )


def _find(repo: Repository, sha: str, name: str, external_id: str) -> CheckRun | None:
    for run in repo.get_commit(sha).get_check_runs(check_name=name):
        if run.external_id == external_id:
            return run
    return None


def _output(output: CheckOutput, batch: list[dict[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {"title": output.title, "summary": output.summary}
    if output.text:
        document["text"] = output.text
    if batch:
        document["annotations"] = batch
    return document


def _completion(output: CheckOutput, context: GitHubContext) -> dict[str, Any]:
    return {
        "status": "completed",
        "conclusion": conclusion(output.outcome, context.run_url),
        "completed_at": datetime.now(timezone.utc),
    }


def _create(
    repo: Repository,
    context: GitHubContext,
    output: CheckOutput,
    external_id: str,
    batch: list[dict[str, Any]],
    done: bool,
) -> CheckRun:
    extra: dict[str, Any] = _completion(output, context) if done else {"status": "in_progress"}
    if context.run_url:
        extra["details_url"] = context.run_url
    return repo.create_check_run(
        name=output.name,
        head_sha=context.sha,
        external_id=external_id,
        output=_output(output, batch),
        **extra,
    )


def _deliver_rest(
    repo: Repository, context: GitHubContext, output: CheckOutput, run: CheckRun, delivered: int
) -> None:
    total = len(output.annotations)
    last = False
    while not last:
        attempted = False

        def send() -> bool:
            nonlocal delivered, attempted
            if attempted:
                # The failed request may have landed: count what GitHub holds, send no
                # annotation twice.
                delivered = _delivered(repo, run.id)
            attempted = True
            batch = output.annotations[delivered : delivered + ANNOTATIONS_PER_REQUEST]
            final = delivered + len(batch) >= total
            run.edit(
                output=_output(output, batch), **(_completion(output, context) if final else {})
            )
            delivered += len(batch)
            return final

        last = with_retry(send, f"annotate check {output.name}")


def _delivered(repo: Repository, run_id: int) -> int:
    count = repo.get_check_run(run_id).output.annotations_count
    return int(count or 0)
