"""The trusted job uploads to code scanning only SARIF files the scan evidence lists, inside the
evidence directory, regular, size-capped and digest-checked: evidence is written by jobs that run
the pull request's code, and a name in it must not read the runner's secrets (against the fake
GitHub, which validates every request against GitHub's OpenAPI description)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mlgate import config, policy
from mlgate import evidence as ev
from mlgate.evidence import Artifact, Evidence
from mlgate.github import publish
from mlgate.report import model, sarif
from tests.fakegithub import FakeGitHub
from tests.test_github_publish import REPO, actions_env, gh, publish_now, scan_report

__all__ = ["gh"]  # the fixture, shared with test_github_publish

SECRET = "ghs_the_runner_token_1234567890"


def bandit_evidence(tmp_path: Path) -> Evidence:
    """Scan evidence of a real bandit run over an insecure module (one SARIF file)."""
    scan_report(tmp_path)
    evidence = ev.read(tmp_path / "ev" / "scan.json")
    assert evidence.data["sarif"] == ["scan/bandit.sarif"]
    return evidence


def gated(tmp_path: Path, evidence: Evidence) -> model.Report:
    ev.write(evidence, tmp_path / "ev")
    cfg = config.parse({"stages": {"scan": {"sources": ["src"]}}})
    policy.write(policy.evaluate(cfg, tmp_path / "ev"), tmp_path / "verdict.json")
    return model.load(cfg, tmp_path / "verdict.json", tmp_path / "ev")


def listing(path: str, content: bytes) -> Artifact:
    """An artifact entry as a forger writes it: the true digest of what the path holds."""
    return Artifact(path=path, sha256=hashlib.sha256(content).hexdigest(), size=len(content))


def test_evidence_cannot_make_the_trusted_job_upload_files_outside_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    monkeypatch.setenv("GITHUB_REF", "refs/pull/7/merge")
    monkeypatch.setenv("MLGATE_TEST_RUNNER_SECRET", SECRET)
    evidence = bandit_evidence(tmp_path)
    scan_dir = tmp_path / "ev" / "scan"
    # A valid SARIF log outside the evidence directory, reached by '..' and by a symlink.
    outside = tmp_path / "outside.sarif"
    outside.write_text(json.dumps({"version": "2.1.0", "runs": [], "note": SECRET}))
    (scan_dir / "link.sarif").symlink_to(outside)
    os.mkfifo(scan_dir / "fifo.sarif")
    (scan_dir / "tampered.sarif").write_text("{}")
    environ = Path("/proc/self/environ").read_bytes()
    run = {"tool": {"driver": {"name": "x"}}, "results": []}
    many_runs = json.dumps({"version": "2.1.0", "runs": [run] * 21}).encode()
    forged = {
        # In this order the old code uploaded the first three and crashed on the fourth.
        "/proc/self/environ": (listing("/proc/self/environ", environ), "an absolute path"),
        "../outside.sarif": (listing("../outside.sarif", outside.read_bytes()), "climbs out"),
        "scan/link.sarif": (listing("scan/link.sarif", outside.read_bytes()), "leads outside"),
        "scan/missing.sarif": (listing("scan/missing.sarif", b""), "no such file"),
        "/dev/zero": (listing("/dev/zero", b""), "an absolute path"),
        "scan/fifo.sarif": (listing("scan/fifo.sarif", b""), "not a regular file"),
        "scan/tampered.sarif": (listing("scan/tampered.sarif", b"[]"), "does not match"),
        "scan/unlisted.sarif": (None, "not among the evidence's artifacts"),
        # Inside, listed, digest right, but not something GitHub takes: checked before sending.
        "scan/text.sarif": (listing("scan/text.sarif", b"GITHUB_TOKEN=x"), "not JSON"),
        "scan/runs.sarif": (listing("scan/runs.sarif", many_runs), "21 runs, over GitHub's 20"),
    }
    (scan_dir / "text.sarif").write_bytes(b"GITHUB_TOKEN=x")
    (scan_dir / "runs.sarif").write_bytes(many_runs)
    (scan_dir / "unlisted.sarif").write_bytes((scan_dir / "bandit.sarif").read_bytes())
    names = [*forged, "scan/bandit.sarif"]
    entries = [entry for entry, _ in forged.values() if entry is not None]
    report = gated(
        tmp_path,
        evidence.model_copy(
            update={
                "data": evidence.data | {"sarif": names},
                "artifacts": [*evidence.artifacts, *entries],
            }
        ),
    )

    done = publish_now(report)

    # Only the scan's own SARIF went up; every other name is a warning naming it and why.
    assert done.sarif == ["bandit.sarif"]
    (upload,) = gh.sarif_uploads(REPO)
    assert upload["sarif"]["runs"][0]["automationDetails"]["id"] == "mlgate/bandit/"
    posts = [r for r in gh.requests if r[0] == "POST" and r[1].endswith("/code-scanning/sarifs")]
    assert len(posts) == 1
    uploaded = json.dumps(gh.sarif_uploads(REPO))
    assert SECRET not in uploaded and "MLGATE_TEST_RUNNER_SECRET" not in uploaded
    assert len(done.warnings) == len(forged)
    for warning, (name, (_, why)) in zip(done.warnings, forged.items(), strict=True):
        assert warning.startswith(f"SARIF not uploaded to code scanning: {name}: ")
        assert why in warning
        assert SECRET not in warning
    # The checks and the verdict were published as ever.
    assert done.checks == ["mlgate/scan", "mlgate"]


def test_a_sarif_file_over_the_size_cap_is_a_notice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gh: FakeGitHub
) -> None:
    actions_env(monkeypatch, tmp_path, gh)
    monkeypatch.setenv("GITHUB_REF", "refs/pull/7/merge")
    evidence = bandit_evidence(tmp_path)
    size = (tmp_path / "ev" / "scan" / "bandit.sarif").stat().st_size
    monkeypatch.setattr(sarif, "MAX_BYTES", size - 1)
    done = publish_now(gated(tmp_path, evidence))
    assert done.sarif == [] and gh.sarif_uploads(REPO) == []
    (warning,) = done.warnings
    assert warning == (
        f"SARIF not uploaded to code scanning: scan/bandit.sarif: {size} bytes, "
        f"over the {size - 1} allowed"
    )
    assert isinstance(done, publish.Published) and done.checks == ["mlgate/scan", "mlgate"]
