"""Several gating jobs in one workflow (a matrix over models, same mlgate.yml, one commit): each
gives its own check name (the actions' `check-name` input, `mlgate report --check-name`), so
each gets its own aggregate check, stage checks and sticky comment, and re-runs update them
rather than duplicate them. Run through scripts/action-gate.sh, as the actions run it, against
the fake GitHub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakegithub import FakeGitHub
from tests.helpers import github_with_pull, junit_xml

ROOT = Path(__file__).resolve().parents[1]
REPO = "octo/model"
HEAD = "a" * 40
MERGE = "b" * 40
TOKEN = "ghs_app_token"
CONFIG = "version: 1\nstages:\n  tests:\n    junit: junit.xml\n"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with github_with_pull(REPO, HEAD, TOKEN) as fake:
        yield fake


def job_env(gh: FakeGitHub, work: Path, attempt: int, check_name: str | None) -> dict[str, str]:
    """What a job of workflow run 42 on pull request #7 gives the gate step."""
    event = work / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": HEAD}}}))
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT / "src"),  # this checkout's mlgate, not another install's
        "HOME": str(work),
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": gh.url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": MERGE,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": str(attempt),
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_STEP_SUMMARY": str(work / "summary.md"),
        "GITHUB_OUTPUT": str(work / "output.txt"),
        "MLGATE_WRITE_DELAY_SECONDS": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    if check_name is not None:
        env["MLGATE_CHECK_NAME"] = check_name
    return env


def gate_job(
    gh: FakeGitHub, work: Path, failed: int, attempt: int = 1, check_name: str | None = None
) -> subprocess.CompletedProcess[str]:
    """One matrix leg: its tests evidence, then the actions' gate-and-report script."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "mlgate.yml").write_text(CONFIG)
    junit_xml(work / "junit.xml", passed=3, failed=failed)
    env = job_env(gh, work, attempt, check_name)
    tests = subprocess.run(
        [sys.executable, "-m", "mlgate", "test"], cwd=work, env=env, capture_output=True, text=True
    )
    assert tests.returncode == 0, tests.stderr
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "action-gate.sh")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def conclusions(gh: FakeGitHub) -> dict[str, str]:
    """The latest conclusion of each check name."""
    return {run["name"]: run["conclusion"] for run in gh.check_runs(REPO)}


def sticky(gh: FakeGitHub) -> dict[str, dict[str, object]]:
    """The PR's comments by the check name their hidden marker carries."""
    found: dict[str, dict[str, object]] = {}
    for comment in gh.comments(REPO, 7):
        first = str(comment["body"]).splitlines()[0]
        assert first.startswith("<!-- mlgate:comment:") and first.endswith(" -->"), first
        key = first.removeprefix("<!-- mlgate:comment:").removesuffix(" -->")
        assert key not in found, f"two sticky comments for {key}"
        found[key] = comment
    return found


def test_two_gates_with_their_own_check_names_keep_apart(tmp_path: Path, gh: FakeGitHub) -> None:
    iris, wine = tmp_path / "iris", tmp_path / "wine"
    for leg, failed, name in ((iris, 1, "mlgate-iris"), (wine, 0, "mlgate-wine")):
        done = gate_job(gh, leg, failed, check_name=name)
        assert done.returncode == 0, done.stderr
    assert conclusions(gh) == {
        "mlgate-iris/tests": "failure",
        "mlgate-iris": "failure",
        "mlgate-wine/tests": "success",
        "mlgate-wine": "success",
    }
    comments = sticky(gh)
    assert set(comments) == {"mlgate-iris", "mlgate-wine"}
    assert "1 failed" in str(comments["mlgate-iris"]["body"])
    assert "1 failed" not in str(comments["mlgate-wine"]["body"])
    runs = len(gh.check_runs(REPO))

    # The same attempt re-run (a step retried): nothing new, nothing crossed over.
    for leg, failed, name in ((wine, 0, "mlgate-wine"), (iris, 1, "mlgate-iris")):
        assert gate_job(gh, leg, failed, check_name=name).returncode == 0
    assert len(gh.check_runs(REPO)) == runs
    again = sticky(gh)
    assert {k: c["id"] for k, c in again.items()} == {k: c["id"] for k, c in comments.items()}

    # A second attempt with iris fixed: each leg's comment is updated in place, iris now passes.
    for leg, name in ((iris, "mlgate-iris"), (wine, "mlgate-wine")):
        assert gate_job(gh, leg, 0, attempt=2, check_name=name).returncode == 0
    assert set(conclusions(gh).values()) == {"success"}
    fixed = sticky(gh)
    assert {k: c["id"] for k, c in fixed.items()} == {k: c["id"] for k, c in comments.items()}
    assert "1 failed" not in str(fixed["mlgate-iris"]["body"])
    assert fixed["mlgate-iris"]["body"] != comments["mlgate-iris"]["body"]


def test_without_a_check_name_the_config_names_the_check(tmp_path: Path, gh: FakeGitHub) -> None:
    (tmp_path / "job").mkdir()
    done = gate_job(gh, tmp_path / "job", 0)
    assert done.returncode == 0, done.stderr
    assert conclusions(gh) == {"mlgate/tests": "success", "mlgate": "success"}
    assert set(sticky(gh)) == {"mlgate"}


@pytest.mark.parametrize("name", ["my gate", "-leading-dash", "x" * 101, "a;b"])
def test_a_bad_check_name_is_one_line_and_exit_2(tmp_path: Path, gh: FakeGitHub, name: str) -> None:
    done = gate_job(gh, tmp_path / "job", 0, check_name=name)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("mlgate: error")]
    assert errors == [
        "mlgate: error: --check-name must be 1 to 100 letters, digits, '.', '_', '/' or '-', "
        f"starting with a letter or digit, not {name!r}"
    ]
    assert "Traceback" not in done.stderr
    assert gh.check_runs(REPO) == [] and gh.comments(REPO, 7) == []
