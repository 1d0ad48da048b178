"""The always-valid confidence sequence (mlgate.sequential) and the rule that stops rounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from mlgate import sequential
from mlgate.decision import decide, non_inferiority

ROUNDS = 60
RUNS = 2000
TOLERANCE = 0.10


def _misses(rng: np.random.Generator, interval: object, first: int, side: str) -> float:
    """The share of runs of ROUNDS Gaussian rounds (mean 0, a random scale) in which the
    interval, computed after every round from `first` on, misses 0 at some round: on its
    `side` ("upper": the upper bound below 0; "lower": the lower bound above it; "either")."""
    missed = 0
    for _ in range(RUNS):
        values = list(rng.normal(0.0, rng.uniform(0.01, 0.3), ROUNDS))
        for n in range(first, ROUNDS + 1):
            low, high = interval(values[:n])  # type: ignore[operator]
            if (side != "upper" and low > 0) or (side != "lower" and high < 0):
                missed += 1
                break
    return missed / RUNS


_T = {n: float(scipy_stats.t.ppf(0.975, n - 1)) for n in range(2, ROUNDS + 1)}
ALPHA = 1 - sequential.CONFIDENCE
# Monte Carlo error of a rate near 5% over RUNS runs: sd ~0.5%; 3 sd of slack.
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)


def _t_interval(values: list[float]) -> tuple[float, float]:
    n = len(values)
    half = _T[n] * float(np.std(values, ddof=1)) / math.sqrt(n)
    mean = float(np.mean(values))
    return (mean - half, mean + half)


def _two_sided_sequence(values: list[float]) -> tuple[float, float]:
    """The symmetric normal mixture's two-sided 95% sequence (what auto rounds used before the
    bounds became one-sided), in closed form: the mean +- s sqrt((n-1)/n (K-1) A / (A-K)),
    A = 1 + n r, K = (A / alpha^2)^(1/n); unbounded while K >= A."""
    n = len(values)
    spread = 1 + n * sequential.MIXTURE
    k = (spread / ALPHA**2) ** (1 / n)
    mean = sum(values) / n
    if k >= spread:
        return (-math.inf, math.inf)
    squares = sum((v - mean) ** 2 for v in values)
    half = math.sqrt(squares / n * (k - 1) * spread / (spread - k))
    return (mean - half, mean + half)


@pytest.mark.parametrize("side", ["upper", "lower"])
def test_each_bound_holds_at_every_round_where_a_rechecked_t_interval_does_not(side: str) -> None:
    rng = np.random.default_rng(2023)
    # Each bound is a one-sided sequence at alpha: however often it is looked at (here after
    # every round from the 2nd to the 60th), it is wrong on its side in at most alpha of runs.
    sequence = _misses(rng, sequential.confidence_sequence, 2, side)
    assert sequence <= ALPHA + SLACK
    # A t interval looked at after every round, from the load stage's minimum of 6 on, misses
    # far more often than its nominal 5% (2.5% a side): what the sequence is for.
    rechecked = _misses(rng, _t_interval, sequential.DEFAULT_MIN_ROUNDS, side)
    assert rechecked > ALPHA / 2 + SLACK
    assert rechecked > 2 * sequence


def test_bounds_are_where_the_half_normal_mixture_reaches_one_over_alpha() -> None:
    """The closed form against the mixture it stands for, integrated numerically: the Gaussian
    likelihood of the rounds shifted by m, with the standardised effect drawn from a half-
    normal prior (variance MIXTURE) on the bound's side and the scale from the Haar prior."""
    from scipy import integrate

    values = [0.1, -0.05, 0.2, 0.0, 0.15, 0.05, 0.12, -0.02]
    n, r = len(values), sequential.MIXTURE

    def mixture(m: float, side: float) -> float:
        y = [v - m for v in values]
        squares, total = sum(v * v for v in y), sum(y)
        centre = math.log(math.sqrt(squares / n))  # where the scale's integrand peaks

        def likelihood(delta: float, log_sd: float) -> float:
            scaled = math.exp(-log_sd)
            log_value = (
                -n * (log_sd - centre)
                - (squares * scaled**2 - 2 * delta * total * scaled + n * delta**2 - n) / 2
            )
            return math.exp(log_value)

        def over_scale(delta: float) -> float:
            return float(
                integrate.quad(
                    lambda u: likelihood(delta, u), centre - 8, centre + 8, epsabs=0, limit=200
                )[0]
            )

        def prior(delta: float) -> float:
            return 2 * math.exp(-(delta**2) / (2 * r)) / math.sqrt(2 * math.pi * r)

        span = (-12.0, 0.0) if side < 0 else (0.0, 12.0)
        mixed = integrate.quad(lambda d: over_scale(d) * prior(d), *span, epsabs=0, limit=200)
        return float(mixed[0]) / over_scale(0.0)

    low, high = sequential.confidence_sequence(values)
    mean = sum(values) / n
    assert (low + high) / 2 == pytest.approx(mean)
    # The upper bound: where the mixture over effects below m reaches 1/alpha = 20; the lower
    # bound mirrors it; at the mean neither side has evidence.
    assert mixture(high, -1) == pytest.approx(20, rel=1e-6)
    assert mixture(low, +1) == pytest.approx(20, rel=1e-6)
    assert mixture(mean, -1) < 1


def test_t_distribution_function_matches_scipy() -> None:
    for dof in (1, 2, 3, 4, 5, 8, 13, 40, 101):
        for t in (-30.0, -3.0, -0.5, 0.0, 1.2, 4.0, 30.0):
            expected = float(scipy_stats.t.cdf(t, dof))
            assert sequential._t_cdf(t, dof) == pytest.approx(expected, abs=1e-12)


def _gate_run(
    rng: np.random.Generator, shift: float, interval: object, most: int = 40
) -> tuple[str, str, int]:
    """One simulated auto-rounds run of Gaussian log-ratios (true mean `shift`, a round's sd
    drawn from 0.03-0.16 as seen quiet and busy) judged after every round from the 6th on, as
    RoundPlan does, until the gate decides or `most` rounds: its gate outcome, the two-sided
    decision at the stop, and the rounds."""
    values = list(rng.normal(shift, rng.uniform(0.03, 0.16), most))
    for n in range(sequential.DEFAULT_MIN_ROUNDS, most + 1):
        ci = sequential.relative_interval(interval(values[:n]))  # type: ignore[operator]
        outcome = non_inferiority(ci, TOLERANCE)
        if outcome != "inconclusive" or n == most:
            return outcome, decide(ci, TOLERANCE), n
    raise AssertionError("unreachable")


def test_gate_error_rates_hold_under_repeated_looks() -> None:
    """The gate's false pass (a candidate exactly 10% slower passes) and false fail (an
    unchanged one fails) stay within alpha when the gate looks after every round and stops
    at the first decision; so does the information decision's false "regression"."""
    rng = np.random.default_rng(12)
    runs = 1000
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    at_tolerance = [
        _gate_run(rng, math.log1p(TOLERANCE), sequential.confidence_sequence) for _ in range(runs)
    ]
    unchanged = [_gate_run(rng, 0.0, sequential.confidence_sequence) for _ in range(runs)]
    false_pass = sum(o == "pass" for o, _, _ in at_tolerance) / runs
    false_fail = sum(o == "fail" for o, _, _ in unchanged) / runs
    false_regression = sum(d == "regression" for _, d, _ in unchanged) / runs
    assert false_pass <= ALPHA + slack
    assert false_fail <= ALPHA + slack
    assert false_regression <= ALPHA + slack
    # Not vacuous: most unchanged runs pass within the 40 rounds, most at-tolerance ones fail
    # or run out undecided (the gate cannot tell 10% from just under it).
    assert sum(o == "pass" for o, _, _ in unchanged) / runs > 0.9


def test_one_sided_bounds_decide_sooner_than_a_two_sided_sequence() -> None:
    """The gate's question is one-sided; spending alpha on one side (at the same error per
    side) narrows the bounds, so an unchanged candidate passes in fewer rounds."""
    rng = np.random.default_rng(7)
    seeds = rng.integers(0, 2**32, 400)
    one = [_gate_run(np.random.default_rng(s), 0.0, sequential.confidence_sequence) for s in seeds]
    two = [_gate_run(np.random.default_rng(s), 0.0, _two_sided_sequence) for s in seeds]
    one_rounds = sum(n for _, _, n in one) / len(one)
    two_rounds = sum(n for _, _, n in two) / len(two)
    assert one_rounds < 0.95 * two_rounds
    # Narrower at every round count, by the same factor whatever the data.
    values = list(np.random.default_rng(3).normal(0.0, 0.1, 40))
    for n in (6, 12, 24, 40):
        low, high = sequential.confidence_sequence(values[:n])
        two_low, two_high = _two_sided_sequence(values[:n])
        assert two_low < low < high < two_high


def test_confidence_sequence_is_unbounded_with_too_few_rounds_and_a_point_when_constant() -> None:
    assert sequential.confidence_sequence([0.1]) == (-math.inf, math.inf)
    assert sequential.confidence_sequence([0.1, 0.3]) == (-math.inf, math.inf)
    assert sequential.confidence_sequence([0.1, 0.3, 0.2]) == (-math.inf, math.inf)
    assert sequential.first_bounded_round() == 4
    assert math.isfinite(sequential.confidence_sequence([0.1, 0.3, 0.2, 0.25])[1])
    assert sequential.confidence_sequence([0.1] * 8) == (0.1, 0.1)
    low, high = sequential.relative_interval((-math.inf, math.inf))
    assert low == -1.0 and high == math.inf


def test_confidence_sequence_is_wider_than_a_fixed_t_interval_but_not_by_much() -> None:
    rng = np.random.default_rng(5)
    values = list(rng.normal(0.0, 0.16, 12))
    low, high = sequential.confidence_sequence(values)
    t_low, t_high = _t_interval(values)
    assert 1 < (high - low) / (t_high - t_low) < 2


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (["pass", "pass", "pass"], "pass"),
        (["pass", "inconclusive", "pass"], "inconclusive"),
        (["pass", "inconclusive", "fail"], "fail"),
        ([], "inconclusive"),
    ],
)
def test_gate_passes_only_when_every_gated_metric_passes(
    outcomes: list[str], expected: str
) -> None:
    assert sequential.gate_outcome(outcomes) == expected  # type: ignore[arg-type]


class FakeClock:
    """Rounds of 10 s each, counted by the plan's own clock (no sleeping)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(plan: sequential.RoundPlan, logs: dict[str, list[float]], clock: FakeClock) -> int:
    seen: dict[str, list[float]] = {m: [] for m in logs}
    for index in plan.indices(lambda: seen):
        clock.now += 10
        for metric, values in logs.items():
            seen[metric].append(values[index])
    return plan.rounds


def test_auto_rounds_stop_once_every_metric_passes() -> None:
    clock = FakeClock()
    rng = np.random.default_rng(1)
    logs = {m: list(rng.normal(0.0, 0.01, 100)) for m in ("p50", "p95", "mean")}
    plan = sequential.RoundPlan(None, min_rounds=6, max_seconds=1000, started=0, clock=clock)
    assert _run(plan, logs, clock) == 6
    assert plan.stopped.startswith("decided: every gated metric passes")
    assert plan.as_json()["rule"] == "auto"


def test_auto_rounds_stop_when_a_metric_fails() -> None:
    clock = FakeClock()
    rng = np.random.default_rng(2)
    logs = {"p50": list(rng.normal(0.0, 0.01, 100)), "p95": list(rng.normal(0.4, 0.01, 100))}
    plan = sequential.RoundPlan(None, min_rounds=6, max_seconds=1000, started=0, clock=clock)
    assert _run(plan, logs, clock) == 6
    assert plan.stopped == "decided: p95 beyond the tolerance"


def test_auto_rounds_go_on_while_undecided_until_the_budget() -> None:
    clock = FakeClock()
    rng = np.random.default_rng(3)
    logs = {"p95": list(rng.normal(0.08, 0.3, 100))}  # near the tolerance, noisy: undecided
    plan = sequential.RoundPlan(None, min_rounds=6, max_seconds=200, started=0, clock=clock)
    rounds = _run(plan, logs, clock)
    # 10 s a round, taken as 12.5 s (a quarter's margin for slower server starts): the 19th
    # is expected to end at 192.5 s, the 20th at 202.5 s, after the budget.
    assert rounds == 19
    assert plan.stopped.startswith("budget: another round would end after max_seconds (200 s)")


def test_fixed_rounds_run_them_all() -> None:
    clock = FakeClock()
    logs = {"p95": [0.0] * 10}
    plan = sequential.RoundPlan(6, clock=clock)
    assert _run(plan, logs, clock) == 6
    assert plan.as_json() == {"rule": "fixed", "rounds": 6, "stopped": "fixed: 6 rounds"}
