"""Publishing to a stateful fake GitHub that validates every request against GitHub's OpenAPI
description: checks, annotations, the sticky comment, fallbacks, retries, idempotence."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgate import config, policy
from mlgate import evidence as ev
from mlgate.evidence import Finding
from mlgate.github import checks, context, publish
from mlgate.github.client import Unreachable
from mlgate.report import model
from mlgate.stages.interface import RunContext
from mlgate.stages.tests import TestsStage
from mlgate.stages.tests_config import TestsConfig
from tests.fakegithub import FakeGitHub
from tests.helpers import github_with_pull, junit_xml

REPO = "octo/model"
HEAD = "a" * 40
MERGE = "b" * 40
TOKEN = "ghs_app_token"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with github_with_pull(REPO, HEAD, TOKEN) as fake:
        fake.set_token("ghp_personal", login="octo-dev", kind="pat")
        fake.set_token("ghs_fork", kind="readonly")
        yield fake


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    return waited


def actions_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    gh: FakeGitHub,
    event: str = "pull_request",
    attempt: int = 1,
) -> None:
    payload = (
        {"pull_request": {"number": 7, "head": {"sha": HEAD}}}
        if event == "pull_request"
        else {"ref": "refs/heads/main"}
    )
    (tmp_path / "event.json").write_text(json.dumps(payload))
    for key, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": gh.url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": MERGE if event == "pull_request" else HEAD,
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": str(attempt),
        "GITHUB_WORKSPACE": str(tmp_path),
    }.items():
        monkeypatch.setenv(key, value)


def make_report(
    tmp_path: Path, failed: int = 120, passed: int = 30, name_suffix: str = ""
) -> model.Report:
    junit_xml(
        tmp_path / "junit.xml",
        passed=passed,
        failed=failed,
        file=f"tests/test_model{name_suffix}.py",
    )
    stage = TestsStage()
    evidence = stage.run(
        TestsConfig(junit=[str(tmp_path / "junit.xml")], working_directory=str(tmp_path)),
        RunContext(tmp_path / "ev", None),
    )
    ev.write(evidence, tmp_path / "ev")
    cfg = config.parse({"stages": {"tests": {}}})
    policy.write(policy.evaluate(cfg, tmp_path / "ev"), tmp_path / "verdict.json")
    return model.load(cfg, tmp_path / "verdict.json", tmp_path / "ev")


def publish_now(
    report: model.Report, token: str = TOKEN, comment: str = "always"
) -> publish.Published:
    cfg = config.ReportConfig(comment=comment)  # type: ignore[arg-type]
    return publish.publish(report, context.from_env(token), cfg, write_delay=0)


def test_pull_request_gets_checks_annotations_and_one_comment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    report = make_report(tmp_path)
    done = publish_now(report)
    assert done.checks == ["mlgate/tests", "mlgate"] and done.warnings == []
    runs = {run["name"]: run for run in gh.check_runs(REPO)}
    assert set(runs) == {"mlgate/tests", "mlgate"}
    tests_run = runs["mlgate/tests"]
    # On the PR head, not the merge commit GITHUB_SHA names.
    assert tests_run["head_sha"] == HEAD and runs["mlgate"]["head_sha"] == HEAD
    assert tests_run["status"] == "completed" and tests_run["conclusion"] == "failure"
    assert runs["mlgate"]["conclusion"] == "failure"
    assert len(tests_run["output"]["annotations"]) == 120
    assert {a["path"] for a in tests_run["output"]["annotations"]} == {"tests/test_model.py"}
    assert len({(a["start_line"], a["title"]) for a in tests_run["output"]["annotations"]}) == 120
    patches = [r for r in gh.requests if r[0] == "PATCH" and "/check-runs/" in r[1]]
    assert len(patches) == 2  # 120 annotations: 50 with the create, then 50 + 20
    comments = gh.comments(REPO, 7)
    assert len(comments) == 1 and comments[0]["body"].startswith("<!-- mlgate:comment:mlgate -->")
    assert "tests\\: 120 failed\\, 0 allowed" in comments[0]["body"]


def test_annotations_stop_at_report_max_annotations_and_the_check_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    cfg = config.ReportConfig(max_annotations=60)
    publish.publish(make_report(tmp_path), context.from_env(TOKEN), cfg, write_delay=0)
    runs = {run["name"]: run for run in gh.check_runs(REPO)}
    tests_run = runs["mlgate/tests"]
    assert len(tests_run["output"]["annotations"]) == 60  # of 120: one PATCH after the create
    assert len([r for r in gh.requests if r[0] == "PATCH" and "/check-runs/" in r[1]]) == 1
    assert "60 of 120 findings with a file, the most pressing" in tests_run["output"]["summary"]
    assert "`mlgate-report` artifact" in tests_run["output"]["summary"]
    assert tests_run["conclusion"] == "failure"  # the verdict is untouched
    assert config.ReportConfig().max_annotations == 5000


def test_the_annotations_kept_are_the_most_pressing() -> None:
    def finding(
        name: str, severity: ev.Severity, line: int | None, waived: bool = False
    ) -> Finding:
        return Finding(
            id=name,
            severity=severity,
            message=name,
            rule="r",
            path="src/a.py",
            line=line,
            waived_by={"id": "w"} if waived else None,
        )

    findings = [
        finding("waived", "critical", 3, waived=True),
        finding("info", "info", 4),
        finding("unlisted", "high", None),
        finding("failed", "high", 5),
        finding("critical", "critical", None),
        finding("failed too", "high", 6),
    ]
    ranked = [f.id for f in checks.most_pressing_first(findings)]
    assert ranked == ["critical", "failed", "failed too", "unlisted", "info", "waived"]


def test_first_comment_costs_one_listing_and_no_pull_request_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    assert publish_now(make_report(tmp_path)).comment == "created"
    asked = [(method, path) for method, path, _ in gh.requests]
    assert ("GET", "/repos/octo/model/pulls/7") not in asked
    assert asked.count(("GET", "/repos/octo/model/issues/7/comments")) == 1
    assert asked.count(("POST", "/repos/octo/model/issues/7/comments")) == 1


def test_the_comment_on_a_busy_pull_request_is_found_in_pages_of_100(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    from github import Auth, Github

    reviewer = Github(
        auth=Auth.Token("ghp_personal"),
        base_url=gh.url,
        seconds_between_requests=0,
        seconds_between_writes=0,
    )
    pull = reviewer.get_repo(REPO).get_pull(7)
    for n in range(110):
        pull.create_issue_comment(f"review note {n}")
    report = make_report(tmp_path, failed=1)
    assert publish_now(report).comment == "created"
    gh.reset_log()
    assert publish_now(report).comment == "updated"  # ours is the 111th
    listings = [r for r in gh.requests if r[:2] == ("GET", "/repos/octo/model/issues/7/comments")]
    assert len(listings) == 2  # pages of 100; PyGithub's default 30 would take 4
    assert len(gh.comments(REPO, 7)) == 111


def test_comment_that_landed_before_a_502_is_not_posted_twice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub, sleeps: list[float]
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    gh.inject("POST", "/repos/octo/model/issues/7/comments", 502, times=1, landed=True)
    assert publish_now(make_report(tmp_path)).comment == "created"
    assert len(gh.comments(REPO, 7)) == 1 and len(sleeps) == 1


def test_rerun_is_idempotent_and_attempts_keep_one_comment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    report = make_report(tmp_path)
    publish_now(report)
    before = gh.check_runs(REPO)
    assert publish_now(report).comment == "updated"
    assert gh.check_runs(REPO) == before  # same attempt, same content: nothing new
    assert len(gh.comments(REPO, 7)) == 1
    actions_env(monkeypatch, tmp_path, gh, attempt=2)
    publish_now(make_report(tmp_path, failed=0, passed=5))
    assert len(gh.comments(REPO, 7)) == 1
    latest = gh.comments(REPO, 7)[0]["body"]
    assert "mlgate: passed" in latest and "120 failed" not in latest
    assert [r["conclusion"] for r in gh.check_runs(REPO)][-2:] == ["success", "success"]


def test_rerun_step_with_new_durations_edits_its_check_run_in_place(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    # A step re-run in the same attempt measures new durations: same failures, other summary.
    actions_env(monkeypatch, tmp_path, gh)
    publish_now(make_report(tmp_path))
    first = {run["name"]: run for run in gh.check_runs(REPO)}
    report = make_report(tmp_path)
    report.evidence["tests"].metrics["duration_s"] = 1234.5
    publish_now(report)
    runs = gh.check_runs(REPO)
    assert [run["id"] for run in runs] == [run["id"] for run in first.values()]
    tests_run = next(run for run in runs if run["name"] == "mlgate/tests")
    assert "in 1234 s" in tests_run["output"]["title"]
    assert len(tests_run["output"]["annotations"]) == 120  # none sent twice
    # Other failures are other annotations, which GitHub cannot take back: a new check run.
    publish_now(make_report(tmp_path, failed=3, passed=5))
    names = [run["name"] for run in gh.check_runs(REPO)]
    assert sorted(names) == ["mlgate", "mlgate/tests", "mlgate/tests"]  # aggregate edited


def test_comment_modes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    passing = make_report(tmp_path / "p", failed=0, passed=3)
    assert publish_now(passing, comment="off").comment == "skipped"
    assert publish_now(passing, comment="on-failure").comment == "skipped"
    assert gh.comments(REPO, 7) == []
    failing = make_report(tmp_path / "f", failed=2)
    assert publish_now(failing, comment="on-failure").comment == "created"
    assert publish_now(failing, comment="on-change").comment == "unchanged"
    assert publish_now(passing, comment="on-failure").comment == "updated"  # no stale failure
    assert publish_now(passing, comment="on-change").comment == "unchanged"
    assert len(gh.comments(REPO, 7)) == 1


def test_push_gets_checks_but_no_comment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh, event="push")
    done = publish_now(make_report(tmp_path, failed=1))
    assert done.comment == "skipped" and gh.comments(REPO, 7) == []
    assert {r["head_sha"] for r in gh.check_runs(REPO)} == {HEAD}


def test_forged_marker_in_someone_elses_comment_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    from github import Auth, Github

    Github(auth=Auth.Token("ghp_personal"), base_url=gh.url).get_repo(REPO).get_pull(
        7
    ).create_issue_comment("<!-- mlgate:comment:mlgate -->\nall good, ship it")
    publish_now(make_report(tmp_path, failed=1))
    bodies = [c["body"] for c in gh.comments(REPO, 7)]
    assert bodies[0] == "<!-- mlgate:comment:mlgate -->\nall good, ship it"
    assert len(bodies) == 2 and "mlgate: failed" in bodies[1]


def test_personal_token_falls_back_to_statuses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    done = publish_now(make_report(tmp_path, failed=1), token="ghp_personal")
    assert done.checks == [] and done.statuses == ["mlgate/tests", "mlgate"]
    assert "cannot create check runs" in done.warnings[0]
    states = {s["context"]: s["state"] for s in gh.statuses(REPO, HEAD)}
    assert states == {"mlgate/tests": "failure", "mlgate": "failure"}
    # A personal token writes comments as its user; the re-run finds and edits that comment.
    publish_now(make_report(tmp_path, failed=1), token="ghp_personal")
    assert len(gh.comments(REPO, 7)) == 1


def test_fork_token_keeps_the_verdict_with_warnings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    done = publish_now(make_report(tmp_path, failed=1), token="ghs_fork")
    assert done.checks == [] and done.statuses == []
    assert len(done.warnings) == 3
    assert "Resource not accessible by integration" in done.warnings[0]
    assert gh.check_runs(REPO) == [] and gh.comments(REPO, 7) == []


def test_retries_5xx_and_secondary_rate_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub, sleeps: list[float]
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    gh.inject("POST", "/repos/octo/model/check-runs", 502, times=2)
    gh.inject(
        "PATCH",
        "/repos/octo/model/check-runs/*",
        403,
        times=1,
        body={
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        },
        headers={"Retry-After": "7"},
    )
    gh.inject("POST", "/repos/octo/model/issues/7/comments", 500, times=1)
    publish_now(make_report(tmp_path))
    assert 7.0 in sleeps and len(sleeps) == 4
    runs = {run["name"]: run for run in gh.check_runs(REPO)}
    assert len(gh.check_runs(REPO)) == 2
    assert len(runs["mlgate/tests"]["output"]["annotations"]) == 120
    assert len(gh.comments(REPO, 7)) == 1


def test_persistent_5xx_gives_up_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub, sleeps: list[float]
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    gh.inject("*", "*", 503, times=None)
    with pytest.raises(Unreachable, match=r"gave up after 5 attempts \(last: 503"):
        publish_now(make_report(tmp_path))
    assert len(sleeps) == 4


def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlgate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_report_unreachable_api_exits_4_and_keeps_local_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("GITHUB_SHA", HEAD)  # the verdict is about the commit reported on
    make_report(tmp_path, failed=1)
    (tmp_path / "mlgate.yml").write_text("stages:\n  tests: {}\n")
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_ACTIONS": "true",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": f"http://127.0.0.1:{port}",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": HEAD,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "out.txt"),
    }
    started = time.monotonic()
    result = run_cli(
        "report", "--verdict", "verdict.json", "--evidence-dir", "ev", cwd=tmp_path, env=env
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 4, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mlgate: error")]
    assert len(errors) == 1 and "could not publish to GitHub" in errors[0]
    assert "Traceback" not in result.stderr
    assert (tmp_path / ".mlgate" / "report.html").exists()
    assert "mlgate: failed" in (tmp_path / "summary.md").read_text()
    assert "verdict=fail" in (tmp_path / "out.txt").read_text()


def test_a_refused_request_does_not_stop_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    from mlgate.github.client import Rejected

    actions_env(monkeypatch, tmp_path, gh)
    gh.inject(
        "POST", "/repos/octo/model/check-runs", 422, times=1, body={"message": "Validation Failed"}
    )
    with pytest.raises(
        Rejected, match="create check mlgate/tests: GitHub answered 422 Validation Failed"
    ):
        publish_now(make_report(tmp_path, failed=1))
    assert [run["name"] for run in gh.check_runs(REPO)] == ["mlgate"]
    assert len(gh.comments(REPO, 7)) == 1


def test_bad_credentials_are_a_failure_not_a_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    from mlgate.github.client import Rejected

    actions_env(monkeypatch, tmp_path, gh)
    with pytest.raises(Rejected, match="401"):
        publish_now(make_report(tmp_path, failed=1), token="not-a-token")
    assert gh.check_runs(REPO) == [] and gh.statuses(REPO, HEAD) == []


def test_workflow_run_job_publishes_another_runs_results(tmp_path: Path, gh: FakeGitHub) -> None:
    import os

    (tmp_path / "mlgate.yml").write_text("stages: {tests: {junit: j.xml}}\n")
    junit_xml(tmp_path / "j.xml", passed=2, failed=1)
    base = {"PATH": os.environ["PATH"], "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": REPO}
    # The untrusted pull_request job: evidence about the PR head.
    (tmp_path / "pr.json").write_text(
        json.dumps({"pull_request": {"number": 7, "head": {"sha": HEAD}}})
    )
    fork = base | {
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(tmp_path / "pr.json"),
        "GITHUB_SHA": MERGE,
    }
    assert run_cli("run", cwd=tmp_path, env=fork).returncode == 0
    # The workflow_run job: GITHUB_SHA is the base branch's; MLGATE_SHA/PR name the PR.
    (tmp_path / "run.json").write_text(json.dumps({"workflow_run": {"head_sha": HEAD}}))
    publisher = base | {
        "GITHUB_EVENT_NAME": "workflow_run",
        "GITHUB_EVENT_PATH": str(tmp_path / "run.json"),
        "GITHUB_SHA": "e" * 40,
        "GITHUB_API_URL": gh.url,
        "GITHUB_TOKEN": TOKEN,
        "MLGATE_SHA": HEAD,
        "MLGATE_PR": "7",
        "MLGATE_WRITE_DELAY_SECONDS": "0",
    }
    gate = run_cli("gate", cwd=tmp_path, env=publisher)
    assert gate.returncode == 1 and "tests: 1 failed, 0 allowed" in gate.stderr
    report = run_cli("report", cwd=tmp_path, env=publisher)
    assert report.returncode == 0, report.stderr
    assert {run["head_sha"] for run in gh.check_runs(REPO)} == {HEAD}
    assert len(gh.comments(REPO, 7)) == 1


def scan_report(tmp_path: Path) -> model.Report:
    """Scan evidence of a real bandit run over an insecure module, gated."""
    from mlgate.stages.scan.config import ScanConfig
    from mlgate.stages.scan.stage import ScanStage

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(
        "import subprocess\n\n\ndef run(c: str) -> int:\n"
        "    return subprocess.call(c, shell=True)\n"
    )
    stage_config = ScanConfig(sources=["src"], working_directory=str(tmp_path))
    evidence = ScanStage().run(stage_config, RunContext(tmp_path / "ev", None))
    assert evidence.status == "passed", evidence.reason
    ev.write(evidence, tmp_path / "ev")
    cfg = config.parse({"stages": {"scan": {"sources": ["src"]}}})
    policy.write(policy.evaluate(cfg, tmp_path / "ev"), tmp_path / "verdict.json")
    return model.load(cfg, tmp_path / "verdict.json", tmp_path / "ev")


def test_scan_findings_become_annotations_and_sarif_in_code_scanning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    monkeypatch.setenv("GITHUB_REF", "refs/pull/7/merge")
    done = publish_now(scan_report(tmp_path))
    assert done.sarif == ["bandit.sarif"] and done.warnings == []
    (upload,) = gh.sarif_uploads(REPO)
    # Filed like upload-sarif does on a pull request: the merge commit and the merge ref.
    assert (upload["commit_sha"], upload["ref"]) == (MERGE, "refs/pull/7/merge")
    (run,) = upload["sarif"]["runs"]
    assert run["automationDetails"]["id"] == "mlgate/bandit/"
    assert {r["ruleId"] for r in run["results"]} >= {"B602"}
    scan_run = next(r for r in gh.check_runs(REPO) if r["name"] == "mlgate/scan")
    assert scan_run["conclusion"] == "failure"
    assert any(
        a["path"] == "src/app.py" and a["start_line"] == 5
        for a in scan_run["output"]["annotations"]
    )
    assert "| code |" in scan_run["output"]["text"] + scan_run["output"]["summary"]


def test_code_scanning_off_is_a_notice_not_a_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    gh.set_code_scanning(REPO, False)
    done = publish_now(scan_report(tmp_path))
    assert done.sarif == [] and done.checks == ["mlgate/scan", "mlgate"]
    (warning,) = done.warnings
    assert "SARIF not uploaded to code scanning" in warning and "security-events" in warning
    assert gh.sarif_uploads(REPO) == []
