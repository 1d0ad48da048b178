"""GitHub Enterprise Server: the API under <server>/api/v3 (the fake GitHub serves it there),
links in checks, statuses and the comment pointing at GITHUB_SERVER_URL, never github.com."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgate import config
from mlgate.github import context, publish
from tests.fakegithub import FakeGitHub
from tests.helpers import github_with_pull
from tests.test_github_publish import make_report

REPO = "octo/model"
HEAD = "a" * 40
TOKEN = "ghs_app_token"
SERVER = "https://ghe.example"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with github_with_pull(REPO, HEAD, TOKEN) as fake:
        fake.set_token("ghp_personal", login="octo-dev", kind="pat")
        yield fake


@pytest.fixture
def enterprise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub) -> None:
    (tmp_path / "event.json").write_text(
        json.dumps({"pull_request": {"number": 7, "head": {"sha": HEAD}}})
    )
    for key, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": f"{gh.url}/api/v3",
        "GITHUB_SERVER_URL": SERVER,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": "b" * 40,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_WORKSPACE": str(tmp_path),
    }.items():
        monkeypatch.setenv(key, value)


def published_text(gh: FakeGitHub) -> str:
    return json.dumps([gh.check_runs(REPO), gh.comments(REPO, 7), gh.statuses(REPO, HEAD)])


@pytest.mark.usefixtures("enterprise")
def test_publishing_uses_the_enterprise_api_and_links_to_the_enterprise_server(
    tmp_path: Path, gh: FakeGitHub
) -> None:
    report = make_report(tmp_path)
    done = publish.publish(report, context.from_env(TOKEN), config.ReportConfig(), write_delay=0)
    assert done.checks == ["mlgate/tests", "mlgate"] and done.comment == "created"
    assert gh.api_prefixes == {"/api/v3"}  # every request went to the Enterprise API path
    run_link = f"{SERVER}/{REPO}/actions/runs/42"
    runs = gh.check_runs(REPO)
    assert {run["details_url"] for run in runs} == {run_link}
    assert f"]({run_link})" in gh.comments(REPO, 7)[0]["body"]
    assert "github.com" not in published_text(gh)


@pytest.mark.usefixtures("enterprise")
def test_status_fallback_links_to_the_enterprise_server(tmp_path: Path, gh: FakeGitHub) -> None:
    report = make_report(tmp_path)
    done = publish.publish(
        report, context.from_env("ghp_personal"), config.ReportConfig(), write_delay=0
    )
    assert done.checks == [] and done.statuses == ["mlgate/tests", "mlgate"]  # no App token
    assert gh.api_prefixes == {"/api/v3"}
    statuses = gh.statuses(REPO, HEAD)
    assert statuses and {s["target_url"] for s in statuses} == {f"{SERVER}/{REPO}/actions/runs/42"}
    assert "github.com" not in published_text(gh)


def test_without_an_api_url_the_enterprise_servers_api_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A runner that sets only GITHUB_SERVER_URL must not send its token to api.github.com."""
    monkeypatch.delenv("GITHUB_API_URL", raising=False)
    monkeypatch.setenv("GITHUB_SERVER_URL", SERVER + "/")
    assert context.api_url() == f"{SERVER}/api/v3"
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    assert context.api_url() == "https://api.github.com"
    monkeypatch.delenv("GITHUB_SERVER_URL")
    assert context.api_url() == "https://api.github.com"


def test_no_github_com_address_is_built_into_mlgate() -> None:
    """Links come from GITHUB_SERVER_URL and API calls from GITHUB_API_URL: the only
    github.com addresses in the package are the defaults when neither is set."""
    src = Path(__file__).resolve().parents[1] / "src" / "mlgate"
    found = {
        f"{path.relative_to(src)}:{number}"
        for path in src.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "github.com" in line and not line.lstrip().startswith("#")
    }
    allowed = {p for p in found if p.startswith("github/context.py:")}
    docstrings = {p for p in found if p.startswith("github/artifacts.py:")}  # says why not
    assert found - allowed - docstrings == set()
