"""The always-valid confidence sequence (mlgate.sequential) and the rule that stops rounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from mlgate import sequential

ROUNDS = 60
RUNS = 2000


def _miscovered(rng: np.random.Generator, interval: object, first: int) -> float:
    """The share of runs of ROUNDS Gaussian rounds (mean 0, a random scale) in which the
    interval, computed after every round from `first` on, misses 0 at some round."""
    missed = 0
    for _ in range(RUNS):
        values = list(rng.normal(0.0, rng.uniform(0.01, 0.3), ROUNDS))
        for n in range(first, ROUNDS + 1):
            low, high = interval(values[:n])  # type: ignore[operator]
            if low > 0 or high < 0:
                missed += 1
                break
    return missed / RUNS


_T = {n: float(scipy_stats.t.ppf(0.975, n - 1)) for n in range(2, ROUNDS + 1)}


def _t_interval(values: list[float]) -> tuple[float, float]:
    n = len(values)
    half = _T[n] * float(np.std(values, ddof=1)) / math.sqrt(n)
    mean = float(np.mean(values))
    return (mean - half, mean + half)


def test_confidence_sequence_holds_at_every_round_where_a_rechecked_t_interval_does_not() -> None:
    rng = np.random.default_rng(2023)
    alpha = 1 - sequential.CONFIDENCE
    # Monte Carlo error of a rate near 5% over RUNS runs: sd ~0.5%; 3 sd of slack.
    slack = 3 * math.sqrt(alpha * (1 - alpha) / RUNS)
    sequence = _miscovered(rng, sequential.confidence_sequence, 2)
    assert sequence <= alpha + slack
    # A t interval looked at after every round, from the load stage's minimum of 6 on, misses
    # far more often than its nominal 5%: what the sequence is for.
    rechecked = _miscovered(rng, _t_interval, sequential.DEFAULT_MIN_ROUNDS)
    assert rechecked > alpha + slack
    assert rechecked > 2 * sequence


def test_confidence_sequence_formula_by_hand() -> None:
    values = [0.1, -0.05, 0.2, 0.0, 0.15, 0.05, 0.12, -0.02]
    n, mean = len(values), sum(values) / len(values)
    squares = sum((v - mean) ** 2 for v in values)

    def martingale(m: float) -> float:
        y = [v - m for v in values]
        total, sq = sum(y), sum(v * v for v in y)
        return float((1 + n) ** -0.5 * (sq / (sq - total**2 / (1 + n))) ** (n / 2))

    low, high = sequential.confidence_sequence(values)
    assert (low + high) / 2 == pytest.approx(mean)
    # The bounds are where the mixture martingale reaches 1/alpha = 20.
    assert martingale(low) == pytest.approx(20, rel=1e-6)
    assert martingale(high) == pytest.approx(20, rel=1e-6)
    assert martingale(mean) < 20
    assert squares > 0


def test_confidence_sequence_is_unbounded_with_too_few_rounds_and_a_point_when_constant() -> None:
    assert sequential.confidence_sequence([0.1]) == (-math.inf, math.inf)
    assert sequential.confidence_sequence([0.1, 0.3]) == (-math.inf, math.inf)
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
