"""The fork report workflow `mlgate init` writes, run as written under act (host mode, offline)
against the fake GitHub: a fork's pull request run's artifact is judged with the config of the
pull request's base branch, read through the API, and the verdict lands on the pull request -
no workflow written by hand."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fakegithub import FakeGitHub
from tests.helpers import github_with_pull
from tests.helpers import mlgate_in_process as mlgate
from tests.test_e2e_act import (
    E2E,
    HEAD,
    REPO,
    TOKEN,
    assert_passing_fork_verdict_on_the_pull_request,
    fork_run,
    run_act,
    zipped,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]


def pinned(workflow: Path) -> list[str]:
    """act's --local-repository for each action the workflow pins: mlgate's own from this
    checkout, actions/setup-python from its offline stand-in (act checks the repository out
    itself for actions/checkout)."""
    steps = yaml.safe_load(workflow.read_text())["jobs"]["report"]["steps"]
    extra: list[str] = []
    for step in steps:
        action = step["uses"].split()[0]
        repository, ref = action.split("@")
        owner_name = "/".join(repository.split("/")[:2])
        if action.startswith("actions/setup-python@"):
            extra += ["--local-repository", f"{action}={E2E / 'stand-ins' / 'setup-python'}"]
        elif repository.endswith("/actions/fork-report"):
            extra += ["--local-repository", f"{owner_name}@{ref}={ROOT}"]
    return extra


@pytest.fixture
def initialised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, bytes]:
    """A bare project after `mlgate init`, committed with origin octo/model, and the report
    artifact its gate job would upload from a fork's pull request run (about the PR's head)."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_math.py").write_text("def test_add():\n    assert 1 + 1 == 2\n")
    assert mlgate("init", str(repo)).exit_code == 0
    with monkeypatch.context() as scoped:
        scoped.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        scoped.setenv("MLGATE_SHA", HEAD)
        scoped.chdir(repo)
        assert mlgate("run").exit_code == 0
    artifact = zipped(repo / ".mlgate")
    shutil.rmtree(repo / ".mlgate")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(
        ["git", "remote", "add", "origin", f"https://github.com/{REPO}.git"], cwd=repo, check=True
    )
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "init"], cwd=repo, check=True)
    return repo, artifact


def act_the_fork_report(
    repo: Path, gh: FakeGitHub, payload: dict[str, object], tmp_path: Path
) -> str:
    workflow = repo / ".github" / "workflows" / "mlgate-fork-report.yml"
    result = run_act(
        repo, gh, "workflow_run", tmp_path / "run", *pinned(workflow), event_payload=payload
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


def test_inits_fork_workflow_reports_a_fork_pull_request_under_act(
    initialised: tuple[Path, bytes], tmp_path: Path
) -> None:
    repo, artifact = initialised
    with github_with_pull(REPO, HEAD, TOKEN) as gh:
        config = (repo / "mlgate.yml").read_bytes()
        gh.add_branch(REPO, "main", sha="c" * 40, files={"mlgate.yml": config})
        gh.add_pull(REPO, number=7, head_sha=HEAD, base_sha="c" * 40, head_owner="forker")
        log = act_the_fork_report(repo, gh, fork_run(gh, artifact), tmp_path)
        assert "took tests.json made in forker/model" in log, log[-4000:]
        assert "judged by the config of base branch main at cccccccccccc" in log
        assert_passing_fork_verdict_on_the_pull_request(gh, log)


def test_inits_fork_workflow_skips_a_run_from_the_repository_itself(
    initialised: tuple[Path, bytes], tmp_path: Path
) -> None:
    """A pull request from the repository's own branch was reported by the gate workflow."""
    repo, artifact = initialised
    with github_with_pull(REPO, HEAD, TOKEN) as gh:
        payload = fork_run(gh, artifact)
        payload["workflow_run"]["head_repository"] = {"full_name": REPO}  # type: ignore[index]
        log = act_the_fork_report(repo, gh, payload, tmp_path)
        assert "fork-evidence" not in log, log[-3000:]
        assert gh.check_runs(REPO) == [] and gh.comments(REPO, 7) == []
