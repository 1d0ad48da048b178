"""Where to report, read from the GitHub Actions environment and event payload."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlgate import actions_env
from mlgate.errors import MlgateError


@dataclass(frozen=True)
class GitHubContext:
    token: str
    api_url: str
    repository: str
    sha: str
    pr_number: int | None
    run_url: str | None
    run_key: str  # identifies this run attempt, for idempotent re-publishing


def from_env(
    token: str | None = None, pr_number: int | None = None, sha: str | None = None
) -> GitHubContext:
    env = os.environ
    token = token or env.get("GITHUB_TOKEN")
    if not token:
        raise MlgateError("no GitHub token: set GITHUB_TOKEN or the github-token input")
    repository = env.get("GITHUB_REPOSITORY", "")
    if repository.count("/") != 1:
        raise MlgateError(f"GITHUB_REPOSITORY is not 'owner/name': {repository!r}")
    payload = actions_env.event_payload(strict=True)
    problem = None if sha else actions_env.merge_group_problem(payload)
    if problem:
        raise MlgateError(f"{problem}; nothing published")
    sha = sha or actions_env.commit_under_test(payload)
    if not sha:
        raise MlgateError("no commit to report on: GITHUB_SHA is not set")
    return GitHubContext(
        token=token,
        api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
        repository=repository,
        sha=sha,
        pr_number=pr_number or actions_env.pr_number(payload),
        run_url=actions_env.run_url(),
        run_key=f"{env.get('GITHUB_RUN_ID', 'local')}.{env.get('GITHUB_RUN_ATTEMPT', '1')}",
    )
