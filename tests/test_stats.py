from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from mlgate import stats
from mlgate.decision import decide, non_inferiority
from mlgate.errors import MlgateError
from mlgate.stats import Comparison, StatsError, compare


def latencies(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    """Realistic request latencies (ms): lognormal around 20 ms, and 3% slow requests with an
    exponential tail (GC pauses, queueing)."""
    values = rng.lognormal(math.log(20), 0.35, n)
    slow = rng.random(n) < 0.03
    values[slow] += rng.exponential(40.0, int(slow.sum()))
    return values * scale


def by_metric(results: list[Comparison]) -> dict[str, Comparison]:
    return {r.metric: r for r in results}


# --- point estimates and tests against numpy / scipy ---


def test_point_estimates_are_numpys_percentiles_and_mean() -> None:
    rng = np.random.default_rng(1)
    base, cand = latencies(rng, 501), latencies(rng, 733)
    results = by_metric(compare(base, cand, metrics=["p50", "p90", "p95", "p99", "mean"]))
    for metric, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert results[metric].baseline == pytest.approx(np.percentile(base, q), rel=1e-12)
        assert results[metric].candidate == pytest.approx(np.percentile(cand, q), rel=1e-12)
        expected = np.percentile(cand, q) / np.percentile(base, q) - 1
        assert results[metric].relative_change == pytest.approx(expected, rel=1e-12)
    assert results["mean"].baseline == pytest.approx(base.mean(), rel=1e-12)


def test_p_value_is_scipys_mann_whitney_u() -> None:
    rng = np.random.default_rng(2)
    base, cand = latencies(rng, 300), latencies(rng, 400, scale=1.05)
    expected = scipy_stats.mannwhitneyu(cand, base, alternative="two-sided").pvalue
    assert stats.mann_whitney_p(base, cand) == pytest.approx(expected, rel=1e-12)
    # One test of the whole distributions serves every metric.
    for result in compare(base, cand):
        assert result.p_value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("baseline", "candidate", "expected"),
    [
        ([1, 2, 3], [2, 4], 1.0),  # differences -1 0 1 1 2 3
        ([0], [1, 2, 5], 2.0),
        ([0, 1], [0, 10], 4.5),  # differences -1 0 9 10: the mean of the middle two
        ([5, 5, 5], [5, 5], 0.0),
    ],
)
def test_hodges_lehmann_small_exact(
    baseline: list[float], candidate: list[float], expected: float
) -> None:
    assert stats.hodges_lehmann(np.array(baseline, float), np.array(candidate, float)) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=1, max_size=40),
    st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=40),
)
def test_hodges_lehmann_is_the_median_of_pairwise_differences(
    baseline: list[int], candidate: list[float]
) -> None:
    x, y = np.array(baseline, float), np.array(candidate, float)
    expected = float(np.median(np.subtract.outer(y, x)))
    assert stats.hodges_lehmann(x, y) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_hodges_lehmann_of_a_shift_on_large_samples() -> None:
    rng = np.random.default_rng(3)
    base = latencies(rng, 20_000)
    assert stats.hodges_lehmann(base, base + 2.5) == pytest.approx(2.5, abs=1e-9)


def test_bootstrap_order_statistics_are_exact() -> None:
    # The resampled k-th order statistic is below the j-th value exactly when at least k of n
    # draws are among the j smallest: P = P(Binomial(n, j/n) >= k).
    n = 21
    values = np.arange(n, dtype=float)
    draws = stats._bootstrap(values, "p50", 200_000, np.random.default_rng(4))
    k = 11  # (n - 1) * 0.5 = 10 exactly: the 11th order statistic, no interpolation
    for j in range(1, n):
        exact = scipy_stats.binom.sf(k - 1, n, j / n)
        assert np.mean(draws <= j - 1) == pytest.approx(exact, abs=0.005)


def test_bootstrap_interpolated_percentile_matches_brute_force() -> None:
    rng = np.random.default_rng(5)
    values = np.sort(latencies(rng, 40))
    fast = stats._bootstrap(values, "p90", 100_000, rng)
    brute = np.quantile(values[rng.integers(0, 40, size=(100_000, 40))], 0.9, axis=1)
    assert np.quantile(fast, [0.025, 0.5, 0.975]) == pytest.approx(
        np.quantile(brute, [0.025, 0.5, 0.975]), rel=0.02
    )
    assert fast.mean() == pytest.approx(brute.mean(), rel=0.005)


def test_mean_bootstrap_of_a_subsample_keeps_the_spread(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    values = latencies(rng, 8000)
    full = stats._bootstrap(values, "mean", 2000, np.random.default_rng(7))
    monkeypatch.setattr(stats, "_MEAN_RESAMPLE_SIZE", 800)
    scaled = stats._bootstrap(values, "mean", 2000, np.random.default_rng(7))
    assert scaled.std() == pytest.approx(full.std(), rel=0.1)
    assert scaled.mean() == pytest.approx(full.mean(), rel=1e-3)


# --- decisions ---


@pytest.mark.parametrize(
    ("ci", "expected"),
    [
        ((0.01, 0.20), "regression"),
        # ae9cde2 called this inconclusive when the BH-adjusted p-value was not below the FDR:
        # an interval entirely above zero said "slower" while the decision did not.
        ((0.007, 0.308), "regression"),
        ((0.05, 0.09), "no change"),  # surely slower, but within tolerance
        ((-0.20, -0.01), "improvement"),
        ((-0.108, -0.006), "improvement"),
        ((-0.10, 0.10), "no change"),  # the tolerance is inclusive
        ((-0.05, 0.15), "inconclusive"),
        ((-0.15, 0.15), "inconclusive"),
        ((0.0, 0.0), "no change"),
    ],
)
def test_decision_rule(ci: tuple[float, float], expected: str) -> None:
    assert decide(ci, tolerance=0.10) == expected


@pytest.mark.parametrize(
    ("ci", "expected"),
    [
        ((-0.139, 0.020), "pass"),  # the p50: no slowdown above 2% is possible
        ((-0.108, -0.006), "pass"),  # the A/A interval that failed the gate on ae9cde2
        ((-0.05, 0.10), "pass"),  # the tolerance is inclusive
        ((0.05, 0.15), "inconclusive"),  # surely slower, perhaps beyond the tolerance
        ((-0.30, 0.30), "inconclusive"),
        ((0.11, 0.40), "fail"),
        ((0.007, 0.308), "inconclusive"),
    ],
)
def test_non_inferiority_rule(ci: tuple[float, float], expected: str) -> None:
    assert non_inferiority(ci, tolerance=0.10) == expected


def test_interval_and_decision_agree_whatever_the_rounds_p_values() -> None:
    """Paired rounds whose interval is entirely above zero are never inconclusive about the
    direction (on ae9cde2, a metric's BH-adjusted p-value could make them so)."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        logs = rng.normal(rng.uniform(-0.2, 0.2), rng.uniform(0.01, 0.3), size=(6, 3))
        for judged in stats.judge_log_ratios(logs, stats.DEFAULT_METRICS):
            low, high = judged.ci
            if low > 0:
                assert judged.decision in ("regression", "no change")
            if high < 0:
                assert judged.decision in ("improvement", "no change")


# The supported statistics, p99 included (it is not a default: see stats.DEFAULT_METRICS).
ALL_METRICS = ("p50", "p95", "p99", "mean")


def test_clear_regression() -> None:
    rng = np.random.default_rng(10)
    results = compare(latencies(rng, 3000), latencies(rng, 3000, scale=1.3), metrics=ALL_METRICS)
    assert [r.decision for r in results] == ["regression"] * 4
    for r in results:
        assert 0 < r.ci[0] < r.relative_change < r.ci[1]
        assert r.p_value < 1e-10
        assert r.shift_ms > 0


def test_clear_improvement() -> None:
    rng = np.random.default_rng(11)
    results = compare(latencies(rng, 3000), latencies(rng, 3000, scale=0.7), metrics=ALL_METRICS)
    assert [r.decision for r in results] == ["improvement"] * 4
    assert all(r.ci[1] < -0.1 and r.shift_ms < 0 for r in results)


def test_no_change_when_the_interval_is_within_tolerance() -> None:
    rng = np.random.default_rng(12)
    base = rng.lognormal(math.log(20), 0.05, 5000)
    cand = rng.lognormal(math.log(20), 0.05, 5000) * 1.03  # real, but within tolerance
    results = compare(base, cand, metrics=ALL_METRICS)
    assert [r.decision for r in results] == ["no change"] * 4
    assert all(r.p_value < 0.05 and r.ci[0] >= -0.1 and r.ci[1] <= 0.1 for r in results)


def test_inconclusive_when_the_samples_are_too_small_to_tell() -> None:
    rng = np.random.default_rng(13)
    results = by_metric(compare(latencies(rng, 30), latencies(rng, 30), metrics=ALL_METRICS))
    for metric in ("p50", "p95", "mean"):
        assert results[metric].decision == "inconclusive"
    # Decided by the interval alone (a Mann-Whitney p-value no longer vetoes it): p99 of 30
    # requests is the slowest one or two, its interval wide, never "no change".
    assert results["p99"].decision != "no change"
    assert results["p99"].ci[0] < -0.1 or results["p99"].ci[1] > 0.1


def test_identical_constant_samples_are_no_change() -> None:
    results = compare([5.0] * 40, [5.0] * 40)
    for r in results:
        assert (r.decision, r.ci, r.relative_change, r.shift_ms) == ("no change", (0, 0), 0, 0)
        assert r.p_value == 1.0


def test_same_seed_same_result_other_seed_other_interval() -> None:
    rng = np.random.default_rng(14)
    base, cand = latencies(rng, 1000), latencies(rng, 1000, scale=1.05)
    assert compare(base, cand, seed=3) == compare(base.copy(), list(cand), seed=3)
    assert compare(base, cand, seed=3)[1].ci != compare(base, cand, seed=4)[1].ci


def test_as_json() -> None:
    rng = np.random.default_rng(15)
    result = compare(latencies(rng, 200), latencies(rng, 200), metrics=["p95"])[0]
    document = result.as_json()
    assert set(document) == {
        "metric",
        "decision",
        "relative_change",
        "ci",
        "p_value",
        "baseline",
        "candidate",
        "shift_ms",
    }
    assert document["ci"] == list(result.ci)
    json.dumps(document, allow_nan=False)


def test_unbounded_interval_is_null_in_json_and_never_a_pass() -> None:
    # The median is 1 ms, but many resampled medians are 0 ms: the change is unbounded.
    base = [0.0] * 14 + [1.0] * 16
    result = compare(base, [1.0] * 30, metrics=["p50"])[0]
    assert result.ci[1] == math.inf
    assert result.decision != "no change"
    assert json.loads(json.dumps(result.as_json(), allow_nan=False))["ci"][1] is None


# --- bad input ---


@pytest.mark.parametrize(
    ("baseline", "candidate", "message"),
    [
        ([1.0] * 19, [1.0] * 30, "baseline: 19 samples; a comparison needs at least 20"),
        ([1.0] * 30, [1.0] * 29 + [math.nan], "candidate: samples must be finite"),
        ([1.0] * 29 + [math.inf], [1.0] * 30, "baseline: samples must be finite"),
        ([1.0] * 29 + [-1.0], [1.0] * 30, "baseline: latencies cannot be negative"),
        ([[1.0, 2.0]] * 30, [1.0] * 30, "baseline: expected one sample per value"),
        (["fast"] * 30, [1.0] * 30, "baseline: not a sequence of numbers"),
        ([0.0] * 30, [1.0] * 30, "baseline p50 is 0 ms: a relative change is undefined"),
    ],
)
def test_bad_samples(baseline: object, candidate: object, message: str) -> None:
    with pytest.raises(StatsError) as raised:
        compare(baseline, candidate)  # type: ignore[arg-type]
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, MlgateError)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metrics": ["p42"]}, "unknown metric 'p42'"),
        ({"metrics": []}, "no metric"),
        ({"metrics": ["p95", "p95"]}, "once"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"tolerance": math.nan}, "tolerance"),
        ({"confidence": 1.0}, "confidence"),
        ({"resamples": 10}, "resamples"),
    ],
)
def test_bad_parameters(options: dict[str, object], message: str) -> None:
    with pytest.raises(StatsError, match=message):
        compare([1.0] * 30, [1.0] * 30, **options)  # type: ignore[arg-type]


# --- properties ---

sample_pairs = st.tuples(
    st.integers(0, 2**32 - 1),  # seed of the data
    st.integers(40, 400),  # samples per side
    st.floats(0.05, 0.5),  # lognormal sigma
)


def _pair(seed: int, n: int, sigma: float, factor: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.lognormal(3, sigma, n), rng.lognormal(3, sigma, n + 7) * factor


FLIPPED = {
    "regression": "improvement",
    "improvement": "regression",
    "no change": "no change",
    "inconclusive": "inconclusive",
}


@settings(max_examples=25, deadline=None)
@given(sample_pairs, st.floats(1.0, 3.0))
def test_swapping_sides_mirrors_the_comparison(pair: tuple[int, int, float], factor: float) -> None:
    base, cand = _pair(*pair, factor)
    forward = compare(base, cand, metrics=["p50", "p95", "mean"])
    backward = compare(cand, base, metrics=["p50", "p95", "mean"])
    for f, b in zip(forward, backward, strict=True):
        assert b.relative_change == pytest.approx(1 / (1 + f.relative_change) - 1, abs=1e-12)
        assert np.sign(b.relative_change) == -np.sign(f.relative_change)
        assert b.shift_ms == pytest.approx(-f.shift_ms, abs=1e-9)
        assert b.p_value == pytest.approx(f.p_value, rel=1e-9)
        # A change of +x is one of 1/(1+x) - 1 backwards, so near the tolerance the decisions
        # can differ; well inside or beyond it they mirror each other.
        if f.ci[0] > 0.2 or f.ci[1] < -0.2 or -0.05 <= f.ci[0] <= f.ci[1] <= 0.05:
            assert b.decision == FLIPPED[f.decision]


@settings(max_examples=25, deadline=None)
@given(sample_pairs, st.floats(0.8, 1.5), st.integers(-20, 20))
def test_scaling_both_sides_changes_no_decision(
    pair: tuple[int, int, float], factor: float, exponent: int
) -> None:
    base, cand = _pair(*pair, factor)
    # A power of two scales floats exactly, so every resampled ratio is the same to the bit.
    scale = 2.0**exponent
    plain, scaled = compare(base, cand), compare(base * scale, cand * scale)
    for p, s in zip(plain, scaled, strict=True):
        assert (s.decision, s.ci, s.relative_change, s.p_value) == (
            p.decision,
            p.ci,
            p.relative_change,
            p.p_value,
        )
        assert s.shift_ms == pytest.approx(p.shift_ms * scale, rel=1e-9, abs=1e-300)
    # Milliseconds to microseconds: not exact in floating point, but no decision moves.
    in_us = compare(base * 1000, cand * 1000)
    assert [r.decision for r in in_us] == [r.decision for r in plain]


# --- a small calibration check (the real calibration runs real load: benchmarks/) ---


def test_few_false_alarms_on_a_a_data() -> None:
    regressions = 0
    for rep in range(40):
        rng = np.random.default_rng([20, rep])
        results = compare(
            latencies(rng, 2000), latencies(rng, 2000), metrics=["p50", "p95", "p99"], seed=rep
        )
        regressions += any(r.decision == "regression" for r in results)
    # Each metric's 95% interval alone decides (no p-value veto since the BH fix): about 2.5%
    # per metric lies entirely above zero on A/A data, fewer for all three together.
    assert regressions <= 2


def test_detects_a_25_percent_slower_p95() -> None:
    detected = 0
    for rep in range(40):
        rng = np.random.default_rng([21, rep])
        result = compare(
            latencies(rng, 2000), latencies(rng, 2000, scale=1.25), metrics=["p95"], seed=rep
        )[0]
        detected += result.decision == "regression"
    assert detected >= 38


# --- paired rounds (baseline and candidate loaded in interleaved rounds) ---


def drifting_rounds(
    rng: np.random.Generator, rounds: int, n: int, drift: float, shift: float = 1.0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Rounds in which the machine is faster or slower as a whole (by `drift`, relative), and
    both sides of a round see the same machine."""
    machine = rng.lognormal(0.0, drift, rounds)
    return (
        [latencies(rng, n, scale) for scale in machine],
        [latencies(rng, n, scale * shift) for scale in machine],
    )


def whole(rounds: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Rounds as compare_rounds takes them, each one time window."""
    return [[r] for r in rounds]


def test_rounds_interval_is_a_t_interval_of_per_round_log_ratios() -> None:
    base = [np.full(30, 10.0), np.full(30, 20.0), np.full(30, 10.0)]
    cand = [np.full(30, 11.0), np.full(30, 21.0), np.full(30, 12.0)]
    result = by_metric(stats.compare_rounds(whole(base), whole(cand), metrics=["p50"]))["p50"]
    logs = np.log([1.1, 1.05, 1.2])
    t = scipy_stats.ttest_1samp(logs, 0.0)
    half = scipy_stats.t.ppf(0.975, 2) * logs.std(ddof=1) / math.sqrt(3)
    assert result.relative_change == pytest.approx(math.expm1(logs.mean()))
    assert result.ci == pytest.approx(
        (math.expm1(logs.mean() - half), math.expm1(logs.mean() + half))
    )
    assert result.p_value == pytest.approx(t.pvalue)
    assert result.baseline == pytest.approx(10.0) and result.candidate == pytest.approx(12.0)


def test_rounds_cancel_machine_drift_that_fools_independent_samples() -> None:
    # The machine varies 10% between rounds. Pooled, the requests look independent, and two
    # separately measured baselines differ like a regression; paired rounds do not care.
    rng = np.random.default_rng(7)
    alarms_rounds = alarms_independent = 0
    for _ in range(100):
        base, cand = drifting_rounds(rng, 6, 1000, drift=0.10)
        alarms_rounds += any(
            c.decision == "regression" for c in stats.compare_rounds(whole(base), whole(cand))
        )
        other_run, _ = drifting_rounds(rng, 6, 1000, drift=0.10)
        pooled = compare(np.concatenate(other_run), np.concatenate(cand), resamples=500)
        alarms_independent += any(c.decision == "regression" for c in pooled)
    assert alarms_rounds <= 2
    assert alarms_independent >= 10


def test_rounds_detect_a_10_percent_slower_p95_despite_drift() -> None:
    rng = np.random.default_rng(11)
    detected = 0
    for _ in range(100):
        base, cand = drifting_rounds(rng, 6, 1000, drift=0.10, shift=1.10)
        detected += (
            by_metric(stats.compare_rounds(whole(base), whole(cand)))["p95"].decision
            == "regression"
        )
    assert detected >= 95


def test_rounds_with_the_same_ratio_everywhere_are_certain() -> None:
    base = [np.full(25, 10.0)] * 3
    same = by_metric(stats.compare_rounds(whole(base), whole(base), metrics=["p95"]))["p95"]
    assert (same.ci, same.p_value, same.decision) == ((0.0, 0.0), 1.0, "no change")
    slower = by_metric(
        stats.compare_rounds(whole(base), [[np.full(25, 15.0)]] * 3, metrics=["p95"])
    )
    assert slower["p95"].ci == pytest.approx((0.5, 0.5)) and slower["p95"].decision == "regression"


@pytest.mark.parametrize(
    ("base", "cand", "message"),
    [
        ([np.ones(30)] * 3, [np.ones(30)] * 2, "baseline has 3 rounds, candidate 2"),
        ([np.ones(30)], [np.ones(30)], "at least 2 rounds"),
        ([], [], "at least 2 rounds"),
        ([np.ones(30), np.ones(5)], [np.ones(30)] * 2, "baseline round 2: 5 samples"),
        ([np.ones(30)] * 2, [np.ones(30), np.zeros(30)], "round 2: p50 is 0 ms"),
    ],
)
def test_bad_rounds(base: list[np.ndarray], cand: list[np.ndarray], message: str) -> None:
    with pytest.raises(StatsError, match=message):
        stats.compare_rounds(whole(base), whole(cand), metrics=["p50"])


def test_a_round_in_time_windows_counts_the_mean_of_its_windows_log_ratios() -> None:
    # Round 1 in two windows: the candidate 10% slower in the first, as fast in the second
    # (a burst slowed both). Each window's ratio counts once; pooled, the round says less.
    base = [[np.full(30, 10.0), np.full(30, 20.0)], [np.full(60, 10.0)]]
    cand = [[np.full(30, 11.0), np.full(30, 20.0)], [np.full(60, 12.0)]]
    windowed = stats.round_log_ratios(stats.paired_windows(base, cand), ["p50"])
    assert windowed[:, 0] == pytest.approx([math.log(1.1) / 2, math.log(1.2)])
    pooled = [[np.concatenate(r)] for r in base], [[np.concatenate(r)] for r in cand]
    whole_logs = stats.round_log_ratios(stats.paired_windows(*pooled), ["p50"])
    assert whole_logs[:, 0] == pytest.approx([math.log(15.5 / 15.0), math.log(1.2)])
    result = by_metric(stats.compare_rounds(base, cand, metrics=["p50"]))["p50"]
    assert result.relative_change == pytest.approx(math.expm1(windowed.mean()))
    # The point estimates stay those of every sample pooled.
    assert (result.baseline, result.candidate) == pytest.approx((10.0, 12.0))


@pytest.mark.parametrize(
    ("base", "cand", "message"),
    [
        (
            [[np.ones(30)] * 2] * 2,
            [[np.ones(30)]] * 2,
            "round 1: baseline in 2 windows, candidate in 1",
        ),
        ([[]] * 2, [[]] * 2, "round 1: baseline in 0 windows"),
        (
            [[np.ones(30), np.ones(30)]] * 2,
            [[np.ones(30), np.ones(3)]] * 2,
            "candidate round 1 window 2: 3 samples",
        ),
    ],
)
def test_bad_windows(
    base: list[list[np.ndarray]], cand: list[list[np.ndarray]], message: str
) -> None:
    with pytest.raises(StatsError, match=message):
        stats.compare_rounds(base, cand, metrics=["p50"])


def test_judging_drawn_rounds_from_their_log_ratios_gives_compare_rounds_decisions() -> None:
    # The calibration benchmark judges thousands of trials of rounds from each round's
    # log-ratios; they must be what compare_rounds decides on the same rounds.
    rng = np.random.default_rng(3)
    base, cand = drifting_rounds(rng, 12, 400, drift=0.10, shift=1.06)
    metrics = list(stats.DEFAULT_METRICS)
    logs = stats.round_log_ratios(
        [[(np.sort(b), np.sort(c))] for b, c in zip(base, cand, strict=True)], metrics
    )
    decisions = set()
    for _ in range(30):
        picked = rng.choice(12, 4, replace=False)
        fast = stats.judge_log_ratios(logs[picked], metrics, tolerance=0.05)
        slow = stats.compare_rounds(
            [[base[i]] for i in picked], [[cand[i]] for i in picked], tolerance=0.05
        )
        for j, c in zip(fast, slow, strict=True):
            assert (j.metric, j.decision, j.p_value) == (c.metric, c.decision, c.p_value)
            assert j.ci == pytest.approx(c.ci) and j.relative_change == c.relative_change
            decisions.add(j.decision)
    assert len(decisions) >= 2  # the draws are not all alike


@pytest.mark.parametrize(
    ("logs", "message"),
    [
        (np.zeros((1, 3)), "at least 2 rounds"),
        (np.zeros((4, 2)), r"shape \(4, 2\): expected \(rounds, 3 metrics\)"),
        (np.zeros(4), "expected"),
    ],
)
def test_judging_log_ratios_refuses_what_no_interval_comes_from(
    logs: np.ndarray, message: str
) -> None:
    with pytest.raises(StatsError, match=message):
        stats.judge_log_ratios(logs, ["p50", "p95", "mean"])
