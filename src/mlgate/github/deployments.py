"""GitHub Deployments as the record of a promotion: which commit went to which environment,
from which run, and what became of it later (rolled back: "inactive" or "failure").

mlgate's own evidence bundle gates a promotion, not commit statuses: deployments are created
with required_contexts=[] (GitHub would otherwise refuse one over any red status on the commit)
and auto_merge off (GitHub would otherwise merge the default branch into the ref).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from mlgate.github.client import with_retry

if TYPE_CHECKING:
    from github.Repository import Repository

DeploymentState = Literal["success", "failure", "error", "inactive", "in_progress"]

TASK = "deploy:mlgate"  # tells mlgate's deployments apart from other tools' in one environment
_DESCRIPTION_LIMIT = 140  # GitHub refuses longer deployment status descriptions


def record(
    repo: Repository,
    *,
    ref: str,
    environment: str,
    description: str,
    payload: dict[str, object],
    state: DeploymentState,
    log_url: str | None,
    environment_url: str | None = None,
) -> int:
    """Create a deployment of `ref` to `environment` with its first status; its id.

    `payload` must be JSON data. A create that GitHub applied but answered with an error
    (a 502 from a proxy) is found on the retry, not made twice.
    """
    attempted = False

    def create() -> int:
        nonlocal attempted
        found = _unstatused(repo, ref, environment, payload) if attempted else None
        attempted = True
        if found is not None:
            return found
        deployment = repo.create_deployment(
            ref=ref,
            task=TASK,
            auto_merge=False,
            required_contexts=[],
            payload=payload,
            environment=environment,
            description=description,
            transient_environment=False,
            production_environment=environment == "production",
        )
        return deployment.id

    deployment_id = with_retry(create, f"record deployment of {ref} to {environment}")
    mark(repo, deployment_id, state, description, log_url, environment_url=environment_url)
    return deployment_id


def mark(
    repo: Repository,
    deployment_id: int,
    state: DeploymentState,
    description: str,
    log_url: str | None,
    *,
    environment_url: str | None = None,
) -> None:
    """Add a status to the deployment; the newest status is the deployment's state."""
    if len(description) > _DESCRIPTION_LIMIT:
        description = description[: _DESCRIPTION_LIMIT - 1] + "…"
    body = {"state": state, "description": description}
    if log_url:
        body["log_url"] = log_url
    if environment_url:
        body["environment_url"] = environment_url
    url = f"{repo.url}/deployments/{deployment_id}/statuses"
    attempted = False

    def send() -> None:
        nonlocal attempted
        # The failed attempt may have landed: a status log should not say it twice.
        if attempted and _newest_status(repo, url) == (state, description):
            return
        attempted = True
        # Not Deployment.create_status: PyGithub sends only the legacy target_url, not log_url.
        repo.requester.requestJsonAndCheck("POST", url, input=body)

    with_retry(send, f"mark deployment {deployment_id} {state}")


def _unstatused(
    repo: Repository, ref: str, environment: str, payload: dict[str, object]
) -> int | None:
    """The newest mlgate deployment of `ref` to `environment` if it carries `payload` and no
    status yet: what an attempt that failed after GitHub created it leaves behind."""
    for deployment in repo.get_deployments(ref=ref, task=TASK, environment=environment):
        if deployment.payload == payload and next(iter(deployment.get_statuses()), None) is None:
            return deployment.id
        return None  # only the newest can be the one the failed attempt made
    return None


def _newest_status(repo: Repository, statuses_url: str) -> tuple[str, str] | None:
    _, data = repo.requester.requestJsonAndCheck("GET", statuses_url, parameters={"per_page": 1})
    newest: Any = data[0] if isinstance(data, list) and data else None
    if newest is None:
        return None
    return str(newest.get("state")), str(newest.get("description") or "")
