"""A merge queue's merge_group event: the checks go on the group's head commit (named by the
event, whatever GITHUB_SHA says), no comment and no pull-request look-ups, the baseline is the
queue's base branch, and a payload missing those fields is one clear error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgate import actions_env, config
from mlgate.errors import MlgateError
from mlgate.github import context, publish
from tests.fakegithub import FakeGitHub
from tests.helpers import error_lines, github_with_pull, mlgate_in_process
from tests.test_github_publish import make_report

REPO = "octo/model"
PR_HEAD = "a" * 40
GROUP_HEAD = "e" * 40  # the queue's commit: the PR merged onto the base, with those ahead
GROUP_BASE = "f" * 40
RUNNER_SHA = "0" * 40  # what a runner such as act puts in GITHUB_SHA
TOKEN = "ghs_app_token"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with github_with_pull(REPO, PR_HEAD, TOKEN) as fake:
        yield fake


def merge_group_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub, group: dict[str, object]
) -> None:
    (tmp_path / "event.json").write_text(json.dumps({"action": "checks_requested", **group}))
    for key, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": gh.url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": RUNNER_SHA,
        "GITHUB_REF": "refs/heads/gh-readonly-queue/main/pr-7-" + GROUP_BASE,
        "GITHUB_EVENT_NAME": "merge_group",
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_WORKSPACE": str(tmp_path),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLGATE_SHA", raising=False)
    monkeypatch.delenv("MLGATE_PR", raising=False)


GROUP = {
    "merge_group": {
        "head_sha": GROUP_HEAD,
        "head_ref": "refs/heads/gh-readonly-queue/main/pr-7-" + GROUP_BASE,
        "base_sha": GROUP_BASE,
        "base_ref": "refs/heads/main",
    }
}


def test_checks_land_on_the_group_head_with_no_comment_and_no_pull_lookups(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    merge_group_env(monkeypatch, tmp_path, gh, GROUP)
    report = make_report(tmp_path)  # evidence and verdict made inside the merge_group run
    assert report.verdict.commit == GROUP_HEAD
    done = publish.publish(report, context.from_env(TOKEN), config.ReportConfig(), write_delay=0)
    assert done.comment == "skipped" and done.checks == ["mlgate/tests", "mlgate"]
    runs = gh.check_runs(REPO)
    assert {run["head_sha"] for run in runs} == {GROUP_HEAD}
    assert {run["conclusion"] for run in runs} == {"failure"}
    assert gh.comments(REPO, 7) == []
    asked = [path for _, path, _ in gh.requests]
    assert not [p for p in asked if "/pulls" in p or "/issues" in p], asked


def test_the_baseline_branch_is_the_queues_base() -> None:
    with pytest.MonkeyPatch.context() as patched:
        patched.setenv("GITHUB_EVENT_NAME", "merge_group")
        assert actions_env.base_branch(GROUP) == "main"
        assert actions_env.base_branch({"merge_group": {"head_sha": GROUP_HEAD}}) is None


# Payloads of a merge_group run that name no commit of the group.
without_head_commit = pytest.mark.parametrize(
    "group",
    [
        {},
        {"merge_group": None},
        {"merge_group": {"base_sha": GROUP_BASE}},
        {"merge_group": {"head_sha": "main"}},
    ],
    ids=["no-group", "null-group", "no-head-sha", "not-a-commit"],
)


@without_head_commit
def test_a_group_without_its_head_commit_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub, group: dict[str, object]
) -> None:
    merge_group_env(monkeypatch, tmp_path, gh, group)
    with monkeypatch.context() as judged_elsewhere:  # a verdict `mlgate gate` now refuses
        judged_elsewhere.delenv("GITHUB_ACTIONS")
        make_report(tmp_path)
    with pytest.raises(MlgateError, match=r"no merge_group\.head_sha"):
        context.from_env(TOKEN)
    (tmp_path / "mlgate.yml").write_text("stages:\n  tests: {}\n")
    result = mlgate_in_process(
        "report",
        *("--config", str(tmp_path / "mlgate.yml"), "--evidence-dir", str(tmp_path / "ev")),
        *("--verdict", str(tmp_path / "verdict.json"), "--output-dir", str(tmp_path / "out")),
        "--github-token",
        TOKEN,
    )
    assert result.exit_code == 2, result.output
    errors = error_lines(result)
    assert len(errors) == 1 and "no merge_group.head_sha" in errors[0], result.stderr
    assert gh.check_runs(REPO) == [] and gh.comments(REPO, 7) == []


@without_head_commit
def test_a_group_without_its_head_commit_is_not_judged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub, group: dict[str, object]
) -> None:
    """Without the group's commit the gate cannot tell the evidence is about it: evidence left
    from another commit must not pass (the commit check was skipped: verdict pass, exit 0)."""
    with monkeypatch.context() as other_run:
        other_run.setenv("MLGATE_SHA", "9" * 40)  # evidence about another commit
        make_report(tmp_path, failed=0)
    merge_group_env(monkeypatch, tmp_path, gh, group)
    (tmp_path / "mlgate.yml").write_text("stages:\n  tests: {}\n")
    result = mlgate_in_process(
        "gate",
        *("--config", str(tmp_path / "mlgate.yml"), "--evidence-dir", str(tmp_path / "ev")),
        *("--output", str(tmp_path / "judged.json")),
    )
    assert result.exit_code == 2, result.stderr
    errors = error_lines(result)
    assert len(errors) == 1 and "no merge_group.head_sha" in errors[0], result.stderr
    assert not (tmp_path / "judged.json").exists()


@without_head_commit
def test_a_commit_named_by_mlgate_sha_is_judged_and_reported_without_the_groups(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub, group: dict[str, object]
) -> None:
    """MLGATE_SHA names the commit (a job judging another run's evidence): the gate judges
    against it as the report publishes on it, whatever the payload lacks."""
    named = "9" * 40
    with monkeypatch.context() as other_run:
        other_run.setenv("MLGATE_SHA", named)
        make_report(tmp_path, failed=0)
    merge_group_env(monkeypatch, tmp_path, gh, group)
    (tmp_path / "mlgate.yml").write_text("stages:\n  tests: {}\n")
    judge = (
        "gate",
        *("--config", str(tmp_path / "mlgate.yml"), "--evidence-dir", str(tmp_path / "ev")),
        *("--output", str(tmp_path / "judged.json")),
    )
    monkeypatch.setenv("MLGATE_SHA", named)
    result = mlgate_in_process(*judge)
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "judged.json").read_text())["commit"] == named
    assert context.from_env(TOKEN).sha == named
    monkeypatch.setenv("MLGATE_SHA", "8" * 40)  # the evidence is not about this one
    result = mlgate_in_process(*judge)
    assert result.exit_code == 1, result.stderr
    assert "evidence was made for commit 999999999999, not 888888888888" in result.stderr


def test_every_workflow_gating_pull_requests_also_runs_in_the_merge_queue() -> None:
    import yaml

    root = Path(__file__).resolve().parents[1]
    gating = [
        path
        for path in [*root.glob(".github/workflows/*.yml"), *root.glob("workflows/*.yml")]
        if "pull_request" in (yaml.safe_load(path.read_text())[True] or {})
    ]
    assert gating, "no workflow runs on pull_request"
    missing = [p.name for p in gating if "merge_group" not in yaml.safe_load(p.read_text())[True]]
    assert missing == []
