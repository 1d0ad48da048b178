"""The quality stage's comparison as reports show it: per metric the candidate's difference from
the champion, its interval against the tolerated drop, and the policy's decision, with an
interval chart; an inconclusive metric says roughly how many rows would decide it.

Evidence is read defensively (odd evidence renders as far as it can; the gate judges it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlgate.evidence import Evidence
from mlgate.report import charts
from mlgate.report.comparison import Comparison
from mlgate.stages.quality import rules
from mlgate.stages.quality.config import HIGHER_IS_BETTER

if TYPE_CHECKING:
    from mlgate.stages.quality.config import QualityPolicy

_WORDS = {
    "pass": "within the tolerance",
    "fail": "worse beyond the tolerance",
    "inconclusive": "cannot tell",
}


def comparisons(evidence: Evidence, policy: QualityPolicy) -> list[Comparison]:
    data = evidence.data
    if evidence.status != "passed" or not isinstance(data.get("champion"), dict):
        return []
    rows_measured = evidence.metrics.get("rows")
    rows = rows_measured if type(rows_measured) is int else 0
    table: list[tuple[str, ...]] = []
    outcomes: list[str] = []
    intervals: list[charts.Interval] = []
    undecided: list[str] = []
    for entry in _entries(data.get("metrics")):
        metric = entry.get("metric")
        if metric not in HIGHER_IS_BETTER or not _numbers(entry):
            continue
        higher = HIGHER_IS_BETTER[metric]
        setting = policy.tolerance(metric, float(entry["champion"]))
        result = (
            rules.judge_drop(policy, entry, metric, higher, rows, _confidence(data))
            if setting
            else None
        )
        outcome = result.outcome if result is not None else ""
        difference, (low, high) = float(entry["difference"]), entry["ci"]
        better, better_low, better_high = (
            (difference, low, high) if higher else (-difference, -high, -low)
        )
        table.append(
            (
                f"{metric} {'↑' if higher else '↓'}",
                f"{difference:+.4f}",
                f"{low:+.4f} to {high:+.4f}",
                f"{setting[1]}" if setting else "none",
                _WORDS.get(outcome, "not judged"),
            )
        )
        outcomes.append(outcome)
        bounds = (-setting[0],) if setting else ()
        # Lower-is-better metrics are drawn negated ("-log_loss"), so right is always better.
        label = metric if higher else f"-{metric}"
        intervals.append(charts.Interval(label, better, better_low, better_high, bounds, outcome))
        if result is not None and result.guidance:
            undecided.append(f"{metric}: {result.guidance}")
    if not table:
        return []
    counts = [f"{outcomes.count(o)} {_WORDS[o]}" for o in _WORDS if outcomes.count(o)]
    caption = (
        f"candidate {_model(data.get('candidate'))} against champion "
        f"{_model(data.get('champion'))} on {rows:,} rows, paired bootstrap, "
        f"{_level(data)} intervals, decided on one-sided {_level(data)} bounds: "
        f"{', '.join(counts) or 'no metric judged'}"
    )
    if undecided:
        caption += "; " + "; ".join(undecided)
    return [
        Comparison(
            title="Quality: candidate vs champion",
            caption=caption,
            headers=(
                "metric",
                "difference",
                f"{_level(data)} CI",
                "tolerated drop",
                "decision",
            ),
            rows=table,
            outcomes=outcomes,
            intervals=intervals,
            axis="candidate - champion (right: candidate better; red: tolerated drop)",
        )
    ]


def _entries(value: object) -> list[dict[str, Any]]:
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _numbers(entry: dict[str, Any]) -> bool:
    """The entry has a champion, a difference and an interval that are finite numbers."""
    ci = entry.get("ci")
    values = [entry.get("champion"), entry.get("difference")]
    values += ci if isinstance(ci, list) and len(ci) == 2 else [None]
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _model(described: object) -> str:
    if not isinstance(described, dict):
        return "?"
    return str(described.get("resolved") or described.get("uri") or "?")


def _level(data: dict[str, Any]) -> str:
    confidence = data.get("confidence")
    return f"{confidence:.0%}" if isinstance(confidence, float) else "?"


def _confidence(data: dict[str, Any]) -> float:
    """The evidence's confidence level; an odd one reads as the default (reports only: the
    gate refuses such evidence)."""
    confidence = data.get("confidence")
    return confidence if isinstance(confidence, float) and 0 < confidence < 1 else 0.95
