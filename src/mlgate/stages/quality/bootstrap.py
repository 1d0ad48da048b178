"""The comparison of the two models on one scope (all rows, or each slice value): values, paired
percentile bootstrap intervals of the difference, and McNemar's test for accuracy."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlgate.stages.quality import rules
from mlgate.stages.quality.config import HIGHER_IS_BETTER, TASK_METRICS, QualityConfig
from mlgate.stages.quality.errors import Invalid
from mlgate.stages.quality.metrics import Outputs, statistics

if TYPE_CHECKING:
    import numpy as np

    from mlgate.stages.quality.metrics import FloatArray, IntArray, Statistic

# Bootstrap weights are drawn in chunks of at most this many (resample, row) cells, which bounds
# memory at a few arrays of 16 MiB whatever the number of rows.
_CHUNK = 1 << 21
# An interval needs this share of resamples where the metric is defined (ROC AUC is not when a
# resample of a small slice holds one label only).
_MIN_DEFINED_SHARE = 0.9


@dataclass(frozen=True)
class Settings:
    task: str
    resamples: int
    confidence: float
    seed: int
    deadline: Deadline


class Deadline:
    """The stage's timeout, checked between steps: a model predicts in this process and cannot
    be stopped midway."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def check(self, doing: str) -> None:
        if time.monotonic() > self._end:
            raise Invalid(f"{doing} did not finish within the stage timeout of {self.seconds:g} s")


def bootstrap_weights(rows: int, resamples: int, rng: np.random.Generator) -> FloatArray:
    """How often each row is drawn in each resample (resamples x rows): rows drawn with
    replacement, as counts, so that every metric is a weighted sum over the rows."""
    import numpy as np

    drawn = rng.integers(0, rows, size=(resamples, rows), dtype=np.int32)
    weights = np.empty((resamples, rows))
    for index, draws in enumerate(drawn):
        # Row by row: a bincount of one resample stays in cache (3x faster than one flat one).
        weights[index] = np.bincount(draws, minlength=rows)
    return weights


def _intervals(
    settings: Settings,
    candidate: dict[str, Statistic],
    champion: dict[str, Statistic],
    metrics: list[str],
    rows: int,
    stream: int,
) -> dict[str, dict[str, Any] | None]:
    """Percentile bounds of candidate - champion, per metric, from the same resamples: the
    two-sided interval and the one-sided bounds (rules.bootstrap_bounds)."""
    import numpy as np

    rng = np.random.default_rng([settings.seed, stream])
    # Per metric, the candidate's and the champion's value in each resample.
    replicates = {metric: np.empty((2, settings.resamples)) for metric in metrics}
    step = max(1, _CHUNK // rows)
    for start in range(0, settings.resamples, step):
        stop = min(start + step, settings.resamples)
        weights = bootstrap_weights(rows, stop - start, rng)
        for metric in metrics:
            replicates[metric][0, start:stop] = candidate[metric](weights)
            replicates[metric][1, start:stop] = champion[metric](weights)
        settings.deadline.check("the bootstrap")
    return {
        metric: rules.bootstrap_bounds(ours, theirs, settings.confidence, _MIN_DEFINED_SHARE)
        for metric, (ours, theirs) in replicates.items()
    }


def _mcnemar(truth: IntArray, candidate: IntArray, champion: IntArray) -> dict[str, object]:
    """McNemar's exact test: of the rows exactly one model gets right, is the split even?"""
    import numpy as np
    from scipy.stats import binomtest  # type: ignore[import-untyped]

    candidate_right = candidate == truth
    champion_right = champion == truth
    only_candidate = int(np.count_nonzero(candidate_right & ~champion_right))
    only_champion = int(np.count_nonzero(champion_right & ~candidate_right))
    discordant = only_candidate + only_champion
    p_value = float(binomtest(only_candidate, discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "p_value": p_value,
        "only_candidate_right": only_candidate,
        "only_champion_right": only_champion,
    }


def measure(
    settings: Settings,
    truth: Any,
    candidate: Outputs,
    champion: Outputs | None,
    stream: int,
    with_intervals: bool,
) -> tuple[list[dict[str, object]], list[str]]:
    """Metric entries of one scope (all rows, or one slice), and notes on what is missing."""
    import numpy as np

    rows = int(truth.size)
    candidate_stats, candidate_notes = statistics(settings.task, truth, candidate)
    notes = [f"candidate: {n}" for n in candidate_notes]
    champion_stats: dict[str, Statistic] = {}
    if champion is not None:
        champion_stats, champion_notes = statistics(settings.task, truth, champion)
        notes += [f"champion: {n}" for n in champion_notes]
    everyone = np.ones((1, rows))
    compared = [
        m for m in TASK_METRICS[settings.task] if m in candidate_stats and m in champion_stats
    ]
    intervals = (
        _intervals(settings, candidate_stats, champion_stats, compared, rows, stream)
        if with_intervals and compared
        else {}
    )
    entries: list[dict[str, object]] = []
    for metric in TASK_METRICS[settings.task]:
        ours = _finite(candidate_stats[metric](everyone)[0]) if metric in candidate_stats else None
        theirs = _finite(champion_stats[metric](everyone)[0]) if metric in champion_stats else None
        if ours is None and theirs is None:
            continue
        interval = intervals.get(metric)
        entry: dict[str, object] = {
            "metric": metric,
            "candidate": ours,
            "champion": theirs,
            "difference": ours - theirs if ours is not None and theirs is not None else None,
            "ci": interval["ci"] if interval is not None else None,
            "one_sided": interval["one_sided"] if interval is not None else None,
            "one_sided_relative": interval["one_sided_relative"] if interval is not None else None,
            "p_value": None,
            "higher_is_better": HIGHER_IS_BETTER[metric],
        }
        if metric == "accuracy" and champion is not None:
            test = _mcnemar(truth, candidate.predicted, champion.predicted)
            entry["p_value"] = test.pop("p_value")
            entry["mcnemar"] = test
        entries.append(entry)
        if with_intervals and metric in compared and interval is None:
            notes.append(f"{metric}: no interval, undefined in too many resamples")
    return entries, notes


def slices(
    settings: Settings,
    frame: Any,
    config: QualityConfig,
    truth: Any,
    candidate: Outputs,
    champion: Outputs | None,
) -> list[dict[str, object]]:
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]

    results: list[dict[str, object]] = []
    stream = 0
    for column in config.slices:
        values = frame[column]
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        if len(uniques) > config.max_slice_values:
            raise Invalid(
                f"slice column {column!r} has {len(uniques)} distinct values, more than "
                f"max_slice_values ({config.max_slice_values}): an identifier, not a segment?"
            )
        labelled = sorted(
            ((None if _missing(v) else str(v), i) for i, v in enumerate(uniques)),
            key=lambda pair: (pair[0] is None, pair[0] or ""),
        )
        for label, code in labelled:
            stream += 1
            rows = np.flatnonzero(codes == code)
            enough = rows.size >= config.min_slice_rows
            entries, notes = measure(
                settings,
                truth[rows],
                candidate.take(rows),
                champion.take(rows) if champion is not None else None,
                stream,
                enough,
            )
            if not enough:
                notes.insert(
                    0, f"{rows.size} rows, fewer than {config.min_slice_rows}: values only"
                )
            results.append(
                {
                    "column": column,
                    "value": label,
                    "rows": int(rows.size),
                    "judged": bool(enough),
                    "metrics": entries,
                    "note": "; ".join(notes) if notes else None,
                }
            )
    return results


def _missing(value: object) -> bool:
    """None, NaN, pandas' NA or NaT: a row whose segment is not known."""
    import pandas as pd

    return value is None or bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
