from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgate import config, policy
from mlgate import evidence as ev
from mlgate.errors import EvidenceError
from tests.helpers import stage_evidence

ENABLED = config.parse({"stages": {"tests": {}}})


def evidence(status: ev.Status = "passed", **counts: int) -> ev.Evidence:
    if status in ("error", "skipped"):
        return stage_evidence(status=status, reason="pytest crashed")
    return stage_evidence(**counts)


def test_pass(tmp_path: Path) -> None:
    ev.write(evidence(), tmp_path)
    verdict = policy.evaluate(ENABLED, tmp_path)
    assert verdict.outcome == "pass"
    assert {r.outcome for r in verdict.rules} == {"pass"}
    assert verdict.evidence[0].sha256 == ev.sha256_file(tmp_path / "tests.json")


def test_failing_rule_fails(tmp_path: Path) -> None:
    ev.write(evidence(failed=3, passed=1), tmp_path)
    verdict = policy.evaluate(ENABLED, tmp_path)
    assert verdict.outcome == "fail"
    assert "tests: 3 failed, 0 allowed" in [r.reason for r in verdict.rules]


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda d: None, "no evidence at"),
        (lambda d: ev.write(evidence("error"), d), "stage errored: pytest crashed"),
        (lambda d: ev.write(evidence("skipped"), d), "configured stage was skipped"),
        (lambda d: (d / "tests.json").write_text("{not json"), "not valid JSON"),
        (
            lambda d: (d / "tests.json").write_text(json.dumps({"stage": "tests"})),
            "does not match the evidence schema",
        ),
        (lambda d: (d / "tests.json").write_bytes(b"\xff\xfe\x00garbage"), "not valid JSON"),
    ],
    ids=["missing", "error", "skipped", "unreadable", "schema-invalid", "binary"],
)
def test_fails_closed(tmp_path: Path, setup, reason: str) -> None:  # type: ignore[no-untyped-def]
    tmp_path.mkdir(exist_ok=True)
    setup(tmp_path)
    verdict = policy.evaluate(ENABLED, tmp_path)
    assert verdict.outcome == "fail"
    assert any(reason in r.reason for r in verdict.rules), verdict.rules


def test_nothing_configured_fails(tmp_path: Path) -> None:
    assert policy.evaluate(config.parse({}), tmp_path).outcome == "fail"


def test_evidence_for_another_commit_fails_in_actions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    ev.write(evidence(), tmp_path)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_SHA", "b" * 40)
    verdict = policy.evaluate(ENABLED, tmp_path)
    assert verdict.outcome == "fail"
    assert any("made for commit aaaaaaaaaaaa" in r.reason for r in verdict.rules)
    monkeypatch.delenv("GITHUB_SHA")
    ev.write(evidence(), tmp_path)
    monkeypatch.setenv("GITHUB_SHA", "b" * 40)
    verdict = policy.evaluate(ENABLED, tmp_path)
    assert any("made for no recorded commit" in r.reason for r in verdict.rules)


def test_verdict_round_trip(tmp_path: Path) -> None:
    ev.write(evidence(), tmp_path)
    verdict = policy.evaluate(ENABLED, tmp_path)
    policy.write(verdict, tmp_path / "out" / "verdict.json")
    assert policy.read(tmp_path / "out" / "verdict.json") == verdict
    with pytest.raises(EvidenceError, match="no verdict found"):
        policy.read(tmp_path / "none.json")


def test_shipped_evidence_schema_matches_the_model() -> None:
    assert ev.schema() == ev.generated_schema()


def test_evidence_write_is_atomic_and_keeps_old_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ev.write(evidence(), tmp_path)
    before = first.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(OSError):
        ev.write(evidence(failed=1), tmp_path)
    assert first.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tests.json"]


def test_roll_up_and_exit_codes() -> None:
    from mlgate.github.checks import conclusion
    from mlgate.verdict import EXIT_CODES, worst

    assert worst([]) == "pass"
    assert worst(["pass", "inconclusive", "pass"]) == "inconclusive"
    assert worst(["inconclusive", "fail", "pass"]) == "fail"
    assert EXIT_CODES == {"pass": 0, "fail": 1, "inconclusive": 3}
    # Inconclusive blocks a merge without claiming a failure, where GitHub allows it.
    assert conclusion("inconclusive", "https://github.example/run") == "action_required"
    assert conclusion("inconclusive", None) == "failure"
    assert conclusion("pass", None) == "success"
