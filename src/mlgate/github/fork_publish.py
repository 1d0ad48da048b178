"""`mlgate fork-evidence`: the first step of a workflow_run job publishing a fork's PR run.

It ties the run to its pull request, reads the config and waivers of the pull request's base
branch through the API (github.base_config: the branch it would merge into, not the checkout's
default branch), takes the run's evidence (github.fork_evidence) into that config's evidence
directory and hands the pull request, commit and base config copy to the steps that gate
(`mlgate gate`) and report (`mlgate report`). Refused evidence or an unreadable base branch is
a failing aggregate check on the run's commit, with the reason; a run no open pull request has
at its head gets nothing published.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from mlgate import actions_env
from mlgate.config import ReportConfig
from mlgate.errors import ConfigError, MlgateError
from mlgate.github import base_config, checks, context, fork_evidence
from mlgate.github.client import NotPermitted, Rejected, Unreachable, connect
from mlgate.report import escape


@dataclass(frozen=True)
class Taken:
    pr_number: int
    head_sha: str
    evidence_from: str | None  # the fork, when the run was a fork's
    files: list[str]
    base: base_config.BaseConfig


def take(
    *,
    config_name: str,
    project_dir: str,
    base_dir: Path,
    evidence_dir: Path | None,
    artifact_name: str,
    member_dir: str,
    check_name: str | None,
) -> Taken:
    """Raises NotPublishable (nothing published) or EvidenceRefused / BaseUnreadable (after
    publishing the failing check that says why). `check_name` overrides the base config's."""
    if os.environ.get("GITHUB_EVENT_NAME") != "workflow_run":
        raise MlgateError("mlgate fork-evidence runs on a workflow_run event only")
    base_config.repository_path(project_dir, config_name)  # bad input before any request
    run = fork_evidence.triggering_run(actions_env.event_payload(strict=True))
    ctx = context.from_env(sha=run.head_sha)
    try:
        repo = connect(ctx, write_delay=0).get_repo(ctx.repository)
        pull = fork_evidence.resolve_pull(repo, run, ctx.repository)
    except (NotPermitted, Rejected, Unreachable) as exc:
        raise fork_evidence.NotPublishable(f"{exc}; nothing published") from None
    fork = run.head_repository if run.head_repository.lower() != ctx.repository.lower() else None
    on_pull = replace(ctx, pr_number=pull.number)
    try:
        base = base_config.read(repo, pull.base_ref, project_dir, config_name, base_dir)
    except base_config.BaseUnreadable as exc:
        name = check_name or str(ReportConfig.model_fields["check_name"].default)
        title = f"{name}: no config of base branch {pull.base_ref}"
        _publish_refusal(on_pull, name, title, str(exc), base_config.BaseUnreadable)
        raise
    name = check_name or base.config.report.check_name
    evidence_dir = evidence_dir or Path(base.config.evidence_dir)
    _refuse_overlap(evidence_dir, base_dir)
    try:
        files = fork_evidence.fetch(
            repo, run, artifact_name, member_dir, evidence_dir, base.waivers
        )
    except fork_evidence.EvidenceRefused as exc:
        origin = f"fork-made evidence ({fork})" if fork else "the pull request run's evidence"
        title = f"{name}: refused {origin}"
        _publish_refusal(on_pull, name, title, str(exc), fork_evidence.EvidenceRefused)
        raise
    return Taken(pull.number, run.head_sha, fork, files, base)


def _refuse_overlap(evidence_dir: Path, base_dir: Path) -> None:
    """Taking the evidence replaces its directory: it must not hold the base config's copy."""
    evidence, base = evidence_dir.resolve(), base_dir.resolve()
    if evidence == base or evidence in base.parents or base in evidence.parents:
        raise ConfigError(
            f"the evidence directory {evidence_dir} and the base config's directory {base_dir} "
            "overlap: give them separate places (--evidence-dir, --base-dir)"
        )


def _publish_refusal(
    ctx: context.GitHubContext,
    check_name: str,
    title: str,
    reason: str,
    refusal: type[MlgateError],
) -> None:
    """The aggregate check fails on the run's commit and says why; a check that cannot be
    written is said too, but the refusal stands either way."""
    output = checks.CheckOutput(
        name=check_name,
        outcome="fail",
        title=escape.plain(title, limit=200),
        summary=escape.inline(reason, limit=2000),
        text="",
        annotations=[],
    )
    try:
        repo = connect(ctx, write_delay=0).get_repo(ctx.repository)
        checks.publish(repo, ctx, output)
    except (NotPermitted, Rejected, Unreachable) as exc:
        raise refusal(f"{reason} (and the failing check could not be written: {exc})") from None
