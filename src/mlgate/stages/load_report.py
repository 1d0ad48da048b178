"""The load stage's comparison as reports show it: the candidate's latency against the champion
served side by side (or a baseline file), per metric the change, its interval and the policy's
decision, a bar chart of both sides' percentiles and what would decide an inconclusive one.

Evidence is read defensively (odd evidence renders as far as it can; the gate judges it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlgate import sample_size
from mlgate.decision import Decision, decide
from mlgate.evidence import Evidence
from mlgate.report import charts
from mlgate.report.comparison import Comparison
from mlgate.verdict import Outcome

if TYPE_CHECKING:
    from mlgate.stages.load import LoadPolicy

CHARTED = ("p50", "p90", "p95", "p99")
_ORDER: dict[Decision, int] = {"regression": 0, "inconclusive": 1, "improvement": 2, "no change": 3}
_OUTCOMES: dict[Decision, Outcome] = {
    "regression": "fail",
    "inconclusive": "inconclusive",
    "improvement": "pass",
    "no change": "pass",
}


@dataclass(frozen=True)
class MetricDecision:
    decision: Decision
    metric: str
    change: float  # relative: +0.12 is 12% slower
    low: float
    high: float


def decisions(comparison: dict[str, Any], tolerance: float, fdr: float) -> list[MetricDecision]:
    """The policy's decision on each compared metric (the interval, p-value and tolerance)."""
    found = []
    for entry in comparison.get("metrics", []):
        ci = entry.get("ci") or [None, None]
        low = ci[0] if isinstance(ci[0], (int, float)) else float("-inf")
        high = ci[1] if isinstance(ci[1], (int, float)) else float("inf")
        decision = decide((low, high), float(entry.get("p_value", 1.0)), tolerance, fdr)
        change = float(entry.get("relative_change", 0))
        found.append(MetricDecision(decision, str(entry.get("metric", "?")), change, low, high))
    return found


def deciding(found: list[MetricDecision]) -> MetricDecision:
    """The decision that decides the rule: the worst one."""
    return min(found, key=lambda d: _ORDER[d.decision])


def outcome(decision: Decision) -> Outcome:
    return _OUTCOMES[decision]


def is_champion(comparison: dict[str, Any]) -> bool:
    """Whether the baseline is a champion served beside the candidate (paired rounds)."""
    return comparison.get("method") == "paired rounds"


def what_would_decide(comparison: dict[str, Any], found: MetricDecision, tolerance: float) -> str:
    """Roughly how many rounds (or requests) would decide an inconclusive metric."""
    if is_champion(comparison):
        n, unit = comparison.get("rounds"), "rounds"
    else:
        n, unit = comparison.get("candidate_samples"), "requests per side"
    if type(n) is not int or not (math.isfinite(found.low) and math.isfinite(found.high)):
        return "a longer run would narrow the interval"
    # "No change" needs the interval inside ±tolerance; a change needs it clear of zero.
    distance = abs(found.change)
    margin = tolerance - distance if distance <= tolerance else distance
    return sample_size.what_would_decide(n, found.high - found.low, margin, unit)


def percentile_series(evidence: Evidence) -> tuple[list[str], dict[str, list[float]]]:
    """Both sides' percentiles, the champion (or baseline) first, named as such."""
    labels = list(CHARTED)
    m = evidence.metrics
    series = {"candidate": [float(m.get(f"{label}_ms") or 0) for label in labels]}
    comparison = evidence.data.get("comparison")
    baseline = comparison.get("baseline_ms") if isinstance(comparison, dict) else None
    if isinstance(baseline, dict) and all(
        isinstance(baseline.get(label), (int, float)) for label in labels
    ):
        assert isinstance(comparison, dict)
        name = "champion" if is_champion(comparison) else "baseline"
        series = {name: [float(baseline[label]) for label in labels]} | series
    return labels, series


def chart_title(series: dict[str, list[float]]) -> str:
    if len(series) == 1:
        return "Latency percentiles of the candidate"
    return "Latency percentiles: " + " vs ".join(series)


def comparisons(evidence: Evidence, policy: LoadPolicy) -> list[Comparison]:
    comparison = evidence.data.get("comparison")
    if evidence.status == "error" or not isinstance(comparison, dict):
        return []
    tolerance = policy.regression_tolerance
    found = decisions(comparison, tolerance, policy.regression_fdr)
    if not found:
        return []
    champion = is_champion(comparison)
    other = "champion" if champion else "baseline"
    by_metric = {e.get("metric"): e for e in comparison.get("metrics", []) if isinstance(e, dict)}
    rows, outcomes, intervals = [], [], []
    for item in found:
        entry = by_metric.get(item.metric, {})
        rows.append(
            (
                item.metric,
                _ms(entry.get("baseline")),
                _ms(entry.get("candidate")),
                _percent(item.change),
                f"{_percent(item.low)} to {_percent(item.high)}",
                _word(item.decision, tolerance),
            )
        )
        outcomes.append(outcome(item.decision))
        if math.isfinite(item.low) and math.isfinite(item.high):
            # Turned so that right is better: faster is a negative change.
            intervals.append(
                charts.Interval(
                    item.metric,
                    -100 * item.change,
                    -100 * item.high,
                    -100 * item.low,
                    (-100 * tolerance, 100 * tolerance),
                    outcome(item.decision),
                )
            )
    worst = deciding(found)
    caption = f"{_how(evidence, comparison)}; tolerance ±{tolerance:.0%}: {worst.decision}"
    if worst.decision == "inconclusive":
        caption += f" ({worst.metric}); {what_would_decide(comparison, worst, tolerance)}"
    return [
        Comparison(
            title=f"Latency: candidate vs {other}",
            caption=caption,
            headers=(
                "metric",
                f"{other} ms",
                "candidate ms",
                "change",
                f"{_level(comparison)} CI",
                "decision",
            ),
            rows=rows,
            outcomes=outcomes,
            intervals=intervals,
            axis="latency change, % (right: candidate faster; red: ±tolerance)",
        )
    ]


def markdown(evidence: Evidence) -> str:
    labels, series = percentile_series(evidence)
    return charts.markdown_bars(chart_title(series), labels, series, "ms")


def html(evidence: Evidence) -> str:
    labels, series = percentile_series(evidence)
    return f"<h3>{chart_title(series)}</h3>" + charts.svg_bars(labels, series, "ms")


def _how(evidence: Evidence, comparison: dict[str, Any]) -> str:
    """What was compared, in one line: the two models (or the baseline file), and how."""
    candidate = _model(evidence.data.get("serve")) or "the candidate"
    if is_champion(comparison):
        champion = _model(evidence.data.get("champion")) or "the champion"
        rounds = comparison.get("rounds")
        return (
            f"{candidate} against {champion} served side by side, "
            f"{rounds if type(rounds) is int else '?'} interleaved rounds "
            f"({_count(comparison.get('candidate_samples'))} vs "
            f"{_count(comparison.get('baseline_samples'))} requests)"
        )
    return (
        f"{candidate} against the baseline {comparison.get('baseline', '?')} "
        f"({_count(comparison.get('candidate_samples'))} vs "
        f"{_count(comparison.get('baseline_samples'))} requests)"
    )


def _model(spec: object) -> str:
    if not isinstance(spec, dict):
        return ""
    for key in ("model_uri", "image", "url"):
        if isinstance(spec.get(key), str):
            return str(spec[key])
    return ""


def _word(decision: Decision, tolerance: float) -> str:
    return {
        "regression": f"slower beyond ±{tolerance:.0%}",
        "improvement": "faster",
        "no change": f"within ±{tolerance:.0%}",
        "inconclusive": "inconclusive",
    }[decision]


def _level(comparison: dict[str, Any]) -> str:
    confidence = comparison.get("confidence")
    return f"{confidence:.0%}" if isinstance(confidence, float) else "95%"


def _ms(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "?"


def _percent(value: float) -> str:
    return f"{value:+.1%}" if math.isfinite(value) else "?"


def _count(value: object) -> str:
    return f"{value:,}" if type(value) is int else "?"
