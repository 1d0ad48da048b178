"""Waivers and the scan policy: one policy over every scanner's findings, waivers that expire.

The findings here are built by hand, as the scanners' tests check what the tools really report;
these tests are about what the gate makes of findings. The clock is MLGATE_TODAY.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from mlgate import evidence as ev
from mlgate import waivers
from mlgate.errors import ConfigError
from mlgate.evidence import Finding
from mlgate.report import sarif
from mlgate.stages.scan import rules as scan_rules
from mlgate.stages.scan.config import ScanPolicy
from mlgate.stages.scan.stage import ScanStage

STAGE = ScanStage()


def vuln(
    advisory: str = "PYSEC-2019-217",
    severity: str = "unknown",
    package: str = "jinja2",
    fixed: tuple[str, ...] = ("2.10.1",),
    aliases: tuple[str, ...] = ("CVE-2019-10906", "GHSA-462w-v97r-4m45"),
    image: str | None = None,
) -> Finding:
    return Finding(
        id=advisory,
        severity=severity,  # type: ignore[arg-type]
        message=f"{package} 2.10 has {advisory}",
        rule="vulnerable-dependency",
        tool="pip-audit",
        source="image-python" if image else "dependencies",
        aliases=list(aliases),
        package=package,
        version="2.10",
        fixed_versions=list(fixed),
        image=image,
        fingerprint=f"{advisory}-{package}-{image}",
        path="requirements.txt",
    )


def code(rule: str = "B301", severity: str = "medium", path: str = "src/app.py") -> Finding:
    return Finding(
        id=rule,
        severity=severity,  # type: ignore[arg-type]
        message="pickle and modules that wrap it can be unsafe",
        rule=rule,
        tool="bandit",
        source="code",
        path=path,
        line=12,
        fingerprint=f"{rule}-{path}",
    )


def evidence_of(
    findings: list[Finding], waiver_list: tuple[dict[str, object], ...] = ()
) -> ev.Evidence:
    now = ev.now()
    return ev.Evidence(
        stage="scan",
        status="passed",
        started_at=now,
        finished_at=now,
        findings=findings,
        data={"waivers": list(waiver_list), "scanners": ["pip-audit", "bandit"]},
    )


def waiver(**fields: object) -> dict[str, object]:
    return {
        "id": "CVE-2019-10906",
        "scope": {"package": "Jinja2"},
        "reason": "we render no untrusted templates",
        "owner": "@ml-platform",
        "expires": "2026-12-31",
    } | fields


def rules(policy: ScanPolicy, evidence: ev.Evidence) -> dict[str, tuple[str, str]]:
    return {r.rule: (r.outcome, r.reason) for r in STAGE.evaluate(policy, evidence)}


@pytest.fixture(autouse=True)
def _today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(waivers.TODAY_VARIABLE, "2026-11-25")


def test_unscored_advisory_counts_as_the_policy_says() -> None:
    evidence = evidence_of([vuln()])
    outcome, reason = rules(ScanPolicy(), evidence)["scan.findings"]
    assert outcome == "fail" and "1 finding at or above" in reason and "dependencies high" in reason
    lenient = ScanPolicy(unknown_severity="low")
    assert rules(lenient, evidence)["scan.findings"][0] == "pass"


def test_thresholds_are_per_source() -> None:
    evidence = evidence_of([code(severity="medium"), vuln(severity="medium", image="model:1")])
    assert rules(ScanPolicy(), evidence)["scan.findings"][0] == "pass"
    strict = ScanPolicy.model_validate({"fail_on": {"code": "medium"}})
    outcome, reason = rules(strict, evidence)["scan.findings"]
    assert outcome == "fail" and "code medium" in reason
    never = ScanPolicy.model_validate({"fail_on": {"dependencies": "never"}})
    assert rules(never, evidence_of([vuln(severity="critical")]))["scan.findings"][0] == "pass"


def test_only_fixable_ignores_vulnerabilities_without_a_fix_but_not_code() -> None:
    evidence = evidence_of([vuln(severity="high", fixed=()), code(severity="high")])
    outcome, reason = rules(ScanPolicy(only_fixable=True), evidence)["scan.findings"]
    assert outcome == "fail" and "code high" in reason and "dependencies" not in reason
    evidence = evidence_of([vuln(severity="high", fixed=())])
    assert rules(ScanPolicy(only_fixable=True), evidence)["scan.findings"][0] == "pass"


def test_new_only_fails_on_what_the_baseline_did_not_have() -> None:
    old, new = vuln(severity="high"), code(severity="high")
    evidence = evidence_of([old, new])
    evidence.data["baseline"] = {"source": "base.json", "fingerprints": [old.fingerprint]}
    outcome, reason = rules(ScanPolicy(new_only=True), evidence)["scan.findings"]
    assert outcome == "fail" and "1 new finding" in reason and "code high" in reason
    # Without a baseline, new_only cannot tell: fail closed.
    outcome, reason = rules(ScanPolicy(new_only=True), evidence_of([old]))["scan.findings"]
    assert outcome == "fail" and "needs a baseline" in reason


def test_new_only_counts_every_finding_when_an_untrusted_baseline_was_dropped() -> None:
    """A fork's run or a bundle at promotion: the baseline is taken out as untrusted, so new_only
    judges every finding (stricter, never looser) and the reason says why, instead of failing
    for want of a baseline."""
    old, info = vuln(severity="high"), code(severity="info")
    evidence = evidence_of([old])
    evidence.data["baseline"] = {"source": "base.json", "fingerprints": [old.fingerprint]}
    assert rules(ScanPolicy(new_only=True), evidence)["scan.findings"][0] == "pass"
    data = scan_rules.without_baseline(evidence.data, "from a fork's run")
    evidence = evidence.model_copy(update={"data": data})
    assert "baseline" not in evidence.data
    outcome, reason = rules(ScanPolicy(new_only=True), evidence)["scan.findings"]
    assert outcome == "fail" and "1 finding at or above" in reason
    assert "every finding counts, not only new ones: from a fork's run" in reason
    quiet = evidence_of([info])
    quiet.data[scan_rules.BASELINE_DROPPED] = "from a fork's run"
    outcome, reason = rules(ScanPolicy(new_only=True), quiet)["scan.findings"]
    assert outcome == "pass" and "needs a baseline" not in reason


def test_a_waiver_matches_an_alias_within_its_scope_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evidence = evidence_of([vuln(severity="high")], (waiver(),))
    result = rules(ScanPolicy(), evidence)
    assert result["scan.findings"] == (
        "pass",
        "scan: 1 findings, none at or above the policy's severity; 1 waived",
    )
    assert result["scan.waivers"][0] == "pass"
    # The last day still waives; the day after, the waiver stops waiving and fails the gate.
    monkeypatch.setenv(waivers.TODAY_VARIABLE, "2026-12-31")
    assert rules(ScanPolicy(), evidence)["scan.findings"][0] == "pass"
    monkeypatch.setenv(waivers.TODAY_VARIABLE, "2027-01-01")
    result = rules(ScanPolicy(), evidence)
    assert result["scan.findings"][0] == "fail"
    outcome, reason = result["scan.waivers"]
    assert outcome == "fail"
    assert "waiver CVE-2019-10906 (owner @ml-platform) expired on 2026-12-31" in reason


def test_a_waiver_outside_its_scope_waives_nothing_and_is_reported_unused() -> None:
    other_package = evidence_of([vuln(severity="high")], (waiver(scope={"package": "flask"}),))
    result = rules(ScanPolicy(), other_package)
    assert result["scan.findings"][0] == "fail"
    assert result["scan.waivers"][0] == "pass" and "matched nothing" in result["scan.waivers"][1]
    in_image = vuln(severity="high", image="registry.local/model:1.2")
    scoped = evidence_of([in_image], (waiver(scope={"package": "jinja2", "image": "*/model:*"}),))
    assert rules(ScanPolicy(), scoped)["scan.findings"][0] == "pass"
    by_path = evidence_of([code(severity="high")], (waiver(id="B301", scope={"path": "src/*.py"}),))
    assert rules(ScanPolicy(), by_path)["scan.findings"][0] == "pass"
    elsewhere = evidence_of(
        [code(severity="high")], (waiver(id="B301", scope={"path": "tests/**"}),)
    )
    assert rules(ScanPolicy(), elsewhere)["scan.findings"][0] == "fail"


def test_a_critical_finding_needs_the_explicit_flag() -> None:
    critical = vuln(severity="critical")
    result = rules(ScanPolicy(), evidence_of([critical], (waiver(),)))
    assert result["scan.findings"][0] == "fail"
    assert "needs allow_critical: true" in result["scan.waivers"][1]
    allowed = evidence_of([critical], (waiver(allow_critical=True),))
    assert rules(ScanPolicy(), allowed)["scan.findings"][0] == "pass"


def test_waived_findings_stay_visible() -> None:
    applied = waivers.apply(
        [waivers.Waiver.model_validate(waiver())], [vuln(severity="high")], date(2026, 11, 25)
    )
    (finding,) = applied.findings
    assert finding.waived_by == {
        "id": "CVE-2019-10906",
        "owner": "@ml-platform",
        "reason": "we render no untrusted templates",
        "expires": "2026-12-31",
    }
    evidence = evidence_of(applied.findings)
    assert "(waived)" in STAGE.report_markdown(evidence)
    assert "1 waived" in STAGE.summary(evidence)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "waivers:\n  - id: X\n    scope: {package: a}\n    reason: r\n    owner: o\n",
            "waivers[0] (id X).expires: Field required",
        ),
        (
            "waivers:\n  - id: X\n    scope: {package: a}\n    reason: r\n    owner: o\n"
            "    expires: 2026-02-30\n",
            "day is out of range for month",
        ),
        (
            "waivers:\n  - id: X\n    scope: {package: a}\n    reason: r\n    owner: o\n"
            "    expires: someday\n",
            "waivers[0] (id X).expires",
        ),
        (
            "waivers:\n  - id: X\n    scope: {}\n    reason: r\n    owner: o\n    expires: 2027-01-01\n",
            "scope needs package, path or image",
        ),
        (
            "waivers:\n  - id: X\n    scope: {package: a}\n    owner: o\n    expires: 2027-01-01\n",
            "waivers[0] (id X).reason: Field required",
        ),
        ("waivers: [\n", "invalid YAML"),
    ],
)
def test_bad_waivers_files_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "waivers.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        waivers.load(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith(str(path))


def test_missing_waivers_file_and_bad_clock_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="no such waivers file"):
        waivers.load(tmp_path / "nope.yml")
    monkeypatch.setenv(waivers.TODAY_VARIABLE, "tomorrow")
    with pytest.raises(ConfigError, match="MLGATE_TODAY='tomorrow' is not a date"):
        waivers.today()


def test_sarif_points_every_result_into_the_repository(tmp_path: Path) -> None:
    findings = [
        code(severity="high"),
        vuln(severity="critical", image="model:1"),
        vuln(advisory="PYSEC-2020-1", severity="low"),
    ]
    applied = waivers.apply(
        [waivers.Waiver.model_validate(waiver(id="PYSEC-2020-1"))],
        findings,
        date(2026, 11, 25),
    )
    log, left_out = sarif.document(
        applied.findings,
        tool="mix",
        version="1.0",
        category="mlgate/mix",
        fallback_path="Dockerfile",
    )
    assert left_out == 0
    (run,) = log["runs"]
    assert run["automationDetails"]["id"] == "mlgate/mix/"
    results = run["results"]
    assert [r["level"] for r in results] == ["error", "error", "note"]  # worst first
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results]
    # A package inside an image is not a repository file: it points at the Dockerfile.
    assert uris == ["Dockerfile", "src/app.py", "requirements.txt"]
    assert "in image model:1" in results[0]["message"]["text"]
    assert results[2]["suppressions"][0]["status"] == "accepted"
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert rule_ids == {"PYSEC-2019-217", "B301", "PYSEC-2020-1"}
    path = tmp_path / "mix.sarif"
    sarif.write(log, path)
    assert json.loads(path.read_text())["version"] == "2.1.0"
