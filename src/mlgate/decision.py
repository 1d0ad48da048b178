"""The decision rules of a comparison, without numpy: the gate re-applies the policy's tolerance
to intervals the stages stored, and must not need the statistics stack to do so.

Both rules read only the interval, so an interval and its decision always agree: an interval
entirely above zero is never "inconclusive" about the direction.
"""

from __future__ import annotations

from typing import Literal

Decision = Literal["regression", "improvement", "no change", "inconclusive"]
GateOutcome = Literal["pass", "fail", "inconclusive"]


def decide(ci: tuple[float, float], tolerance: float) -> Decision:
    """Two-sided, as information: `ci` is the confidence interval of the relative change
    (+0.12: 12% slower).

    A change is called when the interval excludes zero and the change may exceed the tolerance;
    "no change" needs the whole interval inside the tolerance; an interval across zero and
    beyond the tolerance is inconclusive.
    """
    low, high = ci
    if low > 0 and high > tolerance:
        return "regression"
    if high < 0 and low < -tolerance:
        return "improvement"
    if -tolerance <= low and high <= tolerance:
        return "no change"
    return "inconclusive"


def non_inferiority(ci: tuple[float, float], tolerance: float) -> GateOutcome:
    """The gate's one-sided question, "no slowdown beyond the tolerance": pass when the upper
    bound is within it, fail when the lower bound is beyond it, inconclusive in between. How
    much faster the candidate may be does not matter to it."""
    low, high = ci
    if high <= tolerance:
        return "pass"
    if low > tolerance:
        return "fail"
    return "inconclusive"
