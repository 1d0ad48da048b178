"""Baseline evidence fetched from the base branch's latest successful run, against the fake
GitHub (every request checked against GitHub's OpenAPI description)."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgate.errors import MlgateError
from mlgate.github import artifacts
from mlgate.github.artifacts import BaselineError, fetch_baseline
from mlgate.github.context import GitHubContext
from mlgate.samples import read_samples
from tests.fakegithub import FakeGitHub, openapi
from tests.helpers import ZIP_ENCRYPTED, github_with_pull, zip_flagged, zip_garbled

REPO = "octo/model"
TOKEN = "ghs_app_token"
MEMBER = "evidence/load-samples.txt"
SAMPLES = "".join(f"{10 + n % 7}.5\n" for n in range(200))


def archive(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, content in files.items():
            bundle.writestr(name, content)
    return buffer.getvalue()


def report(marker: str) -> bytes:
    return archive({MEMBER: SAMPLES, "evidence/marker.txt": marker})


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    # github_with_pull asserts, on exit, no violations and no unimplemented operation.
    with github_with_pull(REPO, "a" * 40, TOKEN) as fake:
        yield fake


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    return waited


def fetch(gh: FakeGitHub, tmp_path: Path, **overrides: str) -> Path:
    context = GitHubContext(
        token=TOKEN,
        api_url=gh.url,
        repository=REPO,
        sha="a" * 40,
        pr_number=7,
        run_url=None,
        run_key="1.1",
    )
    arguments = {
        "workflow": "mlgate.yml",
        "branch": "main",
        "artifact_name": "mlgate-report",
        "member": MEMBER,
        **overrides,
    }
    return fetch_baseline(context, destination=tmp_path / "baseline", **arguments)


def test_latest_successful_run_on_the_branch_is_chosen(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": report("old")})
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": report("latest")})
    gh.add_workflow_run(REPO, conclusion="failure", artifacts={"mlgate-report": report("failed")})
    gh.add_workflow_run(REPO, conclusion=None, artifacts={"mlgate-report": report("running")})
    gh.add_workflow_run(REPO, branch="feature", artifacts={"mlgate-report": report("feature")})
    gh.add_workflow_run(REPO, workflow="other.yml", artifacts={"mlgate-report": report("other")})
    # A fork's pull request from its own `main` is a run on `main` too: never a baseline.
    gh.add_workflow_run(REPO, event="pull_request", artifacts={"mlgate-report": report("fork")})

    found = fetch(gh, tmp_path)

    assert found == tmp_path / "baseline" / MEMBER
    assert (found.parent / "marker.txt").read_text() == "latest"
    assert len(read_samples(found).values) == 200
    # The token stays with the API: the storage URL is signed and on another host.
    assert [sent_token for _, sent_token in gh.blob_downloads] == [False]


def test_pages_of_runs_are_walked_past_pull_request_runs(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": report("push")})
    for _ in range(35):  # more than PyGithub's first page of 30
        gh.add_workflow_run(REPO, event="pull_request")
    found = fetch(gh, tmp_path)
    assert (found.parent / "marker.txt").read_text() == "push"


def test_workflow_id_works_like_its_file_name(gh: FakeGitHub, tmp_path: Path) -> None:
    import requests

    gh.add_workflow_run(REPO, artifacts={"mlgate-report": report("x")})
    runs = requests.get(
        f"{gh.url}/repos/{REPO}/actions/workflows/mlgate.yml/runs",
        headers={"Authorization": f"token {TOKEN}"},
        timeout=10,
    ).json()
    workflow_id = runs["workflow_runs"][0]["workflow_id"]
    assert fetch(gh, tmp_path, workflow=str(workflow_id)).is_file()


def test_destination_is_replaced(gh: FakeGitHub, tmp_path: Path) -> None:
    stale = tmp_path / "baseline" / "stale.txt"
    stale.parent.mkdir()
    stale.write_text("from an earlier fetch")
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": report("x")})
    fetch(gh, tmp_path)
    assert not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".baseline-")]


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ({}, "no successful run of mlgate.yml on main in octo/model"),
        ({"conclusion": "failure"}, "no successful run"),
        ({"branch": "release"}, "no successful run"),
        ({"artifacts": {"other": b"zip"}}, "has no artifact named 'mlgate-report'"),
        ({"expired": ("mlgate-report",)}, "'mlgate-report' of run http"),
        ({"artifacts": {"mlgate-report": b"not a zip"}}, "is not a readable zip archive"),
        ({"artifacts": {"mlgate-report": archive({"x.txt": "x"})}}, f"holds no file '{MEMBER}'"),
        ({"artifacts": {"mlgate-report": archive({"../evil": "x"})}}, "unsafe path '../evil'"),
        ({"artifacts": {"mlgate-report": archive({"/etc/evil": "x"})}}, "unsafe path"),
        ({"artifacts": {"mlgate-report": archive({"a\\..\\..\\evil": "x"})}}, "unsafe path"),
    ],
)
def test_failures_are_one_line_errors(
    gh: FakeGitHub, tmp_path: Path, seed: dict[str, object], message: str
) -> None:
    if seed:
        arguments: dict[str, object] = {"artifacts": {"mlgate-report": report("x")}, **seed}
        gh.add_workflow_run(REPO, **arguments)  # type: ignore[arg-type]
    else:
        gh.add_workflow_run(REPO, workflow="mlgate.yml", conclusion="cancelled")
    with pytest.raises(BaselineError, match=re.escape(message)) as failed:
        fetch(gh, tmp_path)
    assert "\n" not in str(failed.value)
    assert isinstance(failed.value, MlgateError)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "baseline").exists()


def test_expired_artifact_is_refused_before_download(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": report("x")}, expired=("mlgate-report",))
    with pytest.raises(BaselineError, match="has expired"):
        fetch(gh, tmp_path)
    assert not [r for r in gh.requests if r.path.endswith("/zip")]


def test_unknown_workflow_is_rejected(gh: FakeGitHub, tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match=r"listing runs of nope.yml .*404"):
        fetch(gh, tmp_path, workflow="nope.yml")


def test_download_refused_by_github(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": report("x")})
    gh.inject("GET", "/repos/*/actions/artifacts/*/zip", 403, times=None)
    with pytest.raises(BaselineError, match=r"downloading artifact 'mlgate-report'.*403"):
        fetch(gh, tmp_path)


def test_member_must_be_a_relative_path(gh: FakeGitHub, tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="not a relative path"):
        fetch(gh, tmp_path, member="../load.json")
    assert gh.requests == []


def test_zip_bomb_is_stopped(
    gh: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts, "MAX_EXTRACTED_BYTES", 10_000)
    bomb = archive({MEMBER: b"0" * 100_000})
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": bomb})
    with pytest.raises(BaselineError, match="expands beyond 10000 bytes"):
        fetch(gh, tmp_path)


def test_zip_bomb_lying_about_its_size_is_stopped(
    gh: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts, "MAX_EXTRACTED_BYTES", 10_000)
    bomb = bytearray(archive({MEMBER: b"0" * 100_000}))
    # Claim 10 bytes in both the local header and the central directory.
    for header, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = bomb.index(header) + offset
        bomb[at : at + 4] = (10).to_bytes(4, "little")
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": bytes(bomb)})
    # zipfile stops each member at its claimed size, then finds the checksum wrong.
    with pytest.raises(BaselineError, match="is not a readable zip archive: Bad CRC-32"):
        fetch(gh, tmp_path)
    assert not (tmp_path / "baseline").exists()


@pytest.mark.parametrize(
    ("damaged", "message"),
    [
        (zip_garbled(archive({MEMBER: SAMPLES})), "is not a readable zip archive: "),
        (
            zip_flagged(archive({MEMBER: SAMPLES}), ZIP_ENCRYPTED),
            "is not a readable zip archive: .* is encrypted",
        ),
        # A file, then a folder of the same name.
        (archive({"evidence": "a file", MEMBER: SAMPLES}), "cannot be extracted: "),
    ],
    ids=["garbled-deflate", "encrypted", "file-then-folder"],
)
def test_an_archive_zipfile_cannot_extract_is_one_clear_error(
    gh: FakeGitHub, tmp_path: Path, damaged: bytes, message: str
) -> None:
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": damaged})
    with pytest.raises(BaselineError, match=message) as failed:
        fetch(gh, tmp_path)
    assert "\n" not in str(failed.value)
    assert not (tmp_path / "baseline").exists()


def test_retries_502_during_listing_and_download(
    gh: FakeGitHub, tmp_path: Path, sleeps: list[float]
) -> None:
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": report("x")})
    gh.inject("GET", "/repos/*/actions/workflows/*/runs", 502, times=2)
    gh.inject("GET", "/repos/*/actions/runs/*/artifacts", 502, times=1)
    gh.inject("GET", "/repos/*/actions/artifacts/*/zip", 503, times=1)
    assert fetch(gh, tmp_path).is_file()
    assert len(sleeps) == 4


def test_persistent_5xx_gives_up_with_one_line(
    gh: FakeGitHub, tmp_path: Path, sleeps: list[float]
) -> None:
    gh.inject("*", "*", 503, times=None)
    with pytest.raises(BaselineError, match="gave up after 5 attempts") as failed:
        fetch(gh, tmp_path)
    assert "\n" not in str(failed.value)


def test_fake_artifact_responses_match_the_documented_schemas(gh: FakeGitHub) -> None:
    import requests

    seeded = report("x")
    run = gh.add_workflow_run(REPO, artifacts={"mlgate-report": seeded})
    spec = openapi.load()
    headers = {"Authorization": f"token {TOKEN}"}
    base = f"{gh.url}/repos/{REPO}/actions"

    def get(path: str) -> requests.Response:
        return requests.get(base + path, headers=headers, timeout=10, allow_redirects=False)

    runs = get("/workflows/mlgate.yml/runs?branch=main&status=success")
    listed = get(f"/runs/{run}/artifacts")
    artifact_id = listed.json()["artifacts"][0]["id"]
    single = get(f"/artifacts/{artifact_id}")
    for template, response in (
        ("/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs", runs),
        ("/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts", listed),
        ("/repos/{owner}/{repo}/actions/artifacts/{artifact_id}", single),
    ):
        assert response.status_code == 200, response.text
        assert spec.operation("GET", template).response_error(200, response.json()) is None
        assert not re.search(r"octocat|Hello-World|api\.github\.com", response.text)
    download = get(f"/artifacts/{artifact_id}/zip")
    assert download.status_code == 302
    blob = requests.get(download.headers["Location"], timeout=10)
    assert blob.content == seeded


def test_an_archive_declaring_too_many_entries_is_refused_before_its_directory_is_read(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    """The end record declares 60,000 entries over a directory of one: refused by the count
    (zipfile would otherwise parse every declared entry first)."""
    data = bytearray(report("x"))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (60_000).to_bytes(2, "little") * 2  # this disk's and the total
    gh.add_workflow_run(REPO, artifacts={"mlgate-report": bytes(data)})
    with pytest.raises(BaselineError, match="holds more than 10000 files"):
        fetch(gh, tmp_path)
    assert not (tmp_path / "baseline").exists()
