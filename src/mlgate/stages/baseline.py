"""Where a stage's baseline comes from: a file, or the base branch's last successful run."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from mlgate import actions_env
from mlgate.errors import MlgateError


class GitHubArtifact(BaseModel):
    """The baseline as the report artifact of the latest successful run on a branch."""

    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(description="Workflow file name (e.g. mlgate.yml) or id.")
    branch: str | None = Field(
        default=None,
        description="Branch whose runs count [default: the PR's base branch, or the merge "
        "queue's base branch on a merge_group run].",
    )
    artifact: str = Field(default="mlgate-report", description="Artifact name.")
    member: str | None = Field(
        default=None,
        description="The evidence inside the artifact [default: evidence/<stage>.json].",
    )


class GitHubBaseline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    github: GitHubArtifact


Baseline = str | GitHubBaseline


def baseline_path(
    baseline: Baseline, stage: str, working_directory: str, evidence_dir: Path
) -> Path:
    """The baseline's file: given (relative to the working directory), or fetched from the base
    branch's last successful run through the GitHub API."""
    if isinstance(baseline, str):
        return Path(working_directory) / baseline
    from mlgate.github import context as github_context
    from mlgate.github.artifacts import fetch_baseline

    source = baseline.github
    # A merge queue's group compares against the branch the queue merges into.
    branch = source.branch or actions_env.base_branch(actions_env.event_payload())
    if not branch:
        raise MlgateError(
            "no branch to take the baseline from: not a pull request or merge queue group "
            "naming its base branch; set branch"
        )
    return fetch_baseline(
        github_context.from_env(),
        workflow=source.workflow,
        branch=branch,
        artifact_name=source.artifact,
        member=source.member or f"evidence/{stage}.json",
        destination=evidence_dir / "baseline",
    )
