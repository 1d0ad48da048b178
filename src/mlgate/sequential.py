"""Deciding a champion comparison as soon as the data allows: an always-valid confidence
sequence for the mean of paired rounds' log-ratios, and the rule that stops adding rounds.

Why not re-check a t interval after every round: each look is another chance for noise to
cross the tolerance, so the error rate grows with the number of looks (about 25% instead of 5%
over 60 looks, see tests/test_sequential.py). A confidence sequence holds at every round at
once: P(the true mean is outside the interval at *some* round) <= 1 - confidence, so it stays
valid whenever the run stops, for whatever reason, and when `mlgate gate` re-judges it later
with another tolerance.

The sequence is the scale-invariant normal-mixture one (Lai 1976; Wang & Ramdas 2023,
"Anytime-valid t-tests and confidence sequences for Gaussian means with unknown variance"):
for rounds x_1..x_n (log-ratios, taken as Gaussian with unknown variance) and a candidate mean
m, with y_i = x_i - m, mixing the likelihood of the scale-invariant part of y over a normal
prior of the standardised effect (variance `MIXTURE`) gives the test martingale

    M_n(m) = (1 + n r)^(-1/2) * (sum y^2 / (sum y^2 - r (sum y)^2 / (1 + n r)))^(n/2),

M_1 = 1. By Ville's inequality P(exists n: M_n(m) >= 1/alpha) <= alpha under the mean m, so
{m: M_n(m) < 1/alpha} is a (1 - alpha) confidence sequence. Solved for m it is the mean of the
rounds +- s * sqrt((n - 1)/n * (K - 1) (1 + n r) / (1 + n r - K)), K = ((1 + n r)/alpha^2)^(1/n),
s their standard deviation; unbounded while K >= 1 + n r (too few rounds to say anything).

Pure Python (no numpy): the gate recomputes it from the rounds stored in the evidence.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from mlgate.decision import GateOutcome, non_inferiority

# The prior variance of the standardised effect (mean / sd of a round's log-ratio). 1 keeps the
# sequence within ~1.7x of a fixed t interval from 8 to 60 rounds (at n = 12: 3.7 s/sqrt(n)
# against the t interval's 2.2), where champion comparisons stop.
MIXTURE = 1.0
CONFIDENCE = 0.95
DEFAULT_MIN_ROUNDS = 6
DEFAULT_MAX_SECONDS = 900.0


def confidence_sequence(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The confidence sequence's interval for the mean of `values` after len(values) rounds."""
    n = len(values)
    if n < 2:
        return (-math.inf, math.inf)
    mean = math.fsum(values) / n
    squares = math.fsum((v - mean) ** 2 for v in values)
    spread = 1 + n * MIXTURE
    log_k = (math.log(spread) - 2 * math.log(1 - confidence)) / n
    if log_k >= math.log(spread):
        return (-math.inf, math.inf)
    if squares == 0:  # every round gave the same ratio
        return (mean, mean)
    k = math.exp(log_k)
    half = math.sqrt(squares / n * (k - 1) * spread / (spread - k))
    return (mean - half, mean + half)


def first_bounded_round(confidence: float = CONFIDENCE) -> int:
    """The fewest rounds whose confidence sequence is finite (5 at 95%): fewer can never decide."""
    n = 2
    while math.log(1 + n * MIXTURE) - 2 * math.log(1 - confidence) >= n * math.log(1 + n * MIXTURE):
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
    confidence: float = CONFIDENCE
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
        outcomes = {
            metric: non_inferiority(
                relative_interval(confidence_sequence(values, self.confidence)), self.tolerance
            )
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
    champion: Sequence[Sequence[float]], candidate: Sequence[Sequence[float]]
) -> Callable[[], dict[str, list[float]] | None]:
    """What `RoundPlan.indices` asks before another round: per default metric, the log-ratio
    of each round run so far (the lists are read when called, as the rounds are added), or
    None when a round cannot be compared."""

    def log_ratios() -> dict[str, list[float]] | None:
        import numpy as np

        from mlgate import stats

        count = min(len(champion), len(candidate))
        try:
            pairs = [
                (
                    np.sort(stats._samples("champion", champion[i])),
                    np.sort(stats._samples("candidate", candidate[i])),
                )
                for i in range(count)
            ]
            logs = stats.round_log_ratios(pairs, stats.DEFAULT_METRICS)
        except stats.StatsError:
            return None
        return {
            metric: [round(float(v), 6) for v in logs[:, j]]
            for j, metric in enumerate(stats.DEFAULT_METRICS)
        }

    return log_ratios
