"""Quality's champion rule, `max_drop`: is the candidate no worse than the champion by more than
the tolerance? A one-sided question, answered by a one-sided (non-inferiority) rule.

With d = candidate - champion turned so that positive is better, a tolerated drop t, and at the
configured confidence c (0.95) the one-sided bootstrap bounds L (the 1 - c quantile of d) and
U (the c quantile):

- pass when L >= -t: even the worst plausible value is within the tolerance;
- fail when U < -t: even the best plausible value is a drop beyond it;
- inconclusive in between, never a pass.

False passes: when the true drop is t (or more), L >= -t happens in at most 1 - c of holdouts (5%
at 0.95): the rule is a one-sided test of "drop >= t" at level 1 - c. The two-sided interval's
bounds (quantiles (1 - c)/2 and (1 + c)/2) would test at (1 - c)/2, more often inconclusive for
no protection the gate asks for. The gate passes only when every gated metric passes: a false
pass needs the test of a metric that truly drops beyond its tolerance to pass, which happens with
probability at most 1 - c whatever the other metrics do, so the false-pass rate of all of them
together is at most 1 - c with no multiplicity correction (an intersection-union test; Berger,
1982). A false failure, by contrast, may come from any metric: with k metrics at most k(1 - c).

A tolerance set as a fraction f of the champion's value (max_relative_drop) is judged the same
way on the relative change (candidate - champion) / |champion|, bounded per resample, against f:
the champion's value on the holdout is an estimate too, and a bound on the difference against
f times that estimate would ignore its spread (measured: 6.1% false passes at the tolerance
instead of 5.5%, benchmarks/bench_quality_calibration.py's RMSE case, 1500 holdouts).

The two-sided interval stays as information: "regression" (entirely below zero, worse however
small), "improvement" (entirely above), "no change" (entirely within the tolerance) or
"inconclusive" (none of these).

Evidence written before the one-sided bounds were recorded has only the two-sided interval; its
bounds are one-sided bounds at (1 + c)/2, a stricter level, so it is judged on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlgate import sample_size
from mlgate.verdict import Outcome, RuleResult

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mlgate.stages.quality.config import QualityPolicy


_WORDS: dict[Outcome, str] = {
    "pass": "within the tolerance",
    "fail": "worse beyond the tolerance",
    "inconclusive": "cannot tell whether within",
}


def bootstrap_bounds(
    candidate: npt.NDArray[np.float64],
    champion: npt.NDArray[np.float64],
    confidence: float,
    min_share: float,
) -> dict[str, Any] | None:
    """The evidence's bounds from the two models' values in the same bootstrap resamples: `ci`,
    the two-sided interval of candidate - champion at `confidence`; `one_sided`, [lower,
    upper], each a one-sided bound at `confidence` (the pass/fail rule's); `one_sided_relative`,
    the same of (candidate - champion) / |champion|, which a tolerance set as a fraction of the
    champion's value is judged on (the champion's value varies from resample to resample too).
    None when the metric is undefined in more than 1 - `min_share` of the resamples."""
    import numpy as np

    alpha = 1 - confidence
    with np.errstate(divide="ignore", invalid="ignore"):
        differences = candidate - champion
        relative = differences / np.abs(champion)

    def bounds(values: npt.NDArray[np.float64], low: float, high: float) -> list[float] | None:
        defined = values[np.isfinite(values)]
        if defined.size < min_share * values.size:
            return None
        # "lower"/"higher" pick observed replicates and err on the wide side.
        return [
            float(np.quantile(defined, low, method="lower")),
            float(np.quantile(defined, high, method="higher")),
        ]

    ci = bounds(differences, alpha / 2, 1 - alpha / 2)
    if ci is None:
        return None
    return {
        "ci": ci,
        "one_sided": bounds(differences, alpha, 1 - alpha),
        "one_sided_relative": bounds(relative, alpha, 1 - alpha),
    }


def two_sided(low: float, high: float, tolerance: float) -> str:
    """The two-sided decision, as information: `low`, `high` turned so that positive is
    better."""
    if high < 0:
        return "regression"
    if low > 0:
        return "improvement"
    if -tolerance <= low and high <= tolerance:
        return "no change"
    return "inconclusive"


@dataclass(frozen=True)
class Judgement:
    """One metric's max_drop decision; `guidance` (an inconclusive one the data did not decide):
    its bounds' width and roughly how many rows would decide it."""

    outcome: Outcome
    reason: str
    guidance: str | None = None

    def rule(self) -> RuleResult:
        reason = f"{self.reason}; {self.guidance}" if self.guidance else self.reason
        return RuleResult(
            stage="quality",
            rule="quality.max_drop",
            outcome=self.outcome,
            reason=f"quality: {reason}",
            statistical=self.guidance is not None,
        )


def judge_drop(
    policy: QualityPolicy,
    entry: dict[str, Any] | None,
    metric: str,
    higher: bool,
    rows: int,
    confidence: float,
) -> Judgement | None:
    """The max_drop decision of one metric entry (see the module docstring); None when the
    metric is not compared. `rows`: how many the interval came from, to say how many would
    decide an inconclusive one; `confidence`: the level the evidence's intervals are at."""
    if entry is None:
        return None
    champion = entry.get("champion")
    if champion is None:
        return None  # nothing to regress from
    setting = policy.tolerance(metric, champion)
    if setting is None:
        return None
    tolerance, how = setting
    if entry.get("candidate") is None:
        return Judgement(
            "inconclusive",
            f"{metric}: the champion has one ({champion:.4f}), the candidate none: cannot compare",
        )
    difference = float(entry["difference"])
    head = f"{metric} {entry['candidate']:.4f} vs champion {champion:.4f} ({difference:+.4f}"
    ci = entry.get("ci")
    if ci is None:
        return Judgement("inconclusive", f"{head}, no interval), tolerated drop {how}: cannot tell")
    bounds, level = _deciding_bounds(entry, confidence)
    # A tolerance set as a fraction of the champion's value is judged on the relative change,
    # when recorded: the champion's value is as uncertain as the difference.
    fraction = _fraction(policy, metric)
    relative = entry.get("one_sided_relative") if fraction is not None else None
    limit, change, shown = tolerance, difference, "{:+.4f}"
    if fraction is not None and relative is not None and champion == 0:
        return Judgement(
            "fail", f"{head}): a drop relative to a champion's value of 0 is undefined"
        )
    if fraction is not None and relative is not None:
        bounds, level = (float(relative[0]), float(relative[1])), confidence
        limit, change, shown = fraction, difference / abs(champion), "{:+.2%} of its value"
    worst, best = _turned(bounds, higher)
    if worst >= -limit:
        outcome: Outcome = "pass"
    elif best < -limit:
        outcome = "fail"
    else:
        outcome = "inconclusive"
    side = "lower" if higher else "upper"
    two_low, two_high = _turned((float(ci[0]), float(ci[1])), higher)
    reason = (
        f"{head}, one-sided {level:.0%} {side} bound "
        f"{shown.format(bounds[0 if higher else 1])}; "
        f"two-sided {confidence:.0%} CI {float(ci[0]):+.4f} to {float(ci[1]):+.4f}: "
        f"{two_sided(two_low, two_high, tolerance)}), tolerated drop {how}: {_WORDS[outcome]}"
    )
    if outcome != "inconclusive":
        return Judgement(outcome, reason)
    better = change if higher else -change
    width = best - worst
    more = sample_size.what_would_decide(rows, width, abs(better + limit), "rows")
    return Judgement(
        "inconclusive",
        reason,
        f"{more}; the {2 * level - 1:.0%} interval between the bounds is "
        f"{shown.format(width).lstrip('+')} wide",
    )


def _fraction(policy: QualityPolicy, metric: str) -> float | None:
    """The metric's tolerance as a fraction of the champion's value, when that is how it is
    set (a max_drop takes precedence)."""
    if policy.max_drop.get(metric) is not None:  # type: ignore[call-overload]
        return None
    fraction: float | None = policy.max_relative_drop.get(metric)  # type: ignore[call-overload]
    return fraction


def _deciding_bounds(entry: dict[str, Any], confidence: float) -> tuple[tuple[float, float], float]:
    """The one-sided bounds and their level: recorded ones at `confidence`; else, in older
    evidence, the two-sided interval's, one-sided bounds at (1 + confidence) / 2."""
    one_sided = entry.get("one_sided")
    if one_sided is not None:
        return (float(one_sided[0]), float(one_sided[1])), confidence
    ci = entry["ci"]
    return (float(ci[0]), float(ci[1])), (1 + confidence) / 2


def _turned(bounds: tuple[float, float], higher: bool) -> tuple[float, float]:
    """[low, high] of candidate - champion turned so that positive is better."""
    low, high = bounds
    return (low, high) if higher else (-high, -low)
