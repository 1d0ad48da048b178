"""Tests of the fake GitHub server (tests/fakegithub) that mlgate's GitHub tests rely on."""

from __future__ import annotations

import base64
import gzip
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from github import (
    Auth,
    BadCredentialsException,
    Github,
    GithubException,
    GithubRetry,
    RateLimitExceededException,
    UnknownObjectException,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakegithub import FakeGitHub, openapi
from tests.fakegithub.server import implemented_operations
from tests.fakegithub.spec import trim

REPO = "octo/model"
HEAD = "a1" * 20
BASE = "b2" * 20
ROOT = Path(__file__).resolve().parents[1]
NOT_ACCESSIBLE = "Resource not accessible by integration"
SECONDARY = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.set_token("app-token")  # the workflow's GITHUB_TOKEN: github-actions[bot]
        fake.set_token("pat-token", login="octo-dev", kind="pat")
        fake.set_token("fork-token", kind="readonly")
        fake.add_repo(REPO, default_branch="main")
        fake.add_pull(REPO, number=7, head_sha=HEAD, base_sha=BASE, head_ref="feature")
        yield fake


def client(gh: FakeGitHub, token: str = "app-token", **kwargs: Any) -> Github:
    kwargs.setdefault("retry", None)
    kwargs.setdefault("base_url", gh.url)
    return Github(
        auth=Auth.Token(token), seconds_between_requests=0, seconds_between_writes=0, **kwargs
    )


def api(
    gh: FakeGitHub, method: str, path: str, token: str = "app-token", **kwargs: Any
) -> requests.Response:
    headers = {"Authorization": f"token {token}"}
    return requests.request(method, gh.url + path, headers=headers, timeout=10, **kwargs)


def annotation(line: int) -> dict[str, Any]:
    return {
        "path": "src/model.py",
        "start_line": line,
        "end_line": line,
        "annotation_level": "warning",
        "message": f"finding {line}",
    }


def output(count: int, **fields: str) -> dict[str, Any]:
    return {
        "title": "mlgate",
        "summary": "summary",
        **fields,
        "annotations": [annotation(n) for n in range(count)],
    }


# -- PyGithub calls mlgate makes, end to end ---------------------------------------------------


def test_repository_user_and_rate_limit(gh: FakeGitHub) -> None:
    repo = client(gh).get_repo(REPO)
    assert (repo.full_name, repo.default_branch, repo.owner.login) == (REPO, "main", "octo")
    assert repo.url == f"{gh.url}/repos/{REPO}"
    assert client(gh, "pat-token").get_user().login == "octo-dev"
    with pytest.raises(GithubException) as refused:
        client(gh).get_user().login  # noqa: B018 - the attribute read sends the request
    assert (refused.value.status, refused.value.data["message"]) == (403, NOT_ACCESSIBLE)
    assert client(gh).get_rate_limit().resources.core.limit == 5000
    assert gh.violations == []


def test_enterprise_style_base_url(gh: FakeGitHub) -> None:
    repo = client(gh, base_url=f"{gh.url}/api/v3").get_repo(REPO)
    run = repo.create_check_run("mlgate", HEAD)
    assert run.url == f"{gh.url}/api/v3/repos/{REPO}/check-runs/{run.id}"
    run.edit(conclusion="success")  # follows the returned URL, prefix included
    assert [(r.method, r.path) for r in gh.requests][-1] == (
        "PATCH",
        f"/repos/{REPO}/check-runs/{run.id}",
    )
    assert gh.violations == []


def test_check_run_annotations_append_and_output_is_replaced(gh: FakeGitHub) -> None:
    repo = client(gh).get_repo(REPO)
    run = repo.create_check_run(
        "mlgate", HEAD, status="in_progress", output=output(50, text="details")
    )
    assert (run.status, run.output.annotations_count) == ("in_progress", 50)
    run.edit(output=output(10, title="final", summary="2 findings"), conclusion="failure")
    assert (run.status, run.conclusion, run.output.title) == ("completed", "failure", "final")
    assert run.output.annotations_count == 60
    assert run.completed_at is not None

    walked = list(run.get_annotations())  # 30 per page: PyGithub follows the Link header
    assert [a.message for a in walked] == [f"finding {n}" for n in [*range(50), *range(10)]]
    stored = gh.check_runs(REPO)
    assert len(stored) == 1
    assert stored[0]["output"]["title"] == "final"
    assert stored[0]["output"]["text"] == "details"  # not sent again, so kept
    assert len(stored[0]["output"]["annotations"]) == 60
    assert repo.get_check_run(run.id).output.summary == "2 findings"
    assert gh.violations == []


def test_commit_check_runs_filters(gh: FakeGitHub) -> None:
    repo = client(gh).get_repo(REPO)
    first = repo.create_check_run("tests", HEAD, conclusion="failure")
    rerun = repo.create_check_run("tests", HEAD, conclusion="success")
    repo.create_check_run("load", HEAD, status="in_progress")
    repo.create_check_run("tests", BASE, conclusion="success")
    commit = repo.get_commit(HEAD)
    latest = commit.get_check_runs()
    assert latest.totalCount == 2
    assert [r.id for r in latest if r.name == "tests"] == [rerun.id]
    assert {r.id for r in commit.get_check_runs(filter="all")} >= {first.id, rerun.id}
    assert [r.name for r in commit.get_check_runs(status="in_progress")] == ["load"]
    assert [r.conclusion for r in commit.get_check_runs(check_name="tests")] == ["success"]
    assert [r.head_sha for r in repo.get_commit("feature").get_check_runs()] == [HEAD, HEAD]
    assert [p.number for p in rerun.pull_requests] == [7]
    assert gh.violations == []


def test_commit_statuses_and_combined_status(gh: FakeGitHub) -> None:
    commit = client(gh).get_repo(REPO).get_commit(HEAD)
    commit.create_status("pending", context="mlgate/gate")
    commit.create_status("success", "https://ci.example/1", "all gates passed", "mlgate/gate")
    commit.create_status("success", context="other")
    combined = commit.get_combined_status()
    assert (combined.state, combined.total_count) == ("success", 2)
    assert [s["state"] for s in gh.statuses(REPO, HEAD)] == ["pending", "success", "success"]
    assert gh.statuses(REPO, HEAD)[1]["creator"]["login"] == "github-actions[bot]"
    listed = api(gh, "GET", f"/repos/{REPO}/commits/{HEAD}/statuses").json()
    assert [s["context"] for s in listed] == ["other", "mlgate/gate", "mlgate/gate"]
    # target_url is `nullable` in the description: null must pass validation.
    assert api(gh, "POST", f"/repos/{REPO}/statuses/{HEAD}", json=_status(None)).ok
    assert gh.violations == []


def _status(target_url: str | None) -> dict[str, Any]:
    return {"state": "failure", "context": "c", "target_url": target_url}


def test_pull_request_comments(gh: FakeGitHub) -> None:
    pull = client(gh).get_repo(REPO).get_pull(7)
    assert (pull.number, pull.head.sha, pull.base.ref) == (7, HEAD, "main")
    for n in range(35):
        pull.create_issue_comment(f"comment {n}")
    comments = list(pull.get_issue_comments())  # two pages
    assert [c.body for c in comments] == [f"comment {n}" for n in range(35)]
    assert (comments[0].user.login, comments[0].user.type) == ("github-actions[bot]", "Bot")
    comments[0].edit("edited")
    comments[1].delete()
    stored = gh.comments(REPO, 7)
    assert len(stored) == 34
    assert stored[0]["body"] == "edited"
    assert (
        client(gh, "pat-token").get_repo(REPO).get_pull(7).create_issue_comment("hi").user.type
        == "User"
    )
    assert gh.violations == []


def test_collaborator_permission_teams_and_run_approvals(gh: FakeGitHub) -> None:
    repo = client(gh).get_repo(REPO)
    gh.set_permission(REPO, "Maya", "maintain")
    gh.set_permission(REPO, "cy", "ml-promoter", base="triage")
    assert (repo.get_collaborator_permission("maya"), repo.get_collaborator_role_name("maya")) == (
        "write",
        "maintain",
    )
    assert repo.get_collaborator_permission("cy") == "read"  # a custom role's legacy base
    with pytest.raises(UnknownObjectException):
        repo.get_collaborator_permission("stranger")
    gh.set_permission(REPO, "maya", None)
    assert api(gh, "GET", f"/repos/{REPO}/collaborators/maya/permission").status_code == 404

    gh.add_team_member("octo", "ml-release", "maya")
    gh.add_team_member("octo", "ml-release", "cy", state="pending", role="maintainer")
    membership = "/orgs/octo/teams/ml-release/memberships"
    seen = api(gh, "GET", f"{membership}/Maya", "pat-token").json()
    assert (seen["state"], seen["role"]) == ("active", "member")
    assert api(gh, "GET", f"{membership}/cy", "pat-token").json()["state"] == "pending"
    assert api(gh, "GET", f"{membership}/stranger", "pat-token").status_code == 404
    # Teams are invisible to the workflow's token: members and non-members alike are 404.
    assert api(gh, "GET", f"{membership}/maya").status_code == 404

    run_id = gh.add_workflow_run(REPO, conclusion=None)
    gh.add_run_approval(REPO, run_id, "maya", environments=("staging", "production"))
    gh.add_run_approval(REPO, run_id, "cy", state="rejected", comment="not yet")
    approvals = api(gh, "GET", f"/repos/{REPO}/actions/runs/{run_id}/approvals").json()
    assert [(a["user"]["login"], a["state"], a["comment"]) for a in approvals] == [
        ("Maya", "approved", ""),  # an account keeps the spelling it was made with
        ("cy", "rejected", "not yet"),
    ]
    assert [e["name"] for e in approvals[0]["environments"]] == ["staging", "production"]
    assert api(gh, "GET", f"/repos/{REPO}/actions/runs/1/approvals").status_code == 404
    assert gh.violations == []


def test_deployments_follow_githubs_rules(gh: FakeGitHub) -> None:
    repo = client(gh).get_repo(REPO)
    repo.get_commit(HEAD).create_status("failure", context="lint")
    with pytest.raises(GithubException) as refused:
        repo.create_deployment(HEAD)  # every status context must have succeeded
    assert refused.value.status == 409
    with pytest.raises(GithubException) as refused:
        repo.create_deployment(HEAD, required_contexts=["lint"], environment="qa")
    assert refused.value.status == 409
    with pytest.raises(GithubException) as refused:
        repo.create_deployment("no-such-branch", required_contexts=[])
    assert refused.value.status == 422
    assert gh.deployments(REPO) == []

    first = repo.create_deployment("feature", required_contexts=[], environment="staging")
    assert (first.sha, first.ref, first.task, first.payload) == (HEAD, "feature", "deploy", {})
    assert first.production_environment is False
    first.create_status("success", target_url="https://ci.example/1")
    second = repo.create_deployment(HEAD, required_contexts=[], environment="staging")
    second.create_status("in_progress")
    second.create_status("success", description="d")
    # A later success made the earlier staging deployment inactive; newest status first.
    assert [s.state for s in first.get_statuses()] == ["inactive", "success"]
    assert [s.state for s in second.get_statuses()] == ["success", "in_progress"]
    assert [s["log_url"] for s in gh.deployments(REPO)[0]["statuses"]] == [
        "https://ci.example/1",
        "",
    ]

    production = repo.create_deployment(HEAD, required_contexts=[], task="deploy:mlgate")
    assert (production.environment, production.production_environment) == ("production", True)
    production.create_status("success", environment="prod-eu")
    assert repo.get_deployment(production.id).environment == "prod-eu"
    assert repo.get_deployment(production.id).original_environment == "production"
    assert [d.id for d in repo.get_deployments()] == [production.id, second.id, first.id]
    assert [d.id for d in repo.get_deployments(environment="staging", ref="feature")] == [first.id]
    assert [d.id for d in repo.get_deployments(task="deploy:mlgate")] == [production.id]

    with pytest.raises(GithubException) as too_long:
        production.create_status("failure", description="d" * 141)
    assert too_long.value.status == 422
    assert [v.split(": ", 1)[1] for v in gh.violations] == [
        "description is too long (maximum is 140 characters)"
    ]


# -- requests GitHub would refuse --------------------------------------------------------------


def test_pygithub_calls_outside_the_description_are_violations(gh: FakeGitHub) -> None:
    repo = client(gh).get_repo(REPO)
    with pytest.raises(UnknownObjectException):
        repo.get_issue(7)  # GET /repos/{owner}/{repo}/issues/{issue_number}: not in the subset
    with pytest.raises(UnknownObjectException):
        list(repo.get_commit(HEAD).get_statuses())  # GET .../statuses/{sha}: undocumented
    assert [v.split(":")[0] for v in gh.violations] == [
        f"GET /repos/{REPO}/issues/7",
        f"GET /repos/{REPO}/statuses/{HEAD}",
    ]


def test_check_run_output_limits(gh: FakeGitHub) -> None:
    repo = client(gh).get_repo(REPO)
    with pytest.raises(GithubException) as too_long:
        repo.create_check_run("mlgate", HEAD, output=output(0, summary="x" * 65536))
    with pytest.raises(GithubException) as too_many:
        repo.create_check_run("mlgate", HEAD, output=output(51))
    assert too_long.value.status == too_many.value.status == 422
    assert gh.check_runs(REPO) == []
    assert len(gh.violations) == 2
    assert gh.violations[0].startswith(f"POST /repos/{REPO}/check-runs: ")
    assert "output/summary" in gh.violations[0]
    assert "output/annotations" in gh.violations[1]
    repo.create_check_run("mlgate", HEAD, output=output(50, summary="x" * 65535))
    assert len(gh.violations) == 2


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "reason"),
    [
        ("POST", f"/repos/{REPO}/check-runs", {"name": "n"}, 422, "'head_sha' is a required"),
        ("POST", f"/repos/{REPO}/check-runs", {"name": "n", "head_sha": HEAD, "status": "done"},
         422, "status: 'done' is not one of"),
        ("POST", f"/repos/{REPO}/check-runs", {"name": "n", "head_sha": HEAD,
         "started_at": "yesterday"}, 422, "is not a 'date-time'"),
        ("POST", f"/repos/{REPO}/check-runs", b"{not json", 400, "Problems parsing JSON"),
        ("PATCH", f"/repos/{REPO}/check-runs/1", {"status": "completed"}, 422,
         "'conclusion' is a required property"),
        ("GET", f"/repos/{REPO}/commits/{HEAD}/check-runs?filter=newest", None, 422,
         "query parameter filter"),
        ("GET", f"/repos/{REPO}/issues/7/comments?per_page=many", None, 422, "per_page"),
        ("GET", f"/repos/{REPO}/check-runs/abc", None, 404, "check_run_id"),
        ("GET", f"/repos/{REPO}/check-run/1", None, 404, "no such operation"),
        ("PUT", f"/repos/{REPO}/check-runs/1", {}, 404, "no such operation"),
        ("POST", f"/repos/{REPO}/issues/7/comments", None, 422, "body is required"),
        ("POST", f"/repos/{REPO}/check-runs", {"name": "n", "head_sha": HEAD,
         "status": "completed"}, 422, "conclusion is required"),
        ("POST", f"/repos/{REPO}/statuses/{HEAD}", {"state": "success", "description": "d" * 141},
         422, "description is too long"),
        ("POST", f"/repos/{REPO}/issues/7/comments", {"body": "b" * 65537}, 422,
         "Body is too long"),
    ],
)  # fmt: skip
def test_invalid_requests_are_refused_and_recorded(
    gh: FakeGitHub, method: str, path: str, body: object, status: int, reason: str
) -> None:
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
    response = api(gh, method, path, data=data)
    assert response.status_code == status
    assert set(response.json()) == {"message", "documentation_url"}
    assert len(gh.violations) == 1
    assert gh.violations[0].startswith(f"{method} {path.split('?')[0]}: ")
    assert reason in gh.violations[0]


def test_refused_update_leaves_the_check_run_unchanged(gh: FakeGitHub) -> None:
    run = client(gh).get_repo(REPO).create_check_run("mlgate", HEAD, output=output(2))
    before = gh.check_runs(REPO)
    with pytest.raises(GithubException) as refused:
        # action_required needs a details_url; GitHub refuses the whole update.
        run.edit(conclusion="action_required", output=output(3))
    assert refused.value.status == 422
    assert gh.check_runs(REPO) == before
    assert len(gh.violations) == 1


# -- tokens ------------------------------------------------------------------------------------


def test_unknown_or_missing_token_is_401(gh: FakeGitHub) -> None:
    with pytest.raises(BadCredentialsException):
        client(gh, "stolen").get_repo(REPO)
    assert requests.get(f"{gh.url}/repos/{REPO}", timeout=10).status_code == 401
    assert gh.violations == []


def test_personal_token_cannot_write_check_runs(gh: FakeGitHub) -> None:
    repo = client(gh, "pat-token").get_repo(REPO)
    with pytest.raises(GithubException) as refused:
        repo.create_check_run("mlgate", HEAD)
    assert refused.value.status == 403
    assert refused.value.data["message"] == "You must authenticate via a GitHub App."
    repo.get_commit(HEAD).create_status("success")  # statuses accept any token with write
    assert gh.check_runs(REPO) == []
    assert gh.violations == []


def test_fork_token_reads_but_cannot_write(gh: FakeGitHub) -> None:
    repo = client(gh, "fork-token").get_repo(REPO)
    pull = repo.get_pull(7)
    for write in (
        lambda: repo.create_check_run("mlgate", HEAD),
        lambda: pull.create_issue_comment("hi"),
        lambda: repo.get_commit(HEAD).create_status("success"),
    ):
        with pytest.raises(GithubException) as refused:
            write()
        assert (refused.value.status, refused.value.data["message"]) == (403, NOT_ACCESSIBLE)
    assert gh.check_runs(REPO) == [] and gh.comments(REPO, 7) == []
    assert gh.violations == []


def test_valid_but_unimplemented_operation_is_501(gh: FakeGitHub) -> None:
    with pytest.raises(GithubException) as refused:
        list(client(gh).get_repo(REPO).get_releases())
    assert refused.value.status == 501
    assert gh.unimplemented == ["GET /repos/{owner}/{repo}/releases"]
    assert gh.violations == []


# -- fault injection and PyGithub's retry ------------------------------------------------------


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Sleeps urllib3's Retry asks for, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr("urllib3.util.retry.time.sleep", recorded.append)
    return recorded


def test_5xx_on_post_is_retried_and_applied_once(gh: FakeGitHub, sleeps: list[float]) -> None:
    repo = client(gh, retry=GithubRetry(total=3)).get_repo(REPO)
    gh.inject("POST", f"/repos/{REPO}/check-runs", 502)
    repo.create_check_run("mlgate", HEAD)
    assert [r.status for r in gh.requests][-2:] == [502, 201]
    assert len(gh.check_runs(REPO)) == 1


def test_5xx_on_patch_is_not_retried(gh: FakeGitHub, sleeps: list[float]) -> None:
    run = client(gh, retry=GithubRetry(total=3)).get_repo(REPO).create_check_run("m", HEAD)
    gh.inject("PATCH", re.compile(r"/repos/.+/check-runs/\d+"), 503)
    with pytest.raises(GithubException) as failed:
        run.edit(conclusion="success")  # GithubRetry's allowed methods leave PATCH out
    assert failed.value.status == 503
    assert gh.check_runs(REPO)[0]["status"] == "queued"
    run.edit(conclusion="success")  # times=1: the fault is used up
    assert gh.check_runs(REPO)[0]["conclusion"] == "success"


def test_secondary_rate_limit_honours_retry_after(gh: FakeGitHub, sleeps: list[float]) -> None:
    repo = client(gh, retry=GithubRetry(total=3)).get_repo(REPO)
    gh.inject(
        "POST", "*/check-runs", 403, body={"message": SECONDARY}, headers={"Retry-After": "1"}
    )
    repo.create_check_run("mlgate", HEAD)
    assert sleeps == [1]
    gh.inject("POST", "*/check-runs", 403, body={"message": SECONDARY})
    repo.create_check_run("mlgate", HEAD)  # no Retry-After: GithubRetry's secondary_rate_wait
    assert sleeps == [1, 60]
    assert len(gh.check_runs(REPO)) == 2


def test_forever_fault_and_clear(gh: FakeGitHub, sleeps: list[float]) -> None:
    repo = client(gh, retry=GithubRetry(total=3)).get_repo(REPO)
    gh.inject("*", "*/check-runs", 403, body={"message": NOT_ACCESSIBLE}, times=None)
    for _ in range(2):
        with pytest.raises(GithubException) as refused:
            repo.create_check_run("mlgate", HEAD)
        assert refused.value.status == 403  # not a rate limit: GithubRetry does not retry
    assert sleeps == []
    gh.inject("POST", "*/check-runs", 403, body={"message": SECONDARY}, times=None)
    gh.clear_faults()
    repo.create_check_run("mlgate", HEAD)
    assert [r.status for r in gh.requests][-3:] == [403, 403, 201]


def test_exhausted_retries_raise_requests_retry_error(gh: FakeGitHub, sleeps: list[float]) -> None:
    repo = client(gh, retry=GithubRetry(total=2)).get_repo(REPO)
    gh.inject("POST", "*", 502, times=None)
    with pytest.raises(requests.exceptions.RetryError):
        repo.create_check_run("mlgate", HEAD)
    assert [r.status for r in gh.requests][-3:] == [502, 502, 502]


def test_patch_rate_limit_is_not_retried(gh: FakeGitHub, sleeps: list[float]) -> None:
    pull = client(gh, retry=GithubRetry(total=3)).get_repo(REPO).get_pull(7)
    comment = pull.create_issue_comment("sticky")
    gh.inject("PATCH", "*", 403, body={"message": SECONDARY}, headers={"Retry-After": "1"})
    with pytest.raises(RateLimitExceededException):
        comment.edit("updated")
    assert sleeps == []


def test_faults_do_not_hide_violations(gh: FakeGitHub) -> None:
    gh.inject("*", "*", 502, times=None)
    response = api(gh, "POST", f"/repos/{REPO}/check-runs", json={"name": "no head_sha"})
    assert response.status_code == 422
    assert len(gh.violations) == 1


def test_fault_matching(gh: FakeGitHub) -> None:
    fault = gh.inject("GET", "/repos/*/pulls/7", 500, times=2)
    statuses = [api(gh, "GET", f"/repos/{REPO}/pulls/7").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert fault.remaining == 0
    gh.inject("GET", re.compile(r"/repos/octo/model/pulls/\d"), 500)
    assert api(gh, "GET", f"/repos/{REPO}/pulls/77").status_code == 404  # fullmatch only
    assert api(gh, "GET", f"/repos/{REPO}/pulls/7").status_code == 500


# -- introspection and shape -------------------------------------------------------------------


def test_request_log(gh: FakeGitHub) -> None:
    client(gh).get_repo(REPO).get_pull(7)
    assert gh.requests == [("GET", f"/repos/{REPO}", 200), ("GET", f"/repos/{REPO}/pulls/7", 200)]
    api(gh, "GET", "/nowhere")
    assert gh.violations and gh.requests[-1] == ("GET", "/nowhere", 404)
    gh.reset_log()
    assert (gh.requests, gh.violations, gh.unimplemented) == ([], [], [])


def test_responses_match_the_documented_schemas(gh: FakeGitHub) -> None:
    new_run = {"name": "n", "head_sha": HEAD, "output": output(1)}
    run = api(gh, "POST", f"/repos/{REPO}/check-runs", json=new_run).json()
    comment = api(gh, "POST", f"/repos/{REPO}/issues/7/comments", json={"body": "hi"}).json()
    api(gh, "POST", f"/repos/{REPO}/statuses/{HEAD}", json={"state": "success"})
    run_id = gh.add_workflow_run(
        REPO, artifacts={"mlgate-report": b"PK\x05\x06" + bytes(18)}, actor="release-lead"
    )
    gh.add_run_job(REPO, run_id, environment="production")  # its job's deployment too
    gh.add_workflow(REPO, "mlgate.yml")  # with a workflow_dispatch trigger
    artifact = api(gh, "GET", f"/repos/{REPO}/actions/runs/{run_id}/artifacts").json()
    gh.set_permission(REPO, "release-lead", "maintain")
    gh.add_team_member("octo", "ml-release", "release-lead")
    gh.add_run_approval(REPO, run_id, "release-lead", comment="ship it")
    gh.add_branch(REPO, "main", sha=HEAD, files={"mlgate.yml": b"version: 1\n"})
    new_deployment = {"ref": HEAD, "environment": "production", "required_contexts": []}
    deployment = api(gh, "POST", f"/repos/{REPO}/deployments", json=new_deployment).json()
    new_deployment_status = {"state": "success", "log_url": "https://ci.example/runs/1"}
    api(gh, "POST", deployment["statuses_url"].removeprefix(gh.url), json=new_deployment_status)
    params = {
        "owner": "octo",
        "repo": "model",
        "ref": HEAD,
        "sha": HEAD,
        "pull_number": 7,
        "issue_number": 7,
        "check_run_id": run["id"],
        "comment_id": comment["id"],
        "workflow_id": "mlgate.yml",
        "run_id": run_id,
        "artifact_id": artifact["artifacts"][0]["id"],
        "archive_format": "zip",
        "username": "release-lead",
        "org": "octo",
        "team_slug": "ml-release",
        "deployment_id": deployment["id"],
        "path": "mlgate.yml",
    }
    bodies = {
        "/repos/{owner}/{repo}/check-runs": new_run,
        "/repos/{owner}/{repo}/check-runs/{check_run_id}": {"conclusion": "success"},
        "/repos/{owner}/{repo}/statuses/{sha}": {"state": "pending", "description": None},
        "/repos/{owner}/{repo}/issues/{issue_number}/comments": {"body": "x"},
        "/repos/{owner}/{repo}/issues/comments/{comment_id}": {"body": "y"},
        "/repos/{owner}/{repo}/code-scanning/sarifs": {
            "commit_sha": HEAD,
            "ref": "refs/heads/main",
            "sarif": base64.b64encode(
                gzip.compress(json.dumps({"version": "2.1.0", "runs": []}).encode())
            ).decode(),
        },
        "/repos/{owner}/{repo}/deployments": new_deployment,
        "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses": new_deployment_status,
        "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches": {
            "ref": "main",
            "inputs": {"reason": "drift"},
        },
        "/repos/{owner}/{repo}/dispatches": {"event_type": "retrain", "client_payload": {"a": 1}},
    }
    spec = openapi.load()
    # Every implemented operation; DELETE last, so the comment exists for the others.
    for method, template in sorted(implemented_operations(), key=lambda op: op[0] == "DELETE"):
        path = template.format(**params)
        if template.endswith("/git/ref/{ref}"):  # branches, named as refs
            path = template.format(**{**params, "ref": "heads/main"})
        # The workflow's token can neither read its user nor see teams.
        token = "pat-token" if template == "/user" or "/teams/" in template else "app-token"
        body = bodies[template] if method in ("POST", "PATCH") else None
        response = api(gh, method, path, token, json=body, allow_redirects=False)
        status = {"POST": 201, "DELETE": 204}.get(method, 200)
        if template.endswith("/code-scanning/sarifs"):  # accepted, processed later
            status = 202
        if template.endswith("/{archive_format}"):  # a redirect to storage, no JSON body
            status = 302
        if template.endswith("/dispatches"):  # accepted, nothing to show
            status = 204
        assert response.status_code == status, (method, path, response.text)
        if status in (204, 302):
            continue
        error = spec.operation(method, template).response_error(status, response.json())
        assert error is None, (method, template, error)
        # Nothing of the documentation examples leaks into a response.
        assert not re.search(r"octocat|Hello-World|api\.github\.com", response.text), path
    assert gh.violations == []


@settings(max_examples=30, deadline=None)
@given(count=st.integers(0, 70), per_page=st.integers(1, 100))
def test_pagination_walks_every_item_once(count: int, per_page: int) -> None:
    with FakeGitHub() as gh:
        gh.set_token("app-token")
        gh.add_repo(REPO)
        gh.add_pull(REPO, number=1, head_sha=HEAD, base_sha=BASE)
        for n in range(count):
            body = json.dumps({"body": str(n)}).encode()
            gh.handle("POST", f"/repos/{REPO}/issues/1/comments", "token app-token", body)
        seen: list[str] = []
        target: str | None = f"/repos/{REPO}/issues/1/comments?per_page={per_page}"
        pages = 0
        while target:
            reply = gh.handle("GET", target, "token app-token", b"")
            seen += [comment["body"] for comment in reply.body]
            pages += 1
            found = re.search(r'<([^>]+)>; rel="next"', reply.headers.get("Link", ""))
            target = found.group(1).removeprefix(gh.url) if found else None
        assert seen == [str(n) for n in range(count)]
        assert pages == max(-(-count // per_page), 1)
        assert gh.violations == []


# -- process and files -------------------------------------------------------------------------


def test_stop_does_not_wait_for_idle_connections() -> None:
    gh = FakeGitHub().start()
    host, port = gh.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))):  # connected, never sends a request
        started = time.monotonic()
        gh.stop()
        assert time.monotonic() - started < 2


def test_standalone_server(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"tokens": [{"token": "t"}], "repos": [{"full_name": REPO}]}))
    state = tmp_path / "state.json"
    command = [sys.executable, "-m", "tests.fakegithub", "--port", "0", "--seed", str(seed)]
    with subprocess.Popen(
        [*command, "--state-file", str(state)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("listening on http://127.0.0.1:")
            url = line.split()[-1]
            assert json.loads(state.read_text())["requests"] == []
            response = requests.get(f"{url}/repos/{REPO}", headers={"Authorization": "token t"})
            assert response.status_code == 200
            assert json.loads(state.read_text())["requests"] == [["GET", f"/repos/{REPO}", 200]]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0


def test_trim_reproduces_the_vendored_description() -> None:
    vendored = openapi.SPEC_FILE.read_bytes()
    assert trim.serialize(trim.trim(json.loads(vendored))) == vendored
