"""CVSS v3 base scores and the severity an OSV record carries (worst score, else its name)."""

from __future__ import annotations

import math
from typing import Any

from mlgate.evidence import Severity

_SEVERITY_NAMES: dict[str, Severity] = {
    "CRITICAL": "critical",
    "HIGH": "high",
    "MODERATE": "medium",  # GitHub's word for medium
    "MEDIUM": "medium",
    "LOW": "low",
}


_CVSS3_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
# Privileges required weigh more when the scope changes.
_CVSS3_PRIVILEGES = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}


def cvss3_base_score(vector: str) -> float | None:
    """The CVSS v3.0/v3.1 base score of `vector` (e.g. "CVSS:3.1/AV:N/AC:L/..."), or None when it
    is not a complete v3 vector. Formula from the CVSS v3.1 specification, section 7.1."""
    parts = vector.strip().split("/")
    if not parts or parts[0] not in ("CVSS:3.0", "CVSS:3.1"):
        return None
    metrics = dict(part.split(":", 1) for part in parts[1:] if ":" in part)
    try:
        scope = metrics["S"]
        privileges = _CVSS3_PRIVILEGES[scope][metrics["PR"]]
        weight = {key: table[metrics[key]] for key, table in _CVSS3_WEIGHTS.items()}
    except KeyError:
        return None
    impact_subscore = 1 - (1 - weight["C"]) * (1 - weight["I"]) * (1 - weight["A"])
    if scope == "U":
        impact = 6.42 * impact_subscore
    else:
        impact = 7.52 * (impact_subscore - 0.029) - 3.25 * (impact_subscore - 0.02) ** 15
    exploitability = 8.22 * weight["AV"] * weight["AC"] * privileges * weight["UI"]
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))


def _roundup(value: float) -> float:
    """CVSS v3.1 Roundup: the smallest one-decimal number >= value, immune to float noise."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000.0
    return (math.floor(scaled / 10_000) + 1) / 10.0


def severity_from_score(score: float) -> Severity:
    """CVSS qualitative rating; a 0.0 ("none") still is a published advisory, so it counts low."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


def record_severity(record: dict[str, Any]) -> Severity:
    """From the worst CVSS v3 vector in `severity[]`, else a `database_specific.severity` name,
    else unknown (most PyPA records carry no score; the stage policy decides what that counts)."""
    scores = []
    for entry in _dicts(record.get("severity")):
        # CVSS v4 scoring needs the specification's macro-vector tables; a v4-only record falls
        # through to database_specific (GitHub sets it) or unknown.
        if entry.get("type") == "CVSS_V3" and isinstance(entry.get("score"), str):
            score = cvss3_base_score(entry["score"])
            if score is not None:
                scores.append(score)
    if scores:
        return severity_from_score(max(scores))
    specific = record.get("database_specific")
    if isinstance(specific, dict) and isinstance(specific.get("severity"), str):
        return _SEVERITY_NAMES.get(specific["severity"].upper(), "unknown")
    return "unknown"


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
