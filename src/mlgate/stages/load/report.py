"""The load stage's comparison as reports show it: the candidate's latency against the champion
served side by side (or a baseline file), per metric the change, its interval, the gate's
one-sided outcome and the two-sided decision, a bar chart of both sides' percentiles and what
would decide an inconclusive one.

Evidence is read defensively (odd evidence renders as far as it can; the gate judges it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlgate import sample_size, sequential
from mlgate.decision import Decision, GateOutcome, decide, non_inferiority
from mlgate.evidence import Evidence
from mlgate.report import charts
from mlgate.report.comparison import Comparison
from mlgate.verdict import Outcome

if TYPE_CHECKING:
    from mlgate.stages.load.config import LoadPolicy

CHARTED = ("p50", "p90", "p95", "p99")
_OUTCOMES: dict[GateOutcome, Outcome] = {
    "pass": "pass",
    "fail": "fail",
    "inconclusive": "inconclusive",
}


@dataclass(frozen=True)
class MetricDecision:
    decision: Decision  # two-sided, as information
    metric: str
    change: float  # relative: +0.12 is 12% slower
    low: float
    high: float
    gate: GateOutcome  # the gate's one-sided question: no slowdown beyond the tolerance
    # A finite interval, low <= high: only then is an undecided metric the data's indecision
    # (which `on_inconclusive: warn` may let through) rather than a broken comparison.
    bounded: bool = True


def decisions(comparison: dict[str, Any], tolerance: float) -> list[MetricDecision]:
    """The policy's decisions on each compared (= gated) metric, from its interval.

    Rounds whose number was not fixed in advance (`sequential.rule` "auto") are judged again
    here from the per-round log-ratios the evidence keeps, by the confidence sequence, which
    is valid however the run stopped; the stored interval is the same computation."""
    recomputed = _sequence_intervals(comparison)
    sequence = _auto_rounds(comparison) is not None
    found = []
    for entry in comparison.get("metrics", []):
        metric = str(entry.get("metric", "?"))
        ci = entry.get("ci")
        valid = isinstance(ci, list) and len(ci) == 2 and all(_is_number(v) for v in ci)
        low, high = (ci[0], ci[1]) if valid else (-math.inf, math.inf)
        change_value = entry.get("relative_change", 0)
        change = float(change_value) if _is_number(change_value) else math.nan
        if metric in recomputed:
            change, (low, high) = recomputed[metric]
            valid = True
        elif sequence:  # rounds chosen as they went are judged from their rounds, or not at all
            valid = False
        if valid and not low <= high:
            valid = False
        gate = non_inferiority((low, high), tolerance) if valid else "fail"
        bounded = valid and math.isfinite(low) and math.isfinite(high)
        found.append(
            MetricDecision(decide((low, high), tolerance), metric, change, low, high, gate, bounded)
        )
    return found


def data_undecided(found: list[MetricDecision]) -> bool:
    """Whether what keeps the gate undecided is only the data: every inconclusive metric has a
    finite interval (a missing, malformed or unbounded one is no measurement of uncertainty)."""
    undecided = [d for d in found if d.gate == "inconclusive"]
    return bool(undecided) and all(d.bounded for d in undecided)


def _sequence_intervals(
    comparison: dict[str, Any],
) -> dict[str, tuple[float, tuple[float, float]]]:
    """Per metric, the change and confidence sequence of rounds chosen as they went."""
    logs = comparison.get("log_ratios")
    if _auto_rounds(comparison) is None or not isinstance(logs, dict):
        return {}
    found = {}
    for metric, values in logs.items():
        if isinstance(values, list) and values and all(_is_number(v) for v in values):
            change = math.expm1(math.fsum(values) / len(values))
            found[str(metric)] = (
                change,
                sequential.relative_interval(sequential.confidence_sequence(values)),
            )
    return found


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def gate(found: list[MetricDecision]) -> GateOutcome:
    """The rule's outcome: every gated metric must pass (see sequential.gate_outcome)."""
    return sequential.gate_outcome([d.gate for d in found])


def outcome(gate_outcome: GateOutcome) -> Outcome:
    return _OUTCOMES[gate_outcome]


def interval_name(comparison: dict[str, Any]) -> str:
    """Which interval judged the comparison."""
    if _auto_rounds(comparison) is not None:
        return "95% confidence sequence bounds, one-sided each"
    if is_champion(comparison):
        return "95% t interval"
    return "95% bootstrap interval"


def reasons(comparison: dict[str, Any], found: list[MetricDecision], tolerance: float) -> str:
    """Every gated metric's outcome and interval, and for an inconclusive one its interval's
    width and roughly how much more data would decide it."""
    parts = []
    for item in found:
        text = (
            f"{item.metric} {_percent(item.change)} ({_percent(item.low)} to "
            f"{_percent(item.high)}) {_GATE_WORDS[item.gate]} [{item.decision}]"
        )
        if item.gate == "inconclusive":
            text += f", {_width(item.high - item.low)}: " + what_would_decide(
                comparison, item, tolerance
            )
        parts.append(text)
    return "; ".join(parts)


_GATE_WORDS: dict[GateOutcome, str] = {
    "pass": "passes",
    "fail": "fails",
    "inconclusive": "inconclusive",
}


def _width(width: float) -> str:
    return f"interval {100 * width:.1f} points wide" if math.isfinite(width) else "unbounded"


def stopped(comparison: dict[str, Any]) -> str:
    """How the rounds were chosen and why they stopped, for reasons and captions."""
    plan = _auto_rounds(comparison)
    if plan is None:
        return ""
    return f"rounds: auto, {plan.get('rounds', '?')} run, {plan.get('stopped', '?')}"


def _auto_rounds(comparison: dict[str, Any]) -> dict[str, Any] | None:
    """The comparison's `sequential` plan when its rounds were `auto` (chosen as they went),
    else None."""
    plan = comparison.get("sequential")
    return plan if isinstance(plan, dict) and plan.get("rule") == "auto" else None


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
        return f"more {unit} would narrow the interval"
    # The gate is decided once the interval clears the tolerance on one side: its half-width
    # below the estimate's distance from the tolerance.
    margin = abs(tolerance - found.change)
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
    found = decisions(comparison, tolerance)
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
                f"{_GATE_WORDS[item.gate]} ({_word(item.decision, tolerance)})",
            )
        )
        outcomes.append(outcome(item.gate))
        if math.isfinite(item.low) and math.isfinite(item.high):
            # Turned so that right is better: faster is a negative change.
            intervals.append(
                charts.Interval(
                    item.metric,
                    -100 * item.change,
                    -100 * item.high,
                    -100 * item.low,
                    (-100 * tolerance, 100 * tolerance),
                    outcome(item.gate),
                )
            )
    caption = (
        f"{_how(evidence, comparison)}; {interval_name(comparison)}; no slowdown beyond "
        f"+{tolerance:.0%} on every metric: {_GATE_WORDS[gate(found)]}"
    )
    for item in found:
        if item.gate == "inconclusive":
            caption += f"; {item.metric}: {what_would_decide(comparison, item, tolerance)}"
    return [
        Comparison(
            title=f"Latency: candidate vs {other}",
            caption=caption,
            headers=(
                "metric",
                f"{other} ms",
                "candidate ms",
                "change",
                f"{_level(comparison)} {_interval_word(comparison)}",
                "gate (two-sided)",
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


def _windows(comparison: dict[str, Any]) -> str:
    """How many time windows each round was compared in, when more than one."""
    counts = comparison.get("windows")
    if not isinstance(counts, list) or not counts or not all(type(c) is int for c in counts):
        return ""
    low, high = min(counts), max(counts)
    if high <= 1:
        return ""
    return f" in {low if low == high else f'{low}-{high}'} time windows each"


def _how(evidence: Evidence, comparison: dict[str, Any]) -> str:
    """What was compared, in one line: the two models (or the baseline file), and how."""
    candidate = _model(evidence.data.get("serve")) or "the candidate"
    if is_champion(comparison):
        champion = _model(evidence.data.get("champion")) or "the champion"
        rounds = comparison.get("rounds")
        how = stopped(comparison)
        return (
            f"{candidate} against {champion} served side by side, "
            f"{rounds if type(rounds) is int else '?'} interleaved rounds{_windows(comparison)} "
            f"({_count(comparison.get('candidate_samples'))} vs "
            f"{_count(comparison.get('baseline_samples'))} requests)" + (f"; {how}" if how else "")
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
        "regression": "slower",
        "improvement": "faster",
        "no change": f"within ±{tolerance:.0%}",
        "inconclusive": "inconclusive",
    }[decision]


def _interval_word(comparison: dict[str, Any]) -> str:
    # Auto rounds: each end is a one-sided 95% bound (together a 90% two-sided sequence).
    return "bounds" if _auto_rounds(comparison) is not None else "CI"


def _level(comparison: dict[str, Any]) -> str:
    confidence = comparison.get("confidence")
    return f"{confidence:.0%}" if isinstance(confidence, float) else "95%"


def _ms(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "?"


def _percent(value: float) -> str:
    return f"{value:+.1%}" if math.isfinite(value) else "?"


def _count(value: object) -> str:
    return f"{value:,}" if type(value) is int else "?"
