"""Who may promote (repository permission, teams, environment approvals) and the GitHub
Deployment that records a promotion: real PyGithub against the fake GitHub, which checks every
request and response against GitHub's OpenAPI description."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from mlgate.errors import ConfigError
from mlgate.github import access, deployments
from mlgate.github.access import AccessRule, Approval
from mlgate.github.client import NotPermitted, Rejected, Unreachable, connect
from mlgate.github.context import GitHubContext
from tests.fakegithub import FakeGitHub
from tests.helpers import github_with_pull

if TYPE_CHECKING:
    from github.Repository import Repository

REPO = "octo/model"
HEAD = "a" * 40
ACTOR = "octo-dev"
APP_TOKEN = "ghs_app_token"  # the workflow's GITHUB_TOKEN
PAT = "ghp_personal"  # a token that can see the organization's teams
RUN_URL = "https://github.example/octo/model/actions/runs/1"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with github_with_pull(REPO, HEAD, APP_TOKEN) as fake:
        fake.set_token(PAT, login="release-bot", kind="pat")
        yield fake


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    return waited


def repository(api_url: str, token: str = APP_TOKEN) -> Repository:
    context = GitHubContext(
        token=token,
        api_url=api_url,
        repository=REPO,
        sha=HEAD,
        pr_number=None,
        run_url=RUN_URL,
        run_key="1.1",
    )
    return connect(context, write_delay=0).get_repo(REPO)


def check(
    gh: FakeGitHub,
    rule: AccessRule,
    *,
    run_id: int | None = None,
    environment: str | None = "production",
    token: str = APP_TOKEN,
) -> access.AccessDecision:
    return access.check(
        repository(gh.url, token), ACTOR, rule, run_id=run_id, environment=environment
    )


# -- repository permission ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        ("admin", "admin", True),
        ("maintain", "write", True),
        ("write", "write", True),
        ("triage", "write", False),
        ("read", "triage", False),
    ],
)
def test_role_is_compared_in_githubs_order(
    gh: FakeGitHub, role: str, needed: access.Permission, allowed: bool
) -> None:
    gh.set_permission(REPO, ACTOR, role)
    decision = check(gh, AccessRule(permission=needed))
    assert (decision.allowed, decision.permission) == (allowed, role)


def test_enough_permission_is_allowed(gh: FakeGitHub) -> None:
    gh.set_permission(REPO, ACTOR, "admin")
    decision = check(gh, AccessRule(permission="admin"))
    assert decision.allowed
    assert decision.reason == "octo-dev has admin permission on octo/model"
    assert decision.approvals == ()


def test_too_little_permission_is_refused(gh: FakeGitHub) -> None:
    gh.set_permission(REPO, ACTOR, "write")
    decision = check(gh, AccessRule(permission="admin"))
    assert not decision.allowed
    assert decision.reason == (
        "octo-dev has write permission on octo/model; promoting to production needs admin"
    )
    assert decision.permission == "write"


def test_custom_role_counts_as_its_legacy_permission(gh: FakeGitHub) -> None:
    # A custom role built on maintain reports the legacy permission write: that is its floor.
    gh.set_permission(REPO, ACTOR, "ml-promoter", base="maintain")
    assert check(gh, AccessRule(permission="write")).allowed
    refused = check(gh, AccessRule(permission="maintain"), environment=None)
    assert refused.reason == (
        "octo-dev has ml-promoter (write) permission on octo/model; promoting needs maintain"
    )


def test_not_a_collaborator_is_refused(gh: FakeGitHub) -> None:
    decision = check(gh, AccessRule(permission="read", teams=("octo/ml-release",)))
    assert not decision.allowed
    assert decision.reason == (
        "octo-dev is not a collaborator on octo/model; promoting to production needs read"
    )
    assert decision.permission is None
    assert [r.status for r in gh.requests] == [404]  # nothing asked after the first refusal


def test_no_permission_rule_asks_nothing(gh: FakeGitHub) -> None:
    decision = check(gh, AccessRule(permission=None))
    assert decision.allowed and decision.permission is None
    assert gh.requests == []


# -- teams -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("membership", "allowed", "reason"),
    [
        ("active", True, "octo-dev has write permission on octo/model; "
         "octo-dev is an active member of octo/ml-release"),
        ("pending", False, "octo-dev is not an active member of octo/ml-release "
         "(invitation to octo/ml-release pending)"),
        (None, False, "octo-dev is not an active member of octo/ml-release "
         "(or the token cannot see the team: it needs the members: read permission)"),
    ],
)  # fmt: skip
def test_team_membership(
    gh: FakeGitHub, membership: str | None, allowed: bool, reason: str
) -> None:
    gh.set_permission(REPO, ACTOR, "write")
    gh.add_team_member("octo", "ml-platform", ACTOR)  # another team counts for nothing
    if membership == "active":
        gh.add_team_member("octo", "ml-release", ACTOR)
    elif membership == "pending":
        gh.add_team_member("octo", "ml-release", ACTOR, state="pending")
    decision = check(gh, AccessRule(teams=("octo/ml-release",)), token=PAT)
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_active_in_any_listed_team_is_enough(gh: FakeGitHub) -> None:
    gh.set_permission(REPO, ACTOR, "write")
    gh.add_team_member("octo", "ML-Oncall", "OCTO-DEV")  # slugs and logins ignore case
    rule = AccessRule(teams=("octo/ml-release", "octo/ml-oncall"))
    decision = check(gh, rule, token=PAT)
    assert decision.allowed
    assert decision.reason.endswith("is an active member of octo/ml-oncall")


def test_workflow_token_cannot_see_teams_so_a_member_is_refused(gh: FakeGitHub) -> None:
    gh.set_permission(REPO, ACTOR, "write")
    gh.add_team_member("octo", "ml-release", ACTOR)
    decision = check(gh, AccessRule(teams=("octo/ml-release",)), token=APP_TOKEN)
    assert not decision.allowed
    assert "the token cannot see the team" in decision.reason


# -- environment approvals ---------------------------------------------------------------------


@pytest.fixture
def run_id(gh: FakeGitHub) -> int:
    gh.set_permission(REPO, ACTOR, "write")
    return gh.add_workflow_run(REPO, workflow="promote.yml", conclusion=None, event="push")


def test_no_approval_is_refused(gh: FakeGitHub, run_id: int) -> None:
    decision = check(gh, AccessRule(approvals=1), run_id=run_id)
    assert not decision.allowed
    assert decision.reason == (
        "production needs 1 approval by someone other than octo-dev; the run has none"
    )


def test_self_approval_never_counts(gh: FakeGitHub, run_id: int) -> None:
    gh.add_run_approval(REPO, run_id, ACTOR, comment="me, myself")
    decision = check(gh, AccessRule(approvals=1), run_id=run_id)
    assert not decision.allowed
    assert decision.reason == (
        "production needs 1 approval by someone other than octo-dev; the run has none; "
        "octo-dev's own approval does not count"
    )


def test_approval_by_someone_else_is_allowed(gh: FakeGitHub, run_id: int) -> None:
    gh.add_run_approval(REPO, run_id, ACTOR)
    gh.add_run_approval(REPO, run_id, "alice", environments=("staging", "production"), comment="ok")
    decision = check(gh, AccessRule(approvals=1), run_id=run_id)
    assert decision.allowed
    assert decision.reason == "octo-dev has write permission on octo/model; approved by alice"
    assert decision.approvals == (Approval("alice", "approved", ("staging", "production"), "ok"),)


def test_n_of_m_counts_listed_approvers_once_each(gh: FakeGitHub, run_id: int) -> None:
    rule = AccessRule(approvals=2, approvers=("alice", "bob", "carol"))
    gh.add_run_approval(REPO, run_id, "alice")
    gh.add_run_approval(REPO, run_id, "Alice")  # the same person again: still one
    gh.add_run_approval(REPO, run_id, "dave")  # not an approver
    gh.add_run_approval(REPO, run_id, "carol", state="rejected")
    decision = check(gh, rule, run_id=run_id)
    assert not decision.allowed
    assert decision.reason == (
        "production needs 2 approvals by someone other than octo-dev among alice, bob, carol; "
        "the run has 1 (alice); not approvers: dave"
    )
    gh.add_run_approval(REPO, run_id, "bob")
    decision = check(gh, rule, run_id=run_id)
    assert decision.allowed
    assert [a.login for a in decision.approvals] == ["alice", "bob"]


def test_approval_for_another_environment_does_not_count(gh: FakeGitHub, run_id: int) -> None:
    gh.add_run_approval(REPO, run_id, "alice", environments=("staging",))
    assert not check(gh, AccessRule(approvals=1), run_id=run_id).allowed
    assert check(gh, AccessRule(approvals=1), run_id=run_id, environment="Staging").allowed


def test_approvals_need_the_workflow_run(gh: FakeGitHub) -> None:
    decision = check(gh, AccessRule(approvals=1), run_id=None)
    assert not decision.allowed
    assert decision.reason == "approvals need the workflow run: promote from GitHub Actions"
    assert gh.requests == []


def test_unknown_run_fails_closed(gh: FakeGitHub) -> None:
    gh.set_permission(REPO, ACTOR, "write")
    with pytest.raises(Rejected, match="approvals of workflow run 424242: GitHub answered 404"):
        check(gh, AccessRule(approvals=1), run_id=424242)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"teams": ("ml-release",)}, "team 'ml-release' is not 'org/team-slug'"),
        ({"approvals": 3, "approvers": ("alice", "bob")}, "3 approvals can never come from 2"),
        ({"approvals": -1}, "approvals is -1, below 0"),
    ],
)
def test_impossible_rules_are_configuration_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AccessRule(**fields)


# -- GitHub failing ----------------------------------------------------------------------------


def test_502_is_retried(gh: FakeGitHub, sleeps: list[float]) -> None:
    gh.set_permission(REPO, ACTOR, "admin")
    gh.inject("GET", f"/repos/{REPO}/collaborators/*/permission", 502)
    assert check(gh, AccessRule(permission="admin")).allowed
    assert [r.status for r in gh.requests] == [502, 200]
    assert sleeps == [1.0]


def test_403_is_not_permitted(gh: FakeGitHub, run_id: int) -> None:
    gh.inject("GET", "*/approvals", 403, body={"message": "Resource not accessible"})
    with pytest.raises(NotPermitted, match="approvals of workflow run"):
        check(gh, AccessRule(approvals=1), run_id=run_id)


def test_unreachable_api_raises_unreachable(sleeps: list[float]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    repo = repository(f"http://127.0.0.1:{port}")
    with pytest.raises(Unreachable, match="gave up after 5 attempts"):
        access.check(repo, ACTOR, AccessRule(), run_id=None, environment="production")


# -- deployments -------------------------------------------------------------------------------


def test_deployment_is_recorded_then_marked_inactive(gh: FakeGitHub) -> None:
    repo = repository(gh.url)
    # A red status on the commit: GitHub would refuse the deployment unless it skips them.
    repo.get_commit(HEAD).create_status("failure", context="unrelated/lint")
    payload: dict[str, object] = {"model": "churn", "version": "7", "bundle_sha256": "ab" * 32}
    deployment_id = deployments.record(
        repo,
        ref=HEAD,
        environment="production",
        description="churn 7 promoted to production",
        payload=payload,
        state="success",
        log_url=RUN_URL,
        environment_url="https://models.example/churn",
    )
    [recorded] = gh.deployments(REPO)
    assert recorded["id"] == deployment_id
    assert {k: recorded[k] for k in ("sha", "task", "environment", "payload", "auto_merge")} == {
        "sha": HEAD,
        "task": "deploy:mlgate",
        "environment": "production",
        "payload": payload,
        "auto_merge": False,
    }
    assert recorded["required_contexts"] == []
    assert (recorded["production_environment"], recorded["transient_environment"]) == (
        True,
        False,
    )
    [status] = recorded["statuses"]
    assert (status["state"], status["log_url"], status["environment_url"]) == (
        "success",
        RUN_URL,
        "https://models.example/churn",
    )

    deployments.mark(repo, deployment_id, "inactive", "rolled back: " + "x" * 200, RUN_URL)
    statuses = list(repo.get_deployment(deployment_id).get_statuses())  # newest first
    assert [s.state for s in statuses] == ["inactive", "success"]
    assert len(statuses[0].description) == 140 and statuses[0].description.endswith("…")
    assert statuses[0].target_url == RUN_URL


def test_staging_deployment_is_not_production(gh: FakeGitHub) -> None:
    repo = repository(gh.url)
    deployments.record(
        repo,
        ref=HEAD,
        environment="staging",
        description="churn 7 to staging",
        payload={},
        state="in_progress",
        log_url=None,
    )
    [recorded] = gh.deployments(REPO)
    assert recorded["production_environment"] is False
    assert recorded["statuses"][0]["log_url"] == ""


def test_deployment_landed_before_a_502_is_not_made_twice(
    gh: FakeGitHub, sleeps: list[float]
) -> None:
    repo = repository(gh.url)
    gh.inject("POST", f"/repos/{REPO}/deployments", 502, landed=True)
    gh.inject("POST", f"/repos/{REPO}/deployments/*/statuses", 502, landed=True)
    deployment_id = deployments.record(
        repo,
        ref=HEAD,
        environment="production",
        description="churn 7",
        payload={"version": "7"},
        state="success",
        log_url=RUN_URL,
    )
    [recorded] = gh.deployments(REPO)
    assert recorded["id"] == deployment_id
    assert [s["state"] for s in recorded["statuses"]] == ["success"]
    assert len(sleeps) == 2


def test_deployment_502_before_github_acts_is_retried(gh: FakeGitHub, sleeps: list[float]) -> None:
    repo = repository(gh.url)
    gh.inject("POST", f"/repos/{REPO}/deployments", 502)
    deployments.record(
        repo,
        ref=HEAD,
        environment="production",
        description="churn 7",
        payload={"version": "7"},
        state="success",
        log_url=RUN_URL,
    )
    assert len(gh.deployments(REPO)) == 1
    assert sleeps == [1.0]


# -- proving the workflow run a promotion claims (issue 10) -----------------------------------


def test_a_run_is_proven_only_while_its_job_deploys_to_the_environment(gh: FakeGitHub) -> None:
    from mlgate.github.run_identity import ClaimedRun, RunNotProven, verify

    repo = repository(gh.url)
    run_id = gh.add_workflow_run(REPO, head_sha=HEAD, conclusion=None, actor=ACTOR, attempt=2)
    job = gh.add_run_job(REPO, run_id, "promote", environment="production")
    proven = verify(repo, ClaimedRun(run_id, ACTOR.upper(), HEAD, 2), "production")
    # Logins compare case-insensitively; the proof is the deployment Actions made for the job.
    (deployment,) = gh.deployments(REPO)
    assert (proven.actor, proven.environment, proven.deployment_id) == (
        ACTOR,
        "production",
        deployment["id"],
    )
    assert deployment["statuses"][-1]["log_url"].endswith(f"/runs/{run_id}/job/{job}")
    assert proven.started_at is not None
    with pytest.raises(RunNotProven, match="is at attempt 2, not 1 as claimed"):
        verify(repo, ClaimedRun(run_id, ACTOR, HEAD, 1), "production")  # an older attempt
    with pytest.raises(RunNotProven, match=r"no job deploying .* to the environment staging"):
        verify(repo, ClaimedRun(run_id, ACTOR, HEAD), "staging")
    # A finished job's deployment (its newest status success) no longer proves anything, and a
    # deployment another run's job made does not prove this run.
    done = gh.add_workflow_run(REPO, head_sha=HEAD, conclusion=None, actor=ACTOR)
    gh.add_run_job(REPO, done, "promote", environment="staging", status="completed")
    with pytest.raises(RunNotProven, match=r"\(0 jobs running\) has no job deploying"):
        verify(repo, ClaimedRun(done, ACTOR, HEAD), "staging")
    bare = gh.add_workflow_run(REPO, head_sha=HEAD, conclusion=None, actor=ACTOR)
    gh.add_run_job(REPO, bare, "build")
    with pytest.raises(RunNotProven, match=r"\(1 job running\) has no job deploying"):
        verify(repo, ClaimedRun(bare, ACTOR, HEAD), "production")  # run_id's deployment is not it
    assert gh.violations == [] and gh.unimplemented == []
