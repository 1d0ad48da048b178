"""Latency comparison: did the candidate get slower than the baseline, beyond a tolerance?

For each metric (p50, p90, p95, p99 or the mean of the latency samples) `compare` reports:

- the relative change ``candidate / baseline - 1`` of the metric, with a percentile bootstrap
  confidence interval ``[lo, hi]`` (both samples resampled independently);
- a two-sided Mann-Whitney U p-value, as information;
- the Hodges-Lehmann shift: the median of all pairwise differences candidate - baseline, in ms.

Decision (`decision.decide`), with the practical tolerance ``tol`` (relative, e.g. 0.10), from the
interval alone, so that the two always agree:

- **regression**   if ``lo > 0`` and ``hi > tol``: surely slower, and the slowdown may exceed
  the tolerance;
- **improvement**  if ``hi < 0`` and ``lo < -tol``: the mirror image;
- **no change**    if ``-tol <= lo`` and ``hi <= tol``: whatever changed is within tolerance;
- **inconclusive** otherwise: the interval is too wide to tell. This is never a pass.

Everything is deterministic given ``seed``.

That interval only sees the noise of single requests. Two runs of the same server also differ
as a whole (another moment on a shared runner, another process), by more than a 10% shift in
p95 on a busy 2-core machine, so comparing against a baseline measured elsewhere cannot be
calibrated. `compare_rounds` is for baseline and candidate loaded in interleaved rounds on the
same machine (A B, B A, ...): whatever slows a round down slows both of its sides, so the
per-round ratio cancels it. Per metric it takes the log-ratio of each round's candidate and
baseline values, and reports their mean (as a relative change, a geometric mean of per-round
ratios) with a Student t interval and a one-sample t-test p-value over rounds, so the
variation between rounds is measured rather than assumed away. When the number of rounds was
not fixed in advance (the load stage's `rounds: auto`), the interval is the always-valid
confidence sequence of `mlgate.sequential` instead, valid however the run chose to stop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats  # type: ignore[import-untyped]

from mlgate import sequential
from mlgate.decision import Decision, decide
from mlgate.errors import MlgateError
from mlgate.shift import hodges_lehmann

Metric = Literal["p50", "p90", "p95", "p99", "mean"]
FloatArray = npt.NDArray[np.float64]

METRICS: tuple[str, ...] = get_args(Metric)
# p99 is left out by default: at a few thousand samples per side its interval is too wide to
# call "no change" (measured: inconclusive in almost every A/A run up to 10,000 samples).
DEFAULT_METRICS: tuple[str, ...] = ("p50", "p95", "mean")
DEFAULT_TOLERANCE = 0.10
# Fewer samples cannot say anything about a tail, and the percentile bootstrap is too narrow.
MIN_SAMPLES = 20
_QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
# Bootstrap means cost resamples x n; beyond this many samples per side, means of random
# subsamples of this size are drawn and their spread scaled to n (m-out-of-n bootstrap).
_MEAN_RESAMPLE_SIZE = 20_000
# Elements per chunk of bootstrap indices, to bound memory (~16 MiB of int32).
_CHUNK = 1 << 22


class StatsError(MlgateError, ValueError):
    """Input that no comparison can be made from (too few, non-finite, a zero baseline...)."""


@dataclass(frozen=True)
class Comparison:
    metric: str
    baseline: float  # point estimates (ms)
    candidate: float
    relative_change: float  # candidate / baseline - 1
    ci: tuple[float, float]  # bootstrap confidence interval of the relative change
    p_value: float  # two-sided: Mann-Whitney U, or (paired rounds) the t-test over rounds
    shift_ms: float  # Hodges-Lehmann estimate of candidate - baseline
    decision: Decision

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "decision": self.decision,
            "relative_change": _json_number(self.relative_change),
            "ci": [_json_number(self.ci[0]), _json_number(self.ci[1])],
            "p_value": self.p_value,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "shift_ms": self.shift_ms,
        }


def _json_number(value: float) -> float | None:
    # An interval is unbounded only when some resampled baseline statistic is 0 ms; JSON has no
    # infinity, so it becomes null.
    return value if math.isfinite(value) else None


def compare(
    baseline: npt.ArrayLike,
    candidate: npt.ArrayLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    tolerance: float = DEFAULT_TOLERANCE,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> list[Comparison]:
    """Compare two latency samples (ms) metric by metric; see the module docstring."""
    _check_parameters(metrics, tolerance, confidence, resamples)
    base = np.sort(_samples("baseline", baseline))
    cand = np.sort(_samples("candidate", candidate))
    points = [(point_estimate(base, m), point_estimate(cand, m)) for m in metrics]
    for metric, (base_point, _) in zip(metrics, points, strict=True):
        if base_point <= 0:
            raise StatsError(f"baseline {metric} is 0 ms: a relative change is undefined")
    # One Mann-Whitney test of the whole distributions serves every metric.
    p_value = mann_whitney_p(base, cand)
    shift = hodges_lehmann(base, cand)
    rng = np.random.default_rng(seed)
    alpha = 1.0 - confidence
    results = []
    for metric, (base_point, cand_point) in zip(metrics, points, strict=True):
        change = _relative(
            _bootstrap(cand, metric, resamples, rng), _bootstrap(base, metric, resamples, rng)
        )
        # "lower"/"higher" pick observed replicates (no interpolation towards an infinite one)
        # and err on the wide side.
        ci = (
            float(np.quantile(change, alpha / 2, method="lower")),
            float(np.quantile(change, 1 - alpha / 2, method="higher")),
        )
        results.append(
            Comparison(
                metric=metric,
                baseline=base_point,
                candidate=cand_point,
                relative_change=cand_point / base_point - 1.0,
                ci=ci,
                p_value=p_value,
                shift_ms=shift,
                decision=decide(ci, tolerance),
            )
        )
    return results


def compare_rounds(
    baseline_rounds: Sequence[Sequence[npt.ArrayLike]],
    candidate_rounds: Sequence[Sequence[npt.ArrayLike]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    tolerance: float = DEFAULT_TOLERANCE,
    confidence: float = 0.95,
    sequence: bool = False,
) -> list[Comparison]:
    """Compare paired rounds (round i of each side loaded back to back); see the module
    docstring. A round is given as its time windows (`paired_windows`; one window when the
    sides were not loaded at the same moments). Point estimates and the Hodges-Lehmann shift
    are of the pooled samples. `sequence`: the rounds were not fixed in advance; the interval
    is the confidence sequence."""
    _check_parameters(metrics, tolerance, confidence, resamples=100)
    rounds = paired_windows(baseline_rounds, candidate_rounds)
    # Judged first: judge_log_ratios refuses too few rounds (none at all included) before
    # anything is pooled.
    logs = round_log_ratios(rounds, metrics)
    judged = judge_log_ratios(logs, metrics, tolerance, confidence, sequence)
    base_all = np.sort(np.concatenate([b for windows in rounds for b, _ in windows]))
    cand_all = np.sort(np.concatenate([c for windows in rounds for _, c in windows]))
    shift = hodges_lehmann(base_all, cand_all)
    return [
        Comparison(
            metric=j.metric,
            baseline=point_estimate(base_all, j.metric),
            candidate=point_estimate(cand_all, j.metric),
            relative_change=j.relative_change,
            ci=j.ci,
            p_value=j.p_value,
            shift_ms=shift,
            decision=j.decision,
        )
        for j in judged
    ]


def paired_windows(
    baseline_rounds: Sequence[Sequence[npt.ArrayLike]],
    candidate_rounds: Sequence[Sequence[npt.ArrayLike]],
) -> list[list[tuple[FloatArray, FloatArray]]]:
    """Each round's (baseline, candidate) samples, sorted, window by window: a round is a
    sequence of time windows, window k of one side sent in the same seconds as window k of
    the other (open loop, requests in turn), or one window."""
    if len(baseline_rounds) != len(candidate_rounds):
        raise StatsError(
            f"paired rounds: baseline has {len(baseline_rounds)} rounds, "
            f"candidate {len(candidate_rounds)}"
        )
    rounds = []
    for i, (base, cand) in enumerate(zip(baseline_rounds, candidate_rounds, strict=True), 1):
        if len(base) != len(cand) or not base:
            raise StatsError(
                f"round {i}: baseline in {len(base)} windows, candidate in {len(cand)}"
            )
        windows = []
        for k, (b, c) in enumerate(zip(base, cand, strict=True), 1):
            where = f"round {i} window {k}" if len(base) > 1 else f"round {i}"
            windows.append(
                (
                    np.sort(_samples(f"baseline {where}", b)),
                    np.sort(_samples(f"candidate {where}", c)),
                )
            )
        rounds.append(windows)
    return rounds


@dataclass(frozen=True)
class RoundsJudgement:
    """What paired rounds say of one metric (`judge_log_ratios`)."""

    metric: str
    relative_change: float  # geometric mean of the per-round ratios, minus 1
    ci: tuple[float, float]
    p_value: float  # one-sample t-test over rounds, two-sided
    decision: Decision


def round_log_ratios(
    rounds: Sequence[Sequence[tuple[FloatArray, FloatArray]]], metrics: Sequence[str]
) -> FloatArray:
    """log(candidate / baseline) of each metric in each round: shape (rounds, metrics). Each
    round is its (baseline, candidate) samples, sorted, in time windows (`paired_windows`);
    its log-ratio is the mean of its windows'. Why windows: on a busy runner a burst of load
    slows both sides at once, yet the few bursts of a round decide its pooled tail, so one
    side's luck in them moved a round's p95 log-ratio (sd 0.103 over 14 busy A/A rounds of
    40 s); the mean over 5-s windows, each burst weighing only in its own, had sd 0.051."""
    logs = np.empty((len(rounds), len(metrics)))
    for i, windows in enumerate(rounds):
        for j, metric in enumerate(metrics):
            total = 0.0
            for base, cand in windows:
                base_value, cand_value = point_estimate(base, metric), point_estimate(cand, metric)
                if base_value <= 0 or cand_value <= 0:
                    raise StatsError(f"round {i + 1}: {metric} is 0 ms: a ratio is undefined")
                total += math.log(cand_value / base_value)
            logs[i, j] = total / len(windows)
    return logs


def judge_log_ratios(
    log_ratios: FloatArray,
    metrics: Sequence[str],
    tolerance: float = DEFAULT_TOLERANCE,
    confidence: float = 0.95,
    sequence: bool = False,
) -> list[RoundsJudgement]:
    """The decision of `compare_rounds` from per-round log-ratios (`round_log_ratios`): per
    metric, their mean with a Student t interval (or, `sequence`, the confidence sequence of
    `mlgate.sequential`) and a t-test over rounds. Kept apart so that many trials of rounds
    can be judged by the same rule without recomputing each round's percentiles."""
    if log_ratios.ndim != 2 or log_ratios.shape[1] != len(metrics):
        raise StatsError(
            f"log-ratios of shape {log_ratios.shape}: expected (rounds, {len(metrics)} metrics)"
        )
    rounds = log_ratios.shape[0]
    if rounds < 2:
        raise StatsError("paired rounds: at least 2 rounds are needed to see their variation")
    critical = float(scipy_stats.t.ppf(1 - (1 - confidence) / 2, rounds - 1))
    judged = []
    for metric, values in zip(metrics, log_ratios.T, strict=True):
        mean = float(values.mean())
        spread = float(values.std(ddof=1)) / math.sqrt(rounds)
        if spread > 0:
            p_value = float(2 * scipy_stats.t.sf(abs(mean / spread), rounds - 1))
        else:  # every round gave the same ratio: certain, whatever it is
            p_value = 1.0 if mean == 0 else 0.0
        if sequence:
            bounds = sequential.confidence_sequence([float(v) for v in values], confidence)
        else:
            bounds = (mean - critical * spread, mean + critical * spread)
        ci = sequential.relative_interval(bounds)
        judged.append(RoundsJudgement(metric, math.expm1(mean), ci, p_value, decide(ci, tolerance)))
    return judged


def point_estimate(values: FloatArray, metric: str) -> float:
    """The metric of a sample: a percentile with numpy's default (linear) interpolation, or the
    mean."""
    if metric == "mean":
        return float(np.mean(values))
    return float(np.quantile(values, _QUANTILES[metric]))


def mann_whitney_p(baseline: FloatArray, candidate: FloatArray) -> float:
    result = scipy_stats.mannwhitneyu(candidate, baseline, alternative="two-sided")
    return float(result.pvalue)


def _bootstrap(
    sorted_values: FloatArray, metric: str, resamples: int, rng: np.random.Generator
) -> FloatArray:
    """The metric of `resamples` bootstrap resamples of a sorted sample."""
    n = sorted_values.size
    if metric == "mean":
        return _bootstrap_mean(sorted_values, resamples, rng)
    # A resample is values[floor(n * U_i)] for n uniforms U_i, so its k-th order statistic is
    # values[floor(n * U_(k))] with U_(k) ~ Beta(k, n - k + 1), and given U_(k) = u the next one
    # is u + (1 - u) * Beta(1, n - k). Drawing these is exact and costs O(resamples), not
    # O(resamples * n).
    position = (n - 1) * _QUANTILES[metric]
    k = math.floor(position) + 1  # 1-based order statistic numpy's linear interpolation starts at
    fraction = position - (k - 1)
    u = rng.beta(k, n - k + 1, size=resamples)
    value = sorted_values[np.minimum((u * n).astype(np.intp), n - 1)]
    if fraction > 0:
        u_next = u + (1.0 - u) * rng.beta(1, n - k, size=resamples)
        following = sorted_values[np.minimum((u_next * n).astype(np.intp), n - 1)]
        value = value + fraction * (following - value)
    return value


def _bootstrap_mean(values: FloatArray, resamples: int, rng: np.random.Generator) -> FloatArray:
    n = values.size
    size = min(n, _MEAN_RESAMPLE_SIZE)
    rows = max(1, _CHUNK // size)
    means = np.empty(resamples)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        indices = rng.integers(0, n, size=(stop - start, size), dtype=np.int32)
        means[start:stop] = values[indices].mean(axis=1)
    center = float(np.mean(values))
    # m-out-of-n: the spread of means of m draws is sqrt(n / m) times that of n draws.
    return center + (means - center) * math.sqrt(size / n)


def _relative(candidate: FloatArray, baseline: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(
            baseline > 0, candidate / baseline - 1.0, np.where(candidate > 0, np.inf, 0.0)
        )
    return np.asarray(change, dtype=np.float64)


def _samples(side: str, values: npt.ArrayLike) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StatsError(f"{side}: not a sequence of numbers: {exc}") from None
    if array.ndim != 1:
        raise StatsError(
            f"{side}: expected one sample per value, got an array of shape {array.shape}"
        )
    if array.size < MIN_SAMPLES:
        raise StatsError(f"{side}: {array.size} samples; a comparison needs at least {MIN_SAMPLES}")
    if not np.all(np.isfinite(array)):
        raise StatsError(f"{side}: samples must be finite (found NaN or infinity)")
    if np.any(array < 0):
        raise StatsError(f"{side}: latencies cannot be negative (found {array.min():g})")
    return array


def _check_parameters(
    metrics: Sequence[str], tolerance: float, confidence: float, resamples: int
) -> None:
    if not metrics:
        raise StatsError("no metric to compare")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise StatsError(f"unknown metric {unknown[0]!r}; expected one of {', '.join(METRICS)}")
    if len(set(metrics)) != len(metrics):
        raise StatsError("each metric may be compared once")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise StatsError(f"tolerance must be a finite number >= 0, got {tolerance}")
    if not 0 < confidence < 1:
        raise StatsError(f"confidence must be between 0 and 1, got {confidence}")
    if resamples < 100:
        raise StatsError(f"resamples must be at least 100, got {resamples}")
