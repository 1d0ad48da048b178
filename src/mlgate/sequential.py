"""Deciding a champion comparison as soon as the data allows: always-valid one-sided confidence
sequences for the mean of paired rounds' log-ratios, and the rule that stops adding rounds.

Why not re-check a t interval after every round: each look is another chance for noise to
cross the tolerance, so the error rate grows with the number of looks (about 25% instead of 5%
over 60 looks, see tests/test_sequential.py). A confidence sequence holds at every round at
once: P(the true mean is above the upper bound at *some* round) <= 1 - confidence, so it stays
valid whenever the run stops, for whatever reason, and when `mlgate gate` re-judges it later
with another tolerance.

Why one-sided: the gate asks "no slowdown beyond the tolerance" (decision.non_inferiority). It
passes on the upper bound alone and fails on the lower bound alone, so each bound only has to
be wrong with probability alpha on its own side: a false pass (the upper bound below a true
mean) and a false fail (the lower bound above it) each have probability <= alpha, time-
uniformly. A two-sided sequence at alpha spends alpha on both sides together and is wider
(about 15% more rounds to a decision, see docs/sequential.md). The pair [lower, upper] is a
(1 - 2 alpha) two-sided sequence; the two-sided information decision (decision.decide) reads
the same pair, so an interval and its decisions always agree.

The sequences are the scale-invariant normal-mixture ones (Lai 1976; Wang & Ramdas 2023,
"Anytime-valid t-tests and confidence sequences for Gaussian means with unknown variance"),
mixed over a half-normal prior so that each watches one side. For rounds x_1..x_n (log-ratios,
taken as Gaussian with unknown variance) and a candidate mean m, with d = mean - m < 0,
w = n d^2 / sum (x - mean)^2, A = 1 + n r (r = MIXTURE), integrating the likelihood ratio of the
standardised effect delta = (true mean - m) / sd over delta ~ half-normal(variance r) on
delta < 0 and over the scale with the right Haar prior d sd / sd gives

    M_n(m) = 2 A^(-1/2) ((1 + w) / (1 + w / A))^(n/2) F_n(n sqrt(r w / (A + w))),

F_n the Student t distribution function with n degrees of freedom (from the scale integral of
the normal tail that the half prior leaves). By Wijsman's representation this is a likelihood
ratio of the scale-invariant part of the data for every delta, so under the mean m it is a
nonnegative martingale of mean 1 whatever the true sd, and so is any mixture of it; Ville's
inequality gives P(exists n: M_n(m) >= 1/alpha) <= alpha. The upper bound is the largest m with
M_n(m) < 1/alpha (M_n grows with w, so one root; the lower bound mirrors it). Unbounded while
even w -> infinity stays below 1/alpha (too few rounds to say anything). The symmetric prior's
closed form (the same without F_n and the 2) is kept in tests as a check.

Pure Python (no numpy): the gate recomputes it from the rounds stored in the evidence.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from mlgate.decision import GateOutcome, non_inferiority

# The prior variance of the standardised effect (mean / sd of a round's log-ratio). Tuned to
# the effect of interest, log(1.10) against a round's sd of 0.05-0.16 seen on busy runners
# (standardised 0.6-1.9): simulated, the average rounds an unchanged candidate needs to pass
# at a 10% tolerance are flat from r = 0.7 to 1.5 and lowest near 1 for those sds (at sd 0.1:
# 12.2 rounds at 0.7, 12.1 at 1, 12.2 at 1.5, 12.4 at 0.5, 13.2 at 0.3), so 1 it stays.
MIXTURE = 1.0
CONFIDENCE = 0.95
DEFAULT_MIN_ROUNDS = 6
DEFAULT_MAX_SECONDS = 900.0
# Bisection on log(w) over [-60, 700]: 120 halvings leave far less than a rounding error.
_LOG_W_RANGE = (-60.0, 700.0)
_HALVINGS = 120


def confidence_sequence(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The lower and upper bounds for the mean of `values` after len(values) rounds, each a
    one-sided always-valid bound at `confidence` (together a 2 * confidence - 1 two-sided
    sequence)."""
    n = len(values)
    critical = _critical_w(n, confidence) if n >= 2 else math.inf
    if math.isinf(critical):
        return (-math.inf, math.inf)
    mean = math.fsum(values) / n
    squares = math.fsum((v - mean) ** 2 for v in values)
    if squares == 0:  # every round gave the same ratio
        return (mean, mean)
    half = math.sqrt(critical * squares / n)
    return (mean - half, mean + half)


@functools.lru_cache(maxsize=1024)
def _critical_w(n: int, confidence: float) -> float:
    """The w at which M_n reaches 1/alpha: it depends on n and the confidence alone (the data
    enter only through w), so it is solved once per round count. Infinite when unbounded."""
    if not _bounded(n, confidence):
        return math.inf
    target = -math.log(1 - confidence)
    low, high = _LOG_W_RANGE
    if _log_martingale(math.exp(high), n) < target:
        return math.inf
    for _ in range(_HALVINGS):
        middle = (low + high) / 2
        if _log_martingale(math.exp(middle), n) < target:
            low = middle
        else:
            high = middle
    return math.exp(high)


def _log_martingale(w: float, n: int) -> float:
    """log M_n at the standardised squared distance w (see the module's docstring)."""
    spread = 1 + n * MIXTURE
    return (
        math.log(2)
        - 0.5 * math.log(spread)
        + n / 2 * (math.log1p(w) - math.log1p(w / spread))
        + math.log(_t_cdf(n * math.sqrt(MIXTURE * w / (spread + w)), n))
    )


def _bounded(n: int, confidence: float) -> bool:
    """Whether n rounds can bound the mean: M_n's limit as w -> infinity passes 1/alpha."""
    spread = 1 + n * MIXTURE
    limit = (
        math.log(2) + (n - 1) / 2 * math.log(spread) + math.log(_t_cdf(n * math.sqrt(MIXTURE), n))
    )
    return limit > -math.log(1 - confidence)


def _t_cdf(t: float, dof: int) -> float:
    """Student's t distribution function for a whole number of degrees of freedom, by the
    finite series in Abramowitz & Stegun 26.7.3-4 (checked against scipy in the tests)."""
    theta = math.atan(t / math.sqrt(dof))
    cos2, sin = math.cos(theta) ** 2, math.sin(theta)
    if dof % 2:
        term = total = 0.0
        if dof > 1:
            term = total = sin * math.cos(theta)
            for k in range(3, dof - 1, 2):
                term *= cos2 * (k - 1) / k
                total += term
        share = 2 / math.pi * (theta + total)
    else:
        term = total = 1.0
        for k in range(2, dof - 1, 2):
            term *= cos2 * (k - 1) / k
            total += term
        share = sin * total
    return (1 + share) / 2


def first_bounded_round(confidence: float = CONFIDENCE) -> int:
    """The fewest rounds whose confidence sequence is finite (4 at 95%): fewer can never decide."""
    n = 2
    while not _bounded(n, confidence):
        n += 1
    return n


def relative_interval(log_interval: tuple[float, float]) -> tuple[float, float]:
    """A log-ratio interval as an interval of the relative change (ratio - 1)."""
    return (_expm1(log_interval[0]), _expm1(log_interval[1]))


def _expm1(value: float) -> float:
    if value == math.inf:
        return math.inf
    if value == -math.inf:
        return -1.0
    return math.expm1(value)


def gate_outcome(outcomes: Sequence[GateOutcome]) -> GateOutcome:
    """The gate over every gated metric: pass only when each passes (an intersection-union
    test: the gate passes a candidate that regressed on some metric only if that metric's own
    test passed it wrongly, so the false-pass rate is at most one metric's, with no correction
    for multiplicity); fail when any fails; inconclusive otherwise."""
    if "fail" in outcomes:
        return "fail"
    if "inconclusive" in outcomes or not outcomes:
        return "inconclusive"
    return "pass"


@dataclass
class RoundPlan:
    """How many rounds a champion comparison loads: `fixed` rounds, or (fixed None) at least
    `min_rounds`, then one more while the gate is undecided and the next round still ends
    within `max_seconds` of `started`.

    `indices(log_ratios)` yields round numbers; before each round past the minimum it asks
    `log_ratios()` (per gated metric, the rounds so far) whether the gate is decided."""

    fixed: int | None
    min_rounds: int = DEFAULT_MIN_ROUNDS
    max_seconds: float = DEFAULT_MAX_SECONDS
    tolerance: float = 0.10
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic
    rounds: int = 0
    stopped: str = ""

    def indices(self, log_ratios: Callable[[], dict[str, list[float]] | None]) -> Iterator[int]:
        if self.fixed is not None:
            for index in range(self.fixed):
                self.rounds = index + 1
                yield index
            self.stopped = f"fixed: {self.fixed} rounds"
            return
        longest = 0.0
        index = 0
        while True:
            if index >= self.min_rounds:
                decided = self._decided(log_ratios())
                if decided:
                    self.stopped = decided
                    return
                elapsed = self.clock() - self.started
                # The next round is taken to last as long as the longest so far, and a quarter
                # more: server starts vary by more than that margin on a busy runner.
                if elapsed + 1.25 * longest > self.max_seconds:
                    self.stopped = (
                        f"budget: another round would end after max_seconds "
                        f"({self.max_seconds:g} s), {index} rounds in {elapsed:.0f} s"
                    )
                    return
            began = self.clock()
            yield index
            longest = max(longest, self.clock() - began)
            index += 1
            self.rounds = index

    @classmethod
    def of_fixed(cls, rounds: int) -> RoundPlan:
        """A fixed number of rounds, already run."""
        return cls(rounds, rounds=rounds, stopped=f"fixed: {rounds} rounds")

    def _decided(self, log_ratios: dict[str, list[float]] | None) -> str:
        if log_ratios is None:  # the comparison will refuse it: more rounds would not help
            return "a round cannot be compared (too few successful requests?)"
        # At CONFIDENCE, the level the load report judges the rounds at: stop when it would decide.
        outcomes = {
            metric: non_inferiority(relative_interval(confidence_sequence(values)), self.tolerance)
            for metric, values in log_ratios.items()
        }
        outcome = gate_outcome(list(outcomes.values()))
        if outcome == "pass":
            return f"decided: every gated metric passes ({', '.join(outcomes)})"
        if outcome == "fail":
            failed = [m for m, o in outcomes.items() if o == "fail"]
            return f"decided: {', '.join(failed)} beyond the tolerance"
        return ""

    def as_json(self) -> dict[str, object]:
        """How the run chose its rounds, for the evidence (`data.comparison.sequential`)."""
        if self.fixed is not None:
            return {"rule": "fixed", "rounds": self.rounds, "stopped": self.stopped}
        return {
            "rule": "auto",
            "rounds": self.rounds,
            "min_rounds": self.min_rounds,
            "max_seconds": self.max_seconds,
            "tolerance": self.tolerance,
            "stopped": self.stopped or "interrupted",
        }


def so_far(
    champion: Sequence[Sequence[Sequence[float]]], candidate: Sequence[Sequence[Sequence[float]]]
) -> Callable[[], dict[str, list[float]] | None]:
    """What `RoundPlan.indices` asks before another round: per default metric, the log-ratio
    of each round run so far (rounds given as their time windows, `stats.paired_windows`; the
    lists are read when called, as the rounds are added), or None when a round cannot be
    compared."""

    def log_ratios() -> dict[str, list[float]] | None:
        from mlgate import stats

        count = min(len(champion), len(candidate))
        try:
            rounds = stats.paired_windows(champion[:count], candidate[:count])
            logs = stats.round_log_ratios(rounds, stats.DEFAULT_METRICS)
        except stats.StatsError:
            return None
        return {
            metric: [round(float(v), 6) for v in logs[:, j]]
            for j, metric in enumerate(stats.DEFAULT_METRICS)
        }

    return log_ratios
