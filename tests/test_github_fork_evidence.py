"""Fork pull requests through workflow_run, against the fake GitHub serving crafted artifacts:
the run's evidence is taken (only mlgate's files), judged with the config of the pull request's
base branch (read through the API, not the checkout's), and published on the pull request whose
head is the run's commit; a hostile artifact or an unreadable base branch is refused with its
reason in a failing check; a pull request that moved on gets nothing."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from mlgate import evidence as ev
from mlgate.github import fork_evidence
from mlgate.stages.interface import RunContext
from mlgate.stages.tests import TestsStage
from mlgate.stages.tests_config import TestsConfig
from tests.fakegithub import FakeGitHub
from tests.helpers import (
    ZIP_ENCRYPTED,
    error_lines,
    junit_xml,
    mlgate_in_process,
    zip_flagged,
    zip_garbled,
)

REPO = "octo/model"
FORK = "forker/model"
HEAD = "a" * 40
BASE = "c" * 40
RELEASE = "e" * 40  # the head of release/1.x
TOKEN = "ghs_app_token"
STRICT = b"stages:\n  tests: {}\n"  # two failing tests fail it
LENIENT = b"stages:\n  tests: {}\npolicy:\n  tests:\n    max_failures: 2\n"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO)
        fake.add_branch(REPO, "main", sha=BASE, files={"mlgate.yml": STRICT})
        fake.add_pull(REPO, number=7, head_sha=HEAD, base_sha=BASE, head_owner="forker")
        fake.set_token(TOKEN)
        yield fake
        assert fake.violations == [], fake.violations
        assert fake.unimplemented == [], fake.unimplemented


def fork_evidence_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commit: str) -> Path:
    """What the fork's run wrote: failing tests evidence about `commit`."""
    made = tmp_path / "fork" / ".mlgate"
    junit_xml(made / "junit.xml", passed=3, failed=2, file="tests/test_model.py")
    with monkeypatch.context() as patched:
        patched.setenv("MLGATE_SHA", commit)
        evidence = TestsStage().run(
            TestsConfig(junit=[str(made / "junit.xml")], working_directory=str(made)),
            RunContext(made / "evidence", None),
        )
    ev.write(evidence, made / "evidence")
    return made


def archive(
    entries: dict[str, bytes], links: tuple[str, ...] = (), compression: int = zipfile.ZIP_STORED
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            bundle.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def report_archive(made: Path, **extra: bytes) -> dict[str, bytes]:
    """The gate action's upload of .mlgate: evidence plus what the fork's gate wrote."""
    return {
        "evidence/tests.json": (made / "evidence" / "tests.json").read_bytes(),
        "verdict.json": b'{"outcome": "pass"}',  # the fork's own verdict: never taken
        "waivers.yml": b"waivers: []\n",
        **extra,
    }


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub) -> Path:
    """The directory the workflow_run job runs in, and its environment; the config there is
    what a checkout of the default branch would hold."""
    checkout = tmp_path / "base"
    checkout.mkdir()
    (checkout / "mlgate.yml").write_bytes(STRICT)
    monkeypatch.chdir(checkout)
    for key, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": gh.url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": BASE,
        "GITHUB_EVENT_NAME": "workflow_run",
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_RUN_ID": "99",
        "GITHUB_TOKEN": TOKEN,
        "MLGATE_WRITE_DELAY_SECONDS": "0",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("MLGATE_SHA", "MLGATE_PR"):
        monkeypatch.delenv(key, raising=False)
    return checkout


def pr_run(gh: FakeGitHub, tmp_path: Path, artifact: bytes, head_sha: str = HEAD) -> int:
    """The fork's pull_request run, seeded with its artifact, and the workflow_run payload."""
    run_id = gh.add_workflow_run(
        REPO,
        workflow="mlgate.yml",
        branch="feature",
        event="pull_request",
        head_sha=head_sha,
        artifacts={"mlgate-report": artifact},
    )
    payload = {
        "action": "completed",
        "workflow_run": {
            "id": run_id,
            "head_sha": head_sha,
            "head_branch": "feature",
            "head_repository": {"full_name": FORK},
            "pull_requests": [],  # GitHub leaves it empty for forks
        },
    }
    (tmp_path / "event.json").write_text(json.dumps(payload))
    return run_id


def outputs(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "output"
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines)


def assert_refused(
    result: Result, gh: FakeGitHub, tmp_path: Path, base: Path, reason: str, title: str
) -> None:
    """Refused: exit 1, one error line with the reason, one failing aggregate check on the
    commit saying why, no comment, no outputs, and no evidence taken for judging."""
    assert result.exit_code == 1, result.stderr
    (line,) = error_lines(result)
    assert reason in line, line
    (check,) = gh.check_runs(REPO)
    assert (check["name"], check["head_sha"], check["conclusion"]) == ("mlgate", HEAD, "failure")
    assert check["output"]["title"] == title
    assert reason in check["output"]["summary"].replace("\\", "")  # markdown-escaped
    assert gh.comments(REPO, 7) == []
    assert outputs(tmp_path) == {}
    assert not (base / ".mlgate" / "evidence").exists()  # nothing taken, nothing judged


def test_fork_evidence_is_judged_by_the_base_config_and_published_on_the_pull_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, base: Path
) -> None:
    made = fork_evidence_dir(tmp_path, monkeypatch, HEAD)
    pr_run(gh, tmp_path, archive(report_archive(made)))
    taken = mlgate_in_process("fork-evidence")
    assert taken.exit_code == 0, taken.stderr
    assert outputs(tmp_path) == {
        "pr-number": "7",
        "head-sha": HEAD,
        "base-ref": "main",
        "base-sha": BASE,
        "config": ".mlgate/base/mlgate.yml",
    }
    assert (base / ".mlgate" / "base" / "mlgate.yml").read_bytes() == STRICT
    # Only mlgate's evidence was taken: not the fork's verdict, nor its waivers.
    assert sorted(p.name for p in (base / ".mlgate" / "evidence").iterdir()) == ["tests.json"]
    assert gh.check_runs(REPO) == []  # nothing published before the gate

    monkeypatch.setenv("MLGATE_SHA", HEAD)
    monkeypatch.setenv("MLGATE_PR", "7")
    gate = mlgate_in_process("gate", "--config", ".mlgate/base/mlgate.yml")
    assert gate.exit_code == 1, gate.stderr  # two failing tests, by the base's policy
    report = mlgate_in_process("report", "--config", ".mlgate/base/mlgate.yml")
    assert report.exit_code == 0, report.stderr
    runs = {run["name"]: run for run in gh.check_runs(REPO)}
    assert {run["head_sha"] for run in runs.values()} == {HEAD}
    title = runs["mlgate"]["output"]["title"]
    assert "judged on fork-made evidence (forker/model)" in title, title
    assert runs["mlgate"]["conclusion"] == "failure"
    assert len(gh.comments(REPO, 7)) == 1


def into_release(gh: FakeGitHub) -> None:
    """The fork's pull request #7, retargeted to release/1.x."""
    gh.add_pull(
        REPO, number=7, head_sha=HEAD, base_sha=RELEASE, head_owner="forker", base_ref="release/1.x"
    )


def test_a_pull_request_into_another_branch_is_judged_by_that_branchs_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, base: Path
) -> None:
    """The pull request targets release/1.x, whose mlgate.yml allows two failing tests; the
    default branch's (the job's own branch) allows none. The verdict follows release/1.x."""
    gh.add_branch(REPO, "release/1.x", sha=RELEASE, files={"mlgate.yml": LENIENT})
    into_release(gh)
    made = fork_evidence_dir(tmp_path, monkeypatch, HEAD)
    pr_run(gh, tmp_path, archive(report_archive(made)))
    taken = mlgate_in_process("fork-evidence")
    assert taken.exit_code == 0, taken.stderr
    assert "judged by the config of base branch release/1.x at eeeeeeeeeeee" in taken.stderr
    found = outputs(tmp_path)
    assert (found["base-ref"], found["base-sha"]) == ("release/1.x", RELEASE)
    assert Path(found["config"]).read_bytes() == LENIENT

    monkeypatch.setenv("MLGATE_SHA", HEAD)
    monkeypatch.setenv("MLGATE_PR", "7")
    gate = mlgate_in_process("gate", "--config", found["config"])
    assert gate.exit_code == 0, gate.stderr  # two failures allowed by release/1.x's policy
    assert mlgate_in_process("report", "--config", found["config"]).exit_code == 0
    runs = {run["name"]: run for run in gh.check_runs(REPO)}
    assert runs["mlgate"]["conclusion"] == "success" and runs["mlgate"]["head_sha"] == HEAD
    # Only the base repository's branches were read, never the fork's.
    reads = [path for _, path, _ in gh.requests if "/contents/" in path or "/git/ref/" in path]
    assert reads == [
        f"/repos/{REPO}/git/ref/heads/release/1.x",
        f"/repos/{REPO}/contents/mlgate.yml",
    ], reads


def test_the_waivers_are_the_base_branchs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, base: Path
) -> None:
    """release/1.x waives B602 in its own waiver file; main's (and the checkout's) waive
    nothing: the scan evidence the gate reads carries release/1.x's waiver."""
    config = b"stages:\n  tests: {}\n  scan:\n    sources: [src]\n    waivers: waivers.yml\n"
    waiver = (
        b"waivers:\n  - id: B602\n    scope: {path: 'src/*'}\n    owner: '@release'\n"
        b"    reason: reviewed\n    expires: 2099-01-01\n"
    )
    gh.add_branch(REPO, "main", sha=BASE, files={"mlgate.yml": config, "waivers.yml": b""})
    gh.add_branch(
        REPO, "release/1.x", sha=RELEASE, files={"mlgate.yml": config, "waivers.yml": waiver}
    )
    into_release(gh)
    made = fork_evidence_dir(tmp_path, monkeypatch, HEAD)
    now = ev.now()
    scan = ev.Evidence(stage="scan", status="passed", started_at=now, finished_at=now)
    ev.write(scan, made / "evidence")
    entries = report_archive(
        made, **{"evidence/scan.json": (made / "evidence" / "scan.json").read_bytes()}
    )
    pr_run(gh, tmp_path, archive(entries))
    result = mlgate_in_process("fork-evidence")
    assert result.exit_code == 0, result.stderr
    taken = ev.read(base / ".mlgate" / "evidence" / "scan.json")
    assert [w["owner"] for w in taken.data["waivers"]] == ["@release"]
    # The config is copied for the gate; the waivers live in the evidence, not in a copy.
    assert sorted(p.name for p in (base / ".mlgate" / "base").iterdir()) == ["mlgate.yml"]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("deleted", "the pull request's base branch 'release/1.x' cannot be read"),
        ("no-config", "the pull request's base branch 'release/1.x' has no mlgate.yml at"),
        ("bad-config", "mlgate.yml of the pull request's base branch 'release/1.x' (at eeee"),
        ("no-waiver-file", "has no waiver file waivers.yml (stages.scan.waivers)"),
        (
            "bad-waivers",
            "waivers.yml of the pull request's base branch 'release/1.x' (at eeeeeeeeeeee): "
            "waivers[0]",
        ),
        (
            "binary-waivers",
            "waivers.yml of the pull request's base branch 'release/1.x' (at eeeeeeeeeeee): "
            "not UTF-8 text",
        ),
    ],
)
def test_an_unreadable_base_branch_is_a_failing_check_with_the_reason(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gh: FakeGitHub,
    base: Path,
    case: str,
    reason: str,
) -> None:
    files = {
        "deleted": None,
        "no-config": {"README.md": b"x"},
        "bad-config": {"mlgate.yml": b"stages: [tests\n"},
        "no-waiver-file": {
            "mlgate.yml": b"stages:\n  scan:\n    sources: [src]\n    waivers: waivers.yml\n"
        },
        "bad-waivers": {
            "mlgate.yml": b"stages:\n  scan:\n    sources: [src]\n    waivers: waivers.yml\n",
            "waivers.yml": b"waivers:\n  - id: B602\n",
        },
        "binary-waivers": {
            "mlgate.yml": b"stages:\n  scan:\n    sources: [src]\n    waivers: waivers.yml\n",
            "waivers.yml": b"\xff\xfe waivers",
        },
    }[case]
    if files is not None:
        gh.add_branch(REPO, "release/1.x", sha=RELEASE, files=files)
    into_release(gh)
    made = fork_evidence_dir(tmp_path, monkeypatch, HEAD)
    pr_run(gh, tmp_path, archive(report_archive(made)))
    result = mlgate_in_process("fork-evidence")
    assert_refused(
        result, gh, tmp_path, base, reason, "mlgate: no config of base branch release/1.x"
    )


def test_a_config_path_outside_the_repository_is_bad_input(
    tmp_path: Path, gh: FakeGitHub, base: Path
) -> None:
    pr_run(gh, tmp_path, b"")
    result = mlgate_in_process("fork-evidence", "--project-dir", "..", "--config", "mlgate.yml")
    assert result.exit_code == 2, result.stderr
    (line,) = error_lines(result)
    assert "'../mlgate.yml' is not a path inside the repository" in line
    assert gh.requests == []


def hostile(made: Path) -> dict[str, tuple[bytes, str]]:
    evidence = report_archive(made)
    return {
        "path-traversal": (
            archive({**evidence, "evidence/../../../outside.json": b"{}"}),
            "unsafe name 'evidence/../../../outside.json': climbs out",
        ),
        "absolute": (archive({**evidence, "/tmp/owned.json": b"{}"}), "an absolute path"),
        "link": (
            archive(evidence, links=("evidence/samples.txt",)),
            "holds a link 'evidence/samples.txt'",
        ),
        "oversized": (
            archive({**evidence, "report.html": b"x" * 5000}),
            "'report.html' of 5000 bytes, more than the 4096 allowed",
        ),
        "not-mlgate": (archive({"results/output.json": b"{}"}), "holds no mlgate evidence"),
        "not-evidence": (
            archive({"evidence/tests.json": b'{"stage": "tests"}'}),
            "evidence/tests.json is not mlgate evidence",
        ),
        "not-a-zip": (b"PK but not really", "is not a readable zip archive"),
        # Archives zipfile itself chokes on: each must be a refusal, never an internal error.
        "encrypted": (
            zip_flagged(archive(evidence), ZIP_ENCRYPTED),
            "holds 'evidence/tests.json' encrypted: encrypted members are not taken",
        ),
        "corrupt-deflate": (
            zip_garbled(archive(evidence, compression=zipfile.ZIP_DEFLATED)),
            "is not a readable zip archive",
        ),
        "corrupt-bzip2": (
            zip_garbled(archive(evidence, compression=zipfile.ZIP_BZIP2)),
            "compressed with method 12: only stored or deflated",
        ),
        "name-not-utf8": (_name_not_utf8(archive(evidence)), "is not a readable zip archive"),
        "same-name-twice": (
            archive({**evidence, "evidence//tests.json": evidence["evidence/tests.json"]}),
            "holds 'evidence//tests.json' twice",
        ),
        "control-character": (
            archive(
                {**_listing(evidence, "x\n::error::owned"), "evidence/x\n::error::owned": b"x"}
            ),
            "::owned': a control character or line break",
        ),
        "file-below-evidence": (
            archive({**_listing(evidence, "tests.json/x"), "evidence/tests.json/x": b"x"}),
            "holds 'evidence/tests.json/x': it cannot be placed where another file",
        ),
    }


def _name_not_utf8(data: bytes) -> bytes:
    """The first member's name in the central directory made invalid UTF-8, flagged UTF-8."""
    broken = bytearray(data)
    at = broken.find(b"PK\x01\x02")
    broken[at + 9] |= 0x08  # bit 11 of the flags: the name is UTF-8
    broken[at + 46] = 0xFF
    return bytes(broken)


def _listing(entries: dict[str, bytes], path: str) -> dict[str, bytes]:
    """The entries with tests.json listing `path` among the files its stage wrote."""
    document = json.loads(entries["evidence/tests.json"])
    document["artifacts"].append(
        {"path": path, "sha256": "0" * 64, "size": 1, "description": "planted"}
    )
    return {**entries, "evidence/tests.json": json.dumps(document).encode()}


@pytest.mark.parametrize(
    "case",
    [
        "path-traversal",
        "absolute",
        "link",
        "oversized",
        "not-mlgate",
        "not-evidence",
        "not-a-zip",
        "encrypted",
        "corrupt-deflate",
        "corrupt-bzip2",
        "name-not-utf8",
        "same-name-twice",
        "control-character",
        "file-below-evidence",
    ],
)
def test_a_hostile_artifact_is_refused_with_its_reason_in_a_failing_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, base: Path, case: str
) -> None:
    monkeypatch.setattr(fork_evidence, "MAX_FILE_BYTES", 4096)
    made = fork_evidence_dir(tmp_path, monkeypatch, HEAD)
    data, reason = hostile(made)[case]
    pr_run(gh, tmp_path, data)
    result = mlgate_in_process("fork-evidence")
    assert_refused(
        result, gh, tmp_path, base, reason, "mlgate: refused fork-made evidence (forker/model)"
    )
    assert not (tmp_path / "outside.json").exists() and not Path("/tmp/owned.json").exists()


def test_evidence_about_another_commit_fails_the_gate_on_the_pull_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, base: Path
) -> None:
    made = fork_evidence_dir(tmp_path, monkeypatch, "9" * 40)  # not the run's commit
    pr_run(gh, tmp_path, archive(report_archive(made)))
    assert mlgate_in_process("fork-evidence").exit_code == 0
    monkeypatch.setenv("MLGATE_SHA", HEAD)
    monkeypatch.setenv("MLGATE_PR", "7")
    gate = mlgate_in_process("gate", "--config", ".mlgate/base/mlgate.yml")
    assert gate.exit_code == 1
    assert "evidence was made for commit 999999999999, not aaaaaaaaaaaa" in gate.stderr
    assert mlgate_in_process("report", "--config", ".mlgate/base/mlgate.yml").exit_code == 0
    runs = {run["name"]: run for run in gh.check_runs(REPO)}
    assert runs["mlgate"]["conclusion"] == "failure" and runs["mlgate"]["head_sha"] == HEAD
    shown = json.dumps([run["output"] for run in runs.values()]).replace("\\", "")
    assert "evidence was made for commit 999999999999, not aaaaaaaaaaaa" in shown


def test_a_pull_request_that_moved_on_gets_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, base: Path
) -> None:
    old = "b" * 40  # the run was for an older commit of the pull request
    made = fork_evidence_dir(tmp_path, monkeypatch, old)
    pr_run(gh, tmp_path, archive(report_archive(made)), head_sha=old)
    result = mlgate_in_process("fork-evidence")
    assert result.exit_code == 1
    (line,) = error_lines(result)
    assert "pull request #7 is now at aaaaaaaaaaaa" in line and "nothing published" in line
    assert gh.check_runs(REPO) == [] and gh.comments(REPO, 7) == []


def test_fork_evidence_is_not_published_on_a_commit_another_pull_request_reports_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, base: Path
) -> None:
    """Checks belong to the commit: a fork that pushes the head commit of the repository's own
    pull request #8 must not replace #8's verdict with one judged on evidence it made."""
    gh.add_pull(REPO, number=8, head_sha=HEAD, base_sha=BASE, head_ref="trusted")
    made = fork_evidence_dir(tmp_path, monkeypatch, HEAD)
    pr_run(gh, tmp_path, archive(report_archive(made)))
    result = mlgate_in_process("fork-evidence")
    assert result.exit_code == 1, result.stderr
    (line,) = error_lines(result)
    assert "commit aaaaaaaaaaaa is also the head of pull request #8" in line, line
    assert "nothing published" in line
    assert outputs(tmp_path) == {}
    assert gh.check_runs(REPO) == [] and gh.comments(REPO, 7) == []
    assert gh.comments(REPO, 8) == []


def test_a_run_of_the_repository_itself_still_reports_beside_a_fork_at_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, base: Path
) -> None:
    """The shared-commit refusal is for fork-made evidence only: a fork that opens a pull
    request at a commit of the repository's own pull request #8 cannot silence #8's run."""
    gh.add_pull(REPO, number=8, head_sha=HEAD, base_sha=BASE, head_ref="trusted")
    made = fork_evidence_dir(tmp_path, monkeypatch, HEAD)
    pr_run(gh, tmp_path, archive(report_archive(made)))
    event = json.loads((tmp_path / "event.json").read_text())
    event["workflow_run"].update(head_branch="trusted", head_repository={"full_name": REPO})
    (tmp_path / "event.json").write_text(json.dumps(event))
    result = mlgate_in_process("fork-evidence")
    assert result.exit_code == 0, result.stderr
    assert outputs(tmp_path)["pr-number"] == "8"
    assert outputs(tmp_path)["head-sha"] == HEAD


def test_a_verdict_about_another_commit_is_not_published_on_the_pull_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, base: Path
) -> None:
    """MLGATE_PR names a pull request whose head is not the verdict's commit: `mlgate report`
    must not put that verdict's comment on it (it would replace the PR's own verdict)."""
    other = "b" * 40
    made = fork_evidence_dir(tmp_path, monkeypatch, other)
    pr_run(gh, tmp_path, b"", head_sha=other)  # only its payload is read
    monkeypatch.setenv("MLGATE_SHA", other)
    monkeypatch.setenv("MLGATE_PR", "7")
    gate = mlgate_in_process("gate", "--evidence-dir", str(made / "evidence"))
    assert gate.exit_code == 1
    report = mlgate_in_process("report", "--evidence-dir", str(made / "evidence"))
    assert report.exit_code == 4, report.stderr
    (line,) = error_lines(report)
    assert "pull request #7 is at aaaaaaaaaaaa, the verdict is about bbbbbbbbbbbb" in line
    assert gh.comments(REPO, 7) == [] and gh.check_runs(REPO) == []


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"workflow_run": {"id": 5, "head_branch": "feature"}},
        {"workflow_run": {"id": "5", "head_sha": HEAD, "head_branch": "f"}},
        {
            "workflow_run": {
                "id": 5,
                "head_sha": "main",
                "head_branch": "f",
                "head_repository": {"full_name": FORK},
            }
        },
    ],
    ids=["no-run", "no-head-sha", "bad-id", "sha-not-a-commit"],
)
def test_a_workflow_run_payload_missing_its_fields_is_one_clear_error(
    tmp_path: Path, gh: FakeGitHub, base: Path, payload: dict[str, object]
) -> None:
    (tmp_path / "event.json").write_text(json.dumps(payload))
    result = mlgate_in_process("fork-evidence")
    assert result.exit_code == 2, result.stderr
    (line,) = error_lines(result)
    assert "workflow_run" in line
    assert gh.check_runs(REPO) == [] and gh.requests == []


def test_the_fork_decides_no_waiver(tmp_path: Path) -> None:
    """Waivers the fork's evidence carries are replaced by the base branch's (none here), its
    scan baseline is dropped, and no other stage keeps a waiver mark, in what the evidence
    directory receives (the fork's decisions are never there)."""
    made = tmp_path / "made"
    waiver = {"id": "B602", "rule": "x", "owner": "@fork", "reason": "trust me", "expires": "2099"}
    now = ev.now()
    for stage in ("scan", "tests"):
        document = ev.Evidence(
            stage=stage,
            status="passed",
            started_at=now,
            finished_at=now,
            findings=[
                ev.Finding(id="B602", rule="B602", severity="high", message="m", waived_by=waiver)
            ],
            data={"waivers": [waiver], "baseline": {"fingerprints": ["f"]}}
            if stage == "scan"
            else {},
        )
        ev.write(document, made)
    entries = {
        f"evidence/{stage}.json": (made / f"{stage}.json").read_bytes()
        for stage in ("scan", "tests")
    }
    evidence_dir = tmp_path / "evidence"
    taken = fork_evidence.take(
        io.BytesIO(archive(entries)), evidence_dir, "evidence", "artifact", []
    )
    assert sorted(taken) == ["scan.json", "tests.json"]
    scan = ev.read(evidence_dir / "scan.json")
    assert scan.data == {"waivers": [], "baseline_dropped": "the baseline came from a fork's run"}
    tests = ev.read(evidence_dir / "tests.json")
    assert [f.waived_by for f in tests.findings] == [None]


def test_the_shipped_workflow_run_job_runs_no_pull_request_code() -> None:
    """The starter reacts to fork runs only; the reusable job checks nothing out (the base
    branch's files come through the API) and runs only mlgate's action."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    starter = yaml.safe_load((root / "workflows" / "mlgate-fork-report.yml").read_text())
    assert set(starter[True]) == {"workflow_run"}
    (job,) = starter["jobs"].values()
    assert "head_repository.full_name != github.repository" in job["if"]
    assert job["uses"].startswith("mlgate-dev/mlgate/.github/workflows/mlgate-fork-report.yml@")
    reusable = yaml.safe_load(
        (root / ".github" / "workflows" / "mlgate-fork-report.yml").read_text()
    )
    (job,) = reusable["jobs"].values()
    python, report = job["steps"]
    assert python["uses"].startswith("actions/setup-python@")
    assert report["uses"] == "$/actions/fork-report"
    assert "secrets" not in yaml.safe_dump(reusable)


def test_an_archive_declaring_too_many_entries_is_refused_before_its_directory_is_read(
    tmp_path: Path,
) -> None:
    """Millions of empty entries fit in the download cap; zipfile would parse them all (seconds,
    gigabytes) before the member limit applied, so the declared count decides first. Here the
    end record declares 60,000 entries over a directory that holds one: refused by the count."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("evidence/tests.json", b"{}")
    data = bytearray(buffer.getvalue())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (60_000).to_bytes(2, "little") * 2  # this disk's and the total
    with pytest.raises(fork_evidence.EvidenceRefused, match="holds more than 1000 files"):
        fork_evidence.take(
            io.BytesIO(bytes(data)), tmp_path / "evidence", "evidence", "artifact", []
        )
