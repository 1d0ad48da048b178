"""The scan policy's rules: which findings block (severity per source, fixable, new), and whether
the waivers are in order."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from mlgate import waivers as waiver_rules
from mlgate.evidence import SEVERITIES, Finding, Severity
from mlgate.stages.scan.config import ScanPolicy
from mlgate.verdict import RuleResult

# Advisory-type findings, to which only_fixable applies (a code smell has no fixed version).
VULNERABILITY_SOURCES = ("dependencies", "image-os", "image-python")
# Why a baseline the judge does not trust was taken out of scan evidence (a fork's run, a
# bundle at promotion): under new_only every finding then counts, and the reason says why.
BASELINE_DROPPED = "baseline_dropped"


def without_baseline(data: dict[str, Any], why: str) -> dict[str, Any]:
    """Scan evidence data with its baseline taken out, recording `why` for the reason."""
    kept = {key: value for key, value in data.items() if key not in ("baseline", BASELINE_DROPPED)}
    return kept | {BASELINE_DROPPED: why}


def findings_rule(policy: ScanPolicy, findings: list[Finding], data: dict[str, Any]) -> RuleResult:
    """Blocking findings fail; under new_only only those the baseline did not have. Without a
    baseline new_only cannot tell and fails, unless one was dropped as untrusted: then every
    finding counts (stricter, never looser)."""
    baseline = data.get("baseline")
    dropped = data.get(BASELINE_DROPPED)
    if policy.new_only and not isinstance(baseline, dict) and not isinstance(dropped, str):
        return RuleResult(
            stage="scan",
            rule="scan.findings",
            outcome="fail",
            reason="scan: new_only needs a baseline (stages.scan.baseline); none was read",
        )
    known = set(baseline.get("fingerprints", [])) if isinstance(baseline, dict) else set()
    blocking = [f for f in findings if blocks(policy, f, known)]
    waived = sum(1 for f in findings if f.waived_by)
    counts = Counter(f"{f.source or 'other'} {effective(policy, f)}" for f in blocking)
    listed = ", ".join(f"{n} {what}" for what, n in counts.most_common())
    extra = f"; {waived} waived" if waived else ""
    scope = " new" if policy.new_only and isinstance(baseline, dict) else ""
    if policy.new_only and not scope and isinstance(dropped, str):
        extra += f"; every finding counts, not only new ones: {dropped}"
    if blocking:
        reason = (
            f"scan: {len(blocking)}{scope} finding{'s' if len(blocking) != 1 else ''} at or "
            f"above the policy's severity ({listed}){extra}"
        )
    else:
        reason = (
            f"scan: {len(findings)} findings, none{scope} at or above the policy's severity{extra}"
        )
    return RuleResult(
        stage="scan",
        rule="scan.findings",
        outcome="fail" if blocking else "pass",
        reason=reason,
    )


def effective(policy: ScanPolicy, finding: Finding) -> Severity:
    return policy.unknown_severity if finding.severity == "unknown" else finding.severity


def blocks(policy: ScanPolicy, finding: Finding, baseline: set[str]) -> bool:
    if finding.waived_by:
        return False
    threshold = policy.fail_on.threshold(finding.source)
    if threshold == "never":
        return False
    severity = effective(policy, finding)
    if SEVERITIES.index(severity) > SEVERITIES.index(threshold):
        return False
    if (
        policy.only_fixable
        and finding.source in VULNERABILITY_SOURCES
        and not finding.fixed_versions
    ):
        return False
    return not (policy.new_only and finding.fingerprint in baseline)


def waivers_rule(applied: waiver_rules.Applied, today: date) -> RuleResult:
    problems = [f"waiver {w.label()} expired on {w.expires.isoformat()}" for w in applied.expired]
    notes = [
        f"waiver {w.label()} would hide critical {f.id}: it needs allow_critical: true"
        for w, f in applied.refused
    ]
    notes += [f"waiver {w.label()} matched nothing" for w in applied.unused]
    if problems:
        reason = "scan: " + "; ".join(problems + notes)
    elif notes:
        reason = "scan: waivers in order as of " + today.isoformat() + "; " + "; ".join(notes)
    else:
        reason = f"scan: waivers in order as of {today.isoformat()}"
    return RuleResult(
        stage="scan",
        rule="scan.waivers",
        outcome="fail" if problems else "pass",
        reason=reason,
    )
