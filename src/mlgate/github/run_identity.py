"""Prove, through the GitHub API, the workflow run a promotion claims to run in.

GITHUB_ACTIONS, GITHUB_ACTOR, GITHUB_RUN_ID and GITHUB_SHA are environment variables: anyone can
export them next to their own token. Before a run's actor or its environment approvals count,
the API must show that:

- the run exists in this repository and is in progress (its approvals are not replayed from a
  finished run), in the attempt claimed (GITHUB_RUN_ATTEMPT, when set);
- the actor who started it (`triggering_actor`, else `actor`) is the claimed actor;
- its head commit is the claimed GITHUB_SHA;
- it is deploying to the environment named for the stage: a job of the run declaring
  `environment:` makes GitHub Actions create a deployment of that commit to that environment,
  whose newest status is `in_progress` while the job runs and whose `log_url` (`target_url`)
  links the run or one of its jobs. Only GitHub Actions (its app, `github-actions`) creates
  those: a deployment a personal token made does not count.

Limits: this proves such a run is running now, not that this process is that run's job — a
token holder who can read the repository could race a real, approved run of the same commit
while it runs. Only the job's OIDC token would bind the process to the job; the fake server
does not model it, so it is not used. GitHub's run/job/deployment reads need `actions: read`
and `deployments: read` (the promotion workflow grants both).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlgate.github.client import with_retry

if TYPE_CHECKING:
    from github.Repository import Repository

_ACTIONS_APP = "github-actions"
_RUNNING = ("in_progress", "queued")  # a job's deployment is queued until the job picks it up


@dataclass(frozen=True)
class ClaimedRun:
    """What the environment says about the run: to be proven."""

    run_id: int
    actor: str
    sha: str
    attempt: int | None = None


@dataclass(frozen=True)
class VerifiedRun:
    run_id: int
    actor: str
    environment: str
    started_at: datetime | None  # this attempt's start, as GitHub recorded it
    deployment_id: int


class RunNotProven(Exception):
    """The claimed run is not what it says; the message is the reason, one line."""


def claim(
    repo: Repository | None, run_id: int | None, actor: str, sha: str | None, attempt: int | None
) -> ClaimedRun:
    """The claim, complete enough to be checked; RunNotProven naming what is missing."""
    parts = (("a GitHub token", repo), ("GITHUB_RUN_ID", run_id), ("GITHUB_SHA", sha))
    missing = [name for name, value in parts if not value]
    if missing or repo is None or run_id is None or sha is None:
        raise RunNotProven(
            f"the workflow run {actor} claims to promote from cannot be verified without "
            f"{' and '.join(missing)}"
        )
    return ClaimedRun(run_id, actor, sha, attempt)


def verify(repo: Repository, claim: ClaimedRun, environment: str) -> VerifiedRun:
    """The run, proven; RunNotProven with the first claim that does not hold. API failures
    raise NotPermitted, Rejected or Unreachable (the caller refuses then too)."""
    run = _get(repo, f"{repo.url}/actions/runs/{claim.run_id}", f"read workflow run {claim.run_id}")
    if run is None:
        raise RunNotProven(f"workflow run {claim.run_id} does not exist in {repo.full_name}")
    what = f"workflow run {claim.run_id}"
    status = str(run.get("status"))
    if status != "in_progress":
        conclusion = f" ({run['conclusion']})" if run.get("conclusion") else ""
        raise RunNotProven(
            f"{what} is {status}{conclusion}, not in progress: its actor and approvals do not "
            "count for a promotion now"
        )
    attempt = run.get("run_attempt")
    if claim.attempt is not None and isinstance(attempt, int) and attempt != claim.attempt:
        raise RunNotProven(f"{what} is at attempt {attempt}, not {claim.attempt} as claimed")
    started_by = _login(run.get("triggering_actor")) or _login(run.get("actor"))
    if started_by is None or started_by.casefold() != claim.actor.casefold():
        raise RunNotProven(
            f"{what} was started by {started_by or 'nobody GitHub names'}, not {claim.actor}"
        )
    head = str(run.get("head_sha") or "")
    if head.casefold() != claim.sha.casefold():
        raise RunNotProven(f"{what} is of commit {head[:12]}, not GITHUB_SHA {claim.sha[:12]}")
    deployment = _environment_deployment(repo, run, claim, environment)
    return VerifiedRun(
        run_id=claim.run_id,
        actor=started_by,
        environment=environment,
        started_at=_time(run.get("run_started_at")),
        deployment_id=deployment,
    )


def _environment_deployment(
    repo: Repository, run: dict[str, Any], claim: ClaimedRun, environment: str
) -> int:
    """The id of the deployment GitHub Actions made for a running job of this run in
    `environment`; RunNotProven when there is none."""
    jobs = _get(
        repo,
        f"{repo.url}/actions/runs/{claim.run_id}/jobs",
        f"read the jobs of workflow run {claim.run_id}",
        {"filter": "latest", "per_page": 100},
    )
    running = [j for j in (jobs or {}).get("jobs", ()) if j.get("status") == "in_progress"]
    links = [str(run.get("html_url") or "").rstrip("/") + "/"]
    links += [str(j.get("html_url") or "") for j in running if j.get("html_url")]
    deployments = _get(
        repo,
        f"{repo.url}/deployments",
        f"read the deployments of {claim.sha[:12]} to {environment}",
        {"environment": environment, "sha": claim.sha, "per_page": 100},
    )
    for deployment in deployments or ():
        app = deployment.get("performed_via_github_app") or {}
        if not isinstance(app, dict) or app.get("slug") != _ACTIONS_APP:
            continue
        statuses = _get(
            repo,
            f"{repo.url}/deployments/{deployment['id']}/statuses",
            f"read the statuses of deployment {deployment['id']}",
            {"per_page": 1},
        )
        newest = (statuses or [{}])[0]
        url = str(newest.get("log_url") or newest.get("target_url") or "")
        if newest.get("state") in _RUNNING and url and any(url.startswith(x) for x in links):
            return int(deployment["id"])
    jobs_text = f"{len(running)} job{'s' if len(running) != 1 else ''} running"
    raise RunNotProven(
        f"workflow run {claim.run_id} ({jobs_text}) has no job deploying {claim.sha[:12]} to "
        f"the environment {environment}: the promoting job must declare `environment: "
        f"{environment}`"
    )


def _get(repo: Repository, url: str, what: str, parameters: dict[str, Any] | None = None) -> Any:
    """GET through with_retry; None for a 404."""
    from github.GithubException import GithubException

    def read() -> Any:
        try:
            _, data = repo.requester.requestJsonAndCheck("GET", url, parameters=parameters)
        except GithubException as exc:
            if exc.status == 404:
                return None
            raise
        return data

    return with_retry(read, what)


def _login(user: Any) -> str | None:
    login = user.get("login") if isinstance(user, dict) else None
    return str(login) if login else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
