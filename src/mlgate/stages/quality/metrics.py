"""The quality metrics as functions of bootstrap weights: one vectorised code path gives a
metric's value (unit weights) and its resamples, equal to scikit-learn's with sample weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]
    IntArray = npt.NDArray[np.int64]
    BoolArray = npt.NDArray[np.bool_]
    # Bootstrap weights (resamples x rows: how often each row was drawn) -> one value per resample.
    Statistic = Callable[[FloatArray], FloatArray]


@dataclass(frozen=True)
class Outputs:
    """One model's predictions in the stage's encoding: class codes (classification) or
    floats (regression); probabilities with the code of each column."""

    predicted: Any
    probabilities: Any = None
    probability_codes: Any = None
    notes: tuple[str, ...] = ()

    def take(self, rows: Any) -> Outputs:
        return Outputs(
            self.predicted[rows],
            None if self.probabilities is None else self.probabilities[rows],
            self.probability_codes,
            self.notes,
        )


def statistics(task: str, truth: Any, outputs: Outputs) -> tuple[dict[str, Statistic], list[str]]:
    """Each measurable metric of one model, as a function of bootstrap weights; and notes on
    the metrics that cannot be measured here."""
    if task == "regression":
        return _regression_statistics(truth, outputs.predicted), []
    return _classification_statistics(truth, outputs)


def _weighted_mean(values: FloatArray) -> Statistic:
    def statistic(weights: FloatArray) -> FloatArray:
        result: FloatArray = (weights @ values) / weights.sum(axis=1)
        return result

    return statistic


def _classification_statistics(
    truth: IntArray, outputs: Outputs
) -> tuple[dict[str, Statistic], list[str]]:
    import numpy as np

    predicted = outputs.predicted
    statistics: dict[str, Statistic] = {
        "accuracy": _weighted_mean((predicted == truth).astype(np.float64))
    }
    labels = np.union1d(truth, predicted)
    in_predicted = predicted[:, None] == labels
    in_truth = truth[:, None] == labels
    counts = np.hstack([in_predicted & in_truth, in_predicted, in_truth]).astype(np.float64)
    statistics["f1_macro"] = _macro_f1(counts)
    if outputs.probabilities is None:
        return statistics, []
    column_of = {int(code): j for j, code in enumerate(outputs.probability_codes)}
    data_labels = [int(code) for code in np.unique(truth)]
    if any(code not in column_of for code in data_labels):
        return statistics, [
            "the model's classes do not include every label in the data: "
            "roc_auc and log_loss not measured"
        ]
    probabilities = outputs.probabilities
    columns = np.array([column_of[int(code)] for code in truth], dtype=np.intp)
    truth_probability = probabilities[np.arange(truth.size), columns]
    eps = np.finfo(np.float64).eps  # scikit-learn's clipping, so log(0) stays finite
    statistics["log_loss"] = _weighted_mean(-np.log(np.clip(truth_probability, eps, 1 - eps)))
    if len(data_labels) < 2:
        return statistics, ["roc_auc undefined: the data holds one label only"]
    if len(data_labels) == 2:
        # Binary: the score of the label of the later probability column, as scikit-learn's
        # roc_auc_score(y, predict_proba(X)[:, 1]).
        positive = max(data_labels, key=column_of.__getitem__)
        curves = [_auc(truth == positive, probabilities[:, column_of[positive]])]
    else:
        curves = [_auc(truth == code, probabilities[:, column_of[code]]) for code in data_labels]
    statistics["roc_auc"] = _mean_of(curves)
    return statistics, []


def _macro_f1(counts: FloatArray) -> Statistic:
    """Macro F1 from per-row indicator columns [hit_k..., predicted_k..., true_k...]; a label
    counts in a resample when it occurs in its truth or predictions, as in scikit-learn."""
    import numpy as np

    def statistic(weights: FloatArray) -> FloatArray:
        hits, predicted, actual = np.split(weights @ counts, 3, axis=1)
        total = predicted + actual
        present = total > 0
        f1 = np.divide(2 * hits, total, out=np.zeros_like(total), where=present)
        result: FloatArray = f1.sum(axis=1) / present.sum(axis=1)
        return result

    return statistic


def _auc(positive: BoolArray, score: FloatArray) -> Statistic:
    """ROC AUC as the weighted Mann-Whitney statistic: the chance that a positive row scores
    above a negative one, ties counting half. Rows are sorted by score once; per resample, one
    cumulative sum over the negatives' weights gives the weight below each positive."""
    import numpy as np

    order = np.argsort(score, kind="stable")
    ordered = score[order]
    is_positive = positive[order]
    first_of_group = np.ones(ordered.size, dtype=bool)
    first_of_group[1:] = ordered[1:] != ordered[:-1]
    group = np.cumsum(first_of_group) - 1
    starts = np.flatnonzero(first_of_group)
    ends = np.append(starts[1:], ordered.size)
    negative_at = np.flatnonzero(~is_positive)  # sorted positions of the negatives
    positive_at = np.flatnonzero(is_positive)
    # Per positive: how many negatives score lower, and how many lower or tied (static: the
    # resample changes weights, not the order).
    lower = np.searchsorted(negative_at, starts[group[positive_at]])
    lower_or_tied = np.searchsorted(negative_at, ends[group[positive_at]])
    ties = bool(np.any(lower != lower_or_tied))
    negative_rows, positive_rows = order[negative_at], order[positive_at]

    def statistic(weights: FloatArray) -> FloatArray:
        # cumulative[:, k]: the weight of the k lowest-scoring negatives.
        cumulative = np.zeros((weights.shape[0], negative_rows.size + 1))
        np.cumsum(np.take(weights, negative_rows, axis=1), axis=1, out=cumulative[:, 1:])
        below = np.take(cumulative, lower, axis=1)
        if ties:
            below = (below + np.take(cumulative, lower_or_tied, axis=1)) / 2
        positive_weights = np.take(weights, positive_rows, axis=1)
        wins = np.einsum("ij,ij->i", positive_weights, below)
        pairs = positive_weights.sum(axis=1) * cumulative[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            result: FloatArray = wins / pairs  # NaN when a resample lacks one side
        return result

    return statistic


def _mean_of(statistics: list[Statistic]) -> Statistic:
    """The unweighted mean over labels (macro), of the labels defined in each resample."""
    import numpy as np

    def statistic(weights: FloatArray) -> FloatArray:
        values = np.column_stack([s(weights) for s in statistics])
        defined = np.isfinite(values)
        count = defined.sum(axis=1)
        total = np.where(defined, values, 0.0).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            result: FloatArray = np.where(count > 0, total / count, np.nan)
        return result

    return statistic


def _regression_statistics(truth: FloatArray, predicted: FloatArray) -> dict[str, Statistic]:
    import numpy as np

    errors = predicted - truth
    squared = errors**2
    # Centred once, so the weighted variance below does not lose digits to a large mean.
    centred = truth - truth.mean()
    sums = np.column_stack([squared, centred, centred**2])

    def rmse(weights: FloatArray) -> FloatArray:
        result: FloatArray = np.sqrt((weights @ squared) / weights.sum(axis=1))
        return result

    def r2(weights: FloatArray) -> FloatArray:
        residual, first, second = (weights @ sums).T
        spread = second - first**2 / weights.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            # Undefined (NaN) when the truth does not vary.
            result: FloatArray = np.where(spread > 0, 1.0 - residual / spread, np.nan)
        return result

    return {"rmse": rmse, "mae": _weighted_mean(np.abs(errors)), "r2": r2}
