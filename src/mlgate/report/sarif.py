"""SARIF 2.1.0 for GitHub code scanning: one file, one run, one category per scanner.

GitHub takes at most 25,000 results per run (and since 2025 one run per category and upload),
and every result needs a location in the repository: a finding without a path (a dependency, a
package in an image) points at the file that brought it in (the requirements file, the
Dockerfile), given as `fallback_path`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlgate.evidence import Finding

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
MAX_RESULTS = 25_000
MAX_RUNS = 20  # per uploaded file
MAX_GZIPPED_BYTES = 10 * 1024 * 1024
# What the trusted job reads of a SARIF file before gzipping it: far more than 25,000 results
# take, and a bound on memory against a huge file named by (untrusted) evidence.
MAX_BYTES = 128 * 1024 * 1024
_LEVELS = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "note",
    "unknown": "warning",
}
# GitHub orders alerts by this (a CVSS-like score as text).
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0"}
_ORDER = ("critical", "high", "medium", "unknown", "low", "info")


def document(
    findings: Sequence[Finding],
    *,
    tool: str,
    version: str | None,
    category: str,
    fallback_path: str | None,
) -> tuple[dict[str, Any], int]:
    """The SARIF log, and how many findings had to be left out (over the limit, or nowhere
    in the repository to point at)."""
    placed = [f for f in findings if _path(f, fallback_path)]
    ordered = sorted(placed, key=lambda f: _ORDER.index(f.severity))[:MAX_RESULTS]
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for finding in ordered:
        rule_id = finding.id
        if rule_id not in rules:
            rules[rule_id] = _rule(finding)
        results.append(_result(finding, rule_id, fallback_path))
    driver: dict[str, Any] = {
        "name": tool,
        "rules": list(rules.values()),
    }
    if version:
        driver["version"] = version
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "automationDetails": {"id": f"{category}/"},
                "results": results,
            }
        ],
    }
    return log, len(findings) - len(ordered)


def write(log: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(log, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def _path(finding: Finding, fallback: str | None) -> str | None:
    # A path inside an image is not a file of the repository.
    if finding.path and finding.image is None:
        return finding.path
    return fallback


def _rule(finding: Finding) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": finding.id,
        "name": finding.rule,
        "shortDescription": {"text": (finding.title or finding.id)[:1000]},
        "properties": {"tags": ["security", f"mlgate/{finding.source or 'other'}"]},
    }
    if finding.severity in _SECURITY_SEVERITY:
        rule["properties"]["security-severity"] = _SECURITY_SEVERITY[finding.severity]
    if finding.aliases:
        rule["properties"]["aliases"] = list(finding.aliases)
    return rule


def _result(finding: Finding, rule_id: str, fallback: str | None) -> dict[str, Any]:
    path = _path(finding, fallback)
    region = {"startLine": finding.line} if finding.line and path == finding.path else None
    physical: dict[str, Any] = {"artifactLocation": {"uri": path}}
    if region:
        physical["region"] = region
    text = finding.message
    if finding.image:
        where = f" (in image {finding.image}" + (f", {finding.path}" if finding.path else "") + ")"
        text += where
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "level": _LEVELS[finding.severity],
        "message": {"text": text[:20_000]},
        "locations": [{"physicalLocation": physical}],
    }
    if finding.fingerprint:
        result["partialFingerprints"] = {"mlgate/v1": finding.fingerprint}
    if finding.waived_by:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f"{finding.waived_by.get('reason', '')} "
                f"(owner {finding.waived_by.get('owner', '?')}, "
                f"expires {finding.waived_by.get('expires', '?')})",
            }
        ]
    return result
