"""Where to report, read from the GitHub Actions environment and event payload."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

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
    # False when the pull request was named apart from its event (MLGATE_PR, --pr): its head
    # must then be `sha` before anything is written on it.
    pr_head_checked: bool = True
    # Where the evidence was made when not in this repository: a fork's run (workflow_run).
    evidence_from: str | None = None


GITHUB_COM = "https://github.com"


def api_url() -> str:
    """GITHUB_API_URL; without it, the API of the server GITHUB_SERVER_URL names (GitHub
    Enterprise Server serves it under /api/v3), so a token for an Enterprise server is never
    sent to api.github.com; github.com's API when neither is set."""
    env = os.environ
    if env.get("GITHUB_API_URL"):
        return env["GITHUB_API_URL"].rstrip("/")
    server = (env.get("GITHUB_SERVER_URL") or GITHUB_COM).rstrip("/")
    return "https://api.github.com" if server == GITHUB_COM else f"{server}/api/v3"


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
    sha = actions_env.named_commit(payload, sha, "nothing published")
    if not sha:
        raise MlgateError("no commit to report on: GITHUB_SHA is not set")
    event_pull = actions_env.pull_request(payload)
    number = pr_number or actions_env.pr_number(payload)
    return GitHubContext(
        token=token,
        api_url=api_url(),
        repository=repository,
        sha=sha,
        pr_number=number,
        run_url=actions_env.run_url(),
        run_key=f"{env.get('GITHUB_RUN_ID', 'local')}.{env.get('GITHUB_RUN_ATTEMPT', '1')}",
        pr_head_checked=number is None
        or (number == event_pull.get("number") and sha == _event_head(event_pull)),
        evidence_from=_fork_of(payload, repository),
    )


def _event_head(pull: dict[str, Any]) -> object:
    head = pull.get("head")
    return head.get("sha") if isinstance(head, dict) else None


def _fork_of(payload: dict[str, Any], repository: str) -> str | None:
    """The fork whose pull request run made the evidence, on a workflow_run event."""
    if os.environ.get("GITHUB_EVENT_NAME") != "workflow_run":
        return None
    run = payload.get("workflow_run")
    head = run.get("head_repository") if isinstance(run, dict) else None
    name = head.get("full_name") if isinstance(head, dict) else None
    if isinstance(name, str) and name.lower() != repository.lower():
        return name
    return None
