"""What would decide an inconclusive comparison: roughly how much more data.

An interval's width shrinks like 1/sqrt(n). An interval of width w around an estimate that lies
`margin` from the nearest bound that decides (a tolerance, or zero) decides once its half-width
is below that margin, so n_needed ~ n * (w / (2 * margin))**2. The interval is not symmetric and
the estimate moves with more data, so this is a rough figure, said as such.
"""

from __future__ import annotations

import math

# Beyond this many times the data measured, more of the same will not help in practice.
_HOPELESS = 100


def needed(n: int, width: float, margin: float) -> int | None:
    """The rough number of rows (rounds, requests) to decide; None when the estimate sits on a
    bound (more data would not decide it) or the inputs are not a measurement."""
    if n <= 0 or not (math.isfinite(width) and math.isfinite(margin)) or width <= 0:
        return None
    if margin <= 0:
        return None
    return max(n + 1, math.ceil(n * (width / (2 * margin)) ** 2))


def what_would_decide(n: int, width: float, margin: float, unit: str) -> str:
    """One clause for an inconclusive rule's reason, e.g. 'roughly 1,800 rows would decide it
    (now 450)'. `unit` is plural ('rows', 'rounds')."""
    count = needed(n, width, margin)
    if n <= 0 or not (math.isfinite(width) and width > 0):
        return f"more {unit} would narrow the interval"
    if count is None:
        return f"the estimate sits on the tolerance: more {unit} (now {n:,}) may not decide it"
    if count > _HOPELESS * n:
        return (
            f"only far more {unit} would decide it (roughly {_rounded(count):,}, now {n:,}): "
            f"the change is too close to the tolerance"
        )
    return f"roughly {_rounded(count):,} {unit} would decide it (now {n:,})"


def _rounded(count: int) -> int:
    """Two significant figures: the figure is rough and should read so."""
    if count < 100:
        return count
    scale: int = 10 ** (len(str(count)) - 2)
    return math.ceil(count / scale) * scale
