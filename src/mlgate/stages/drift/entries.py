"""Drift evidence read back: its per-feature entries, checked (to judge or dispatch) or read
defensively (to show)."""

from __future__ import annotations

import math
from typing import Any

from mlgate.evidence import Evidence
from mlgate.stages.drift.errors import Invalid

_TABLE_ROWS = 50


def checked_entries(evidence: Evidence) -> list[dict[str, Any]]:
    """The per-feature entries, once the evidence agrees with itself."""
    if evidence.status != "passed":
        raise Invalid(f"drift: evidence status '{evidence.status}' is not one the stage writes")
    entries = safe_entries(evidence)
    raw = evidence.data.get("features")
    if not isinstance(raw, list) or len(raw) != len(entries) or not entries:
        raise Invalid("drift: evidence lacks a well-formed list of compared features")
    if evidence.metrics.get("drifted_features") != sum(1 for e in entries if e["drifted"]):
        raise Invalid("drift: evidence's drifted count does not match its features")
    return entries


def safe_entries(evidence: Evidence) -> list[dict[str, Any]]:
    """Entries with a name, finite numbers and a drifted flag; others left out."""
    raw = evidence.data.get("features")
    if not isinstance(raw, list):
        return []
    kept = []
    for e in raw:
        if (
            isinstance(e, dict)
            and isinstance(e.get("feature"), str)
            and _finite(e.get("psi"))
            and _finite(e.get("p_value"))
            and isinstance(e.get("drifted"), bool)
        ):
            kept.append(e)
    return kept


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def table_rows(evidence: Evidence) -> list[dict[str, Any]]:
    """Drifted features first, then by PSI; at most _TABLE_ROWS, every drifted one kept."""
    entries = sorted(safe_entries(evidence), key=lambda e: (not e["drifted"], -float(e["psi"])))
    drifted = sum(1 for e in entries if e["drifted"])
    return entries[: max(_TABLE_ROWS, drifted)]
