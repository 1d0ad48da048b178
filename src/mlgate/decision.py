"""The decision rule of a comparison, without numpy: the gate re-applies the policy's tolerance
to intervals the stages stored, and must not need the statistics stack to do so."""

from __future__ import annotations

from typing import Literal

Decision = Literal["regression", "improvement", "no change", "inconclusive"]


def decide(ci: tuple[float, float], p_value: float, tolerance: float, fdr: float) -> Decision:
    """`ci`: confidence interval of the relative change; `p_value`: adjusted across metrics.

    A change is called only when it is significant and can exceed the tolerance; "no change"
    needs the whole interval inside the tolerance; anything else cannot be told apart and is
    inconclusive — never a pass.
    """
    low, high = ci
    if low > 0 and high > tolerance and p_value < fdr:
        return "regression"
    if high < 0 and low < -tolerance and p_value < fdr:
        return "improvement"
    if -tolerance <= low and high <= tolerance:
        return "no change"
    return "inconclusive"
