"""`mlgate fork-evidence`: the first step of a workflow_run job publishing a fork's PR run.

It ties the run to its pull request, takes the run's evidence (github.fork_evidence) into the
base checkout's evidence directory and hands the pull request and commit to the steps that
gate (`mlgate gate`, base config) and report (`mlgate report`). Refused evidence is a failing
aggregate check on the run's commit, with the reason; a run no open pull request has at its
head gets nothing published.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from mlgate import actions_env
from mlgate.config import MlgateConfig
from mlgate.errors import MlgateError
from mlgate.github import checks, context, fork_evidence
from mlgate.github.client import NotPermitted, Rejected, Unreachable, connect
from mlgate.report import escape


@dataclass(frozen=True)
class Taken:
    pr_number: int
    head_sha: str
    evidence_from: str | None  # the fork, when the run was a fork's
    files: list[str]


def take(
    cfg: MlgateConfig, evidence_dir: Path, artifact_name: str, member_dir: str, check_name: str
) -> Taken:
    """Raises NotPublishable (nothing published) or EvidenceRefused (after publishing the
    failing check that says why)."""
    if os.environ.get("GITHUB_EVENT_NAME") != "workflow_run":
        raise MlgateError("mlgate fork-evidence runs on a workflow_run event only")
    run = fork_evidence.triggering_run(actions_env.event_payload(strict=True))
    ctx = context.from_env(sha=run.head_sha)
    try:
        repo = connect(ctx, write_delay=0).get_repo(ctx.repository)
        number = fork_evidence.resolve_pull(repo, run, ctx.repository)
    except (NotPermitted, Rejected, Unreachable) as exc:
        raise fork_evidence.NotPublishable(f"{exc}; nothing published") from None
    fork = run.head_repository if run.head_repository.lower() != ctx.repository.lower() else None
    try:
        files = fork_evidence.fetch(repo, run, artifact_name, member_dir, evidence_dir)
    except fork_evidence.EvidenceRefused as exc:
        _publish_refusal(replace(ctx, pr_number=number), check_name, str(exc), fork)
        raise
    fork_evidence.apply_base_trust(cfg, evidence_dir)
    return Taken(number, run.head_sha, fork, files)


def _publish_refusal(
    ctx: context.GitHubContext, check_name: str, reason: str, fork: str | None
) -> None:
    """The aggregate check fails on the run's commit and says why; a check that cannot be
    written is said too, but the refusal stands either way."""
    origin = f"fork-made evidence ({fork})" if fork else "the pull request run's evidence"
    output = checks.CheckOutput(
        name=check_name,
        outcome="fail",
        title=escape.plain(f"{check_name}: refused {origin}", limit=200),
        summary=escape.inline(reason, limit=2000),
        text="",
        annotations=[],
    )
    try:
        repo = connect(ctx, write_delay=0).get_repo(ctx.repository)
        checks.publish(repo, ctx, output)
    except (NotPermitted, Rejected, Unreachable) as exc:
        raise fork_evidence.EvidenceRefused(
            f"{reason} (and the failing check could not be written: {exc})"
        ) from None
