"""Per feature, the population stability index and a two-sample test (KS or chi-square) of the
reference against the current data; Benjamini-Hochberg across features."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mlgate.stages.drift.config import DriftConfig
from mlgate.stages.drift.errors import Invalid

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd  # type: ignore[import-untyped]

PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class Result:
    feature: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2"]
    psi: float
    statistic: float
    p_value: float
    bins: int
    reference_missing: int
    current_missing: int


def chosen_features(
    config: DriftConfig, reference: pd.DataFrame, current: pd.DataFrame
) -> list[str]:
    """The columns to compare, in the reference's order; a schema difference is an error."""
    if config.features is not None:
        for role, frame in (("reference", reference), ("current", current)):
            missing = [f for f in config.features if f not in frame.columns]
            if missing:
                raise Invalid(f"feature {_names(missing)} is not a column of the {role} file")
        return list(config.features)
    excluded = set(config.exclude)
    only_reference = [
        c for c in reference.columns if c not in current.columns and c not in excluded
    ]
    only_current = [c for c in current.columns if c not in reference.columns and c not in excluded]
    if only_reference or only_current:
        parts = []
        if only_reference:
            parts.append(f"only in the reference: {_names(only_reference)}")
        if only_current:
            parts.append(f"only in the current file: {_names(only_current)}")
        raise Invalid(
            f"the files' columns differ ({'; '.join(parts)}): exclude them or list features"
        )
    chosen = [c for c in reference.columns if c not in excluded]
    if not chosen:
        raise Invalid("no column is left to compare once exclude is applied")
    return chosen


def _names(columns: list[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:5])
    return shown + (f" and {len(columns) - 5} more" if len(columns) > 5 else "")


def compare(
    config: DriftConfig, reference: pd.DataFrame, current: pd.DataFrame, feature: str
) -> Result:
    from pandas.api import types  # type: ignore[import-untyped]

    ref, cur = reference[feature], current[feature]
    forced = feature in config.categorical

    def numeric(series: pd.Series) -> bool:
        return bool(types.is_numeric_dtype(series) and not types.is_bool_dtype(series))

    if not forced and numeric(ref):
        if not numeric(cur) and cur.notna().any():
            raise Invalid(
                f"feature {feature!r} is numeric in the reference but not in the current file "
                f"(dtype {cur.dtype}); list it under categorical to compare it as categories"
            )
        return _numeric(feature, ref, cur, config.bins)
    return _categorical(feature, ref, cur, forced and numeric(ref) and numeric(cur))


def _numeric(feature: str, ref: pd.Series, cur: pd.Series, bins: int) -> Result:
    import numpy as np

    r = ref.to_numpy(dtype=np.float64, na_value=np.nan)
    c = cur.to_numpy(dtype=np.float64, na_value=np.nan)
    r_missing, c_missing = np.isnan(r), np.isnan(c)
    r_values, c_values = r[~r_missing], c[~c_missing]
    finite = r_values[np.isfinite(r_values)]
    distinct = np.unique(finite)
    if distinct.size <= bins:
        # One bin per reference value and one for anything else (as in a category table).
        r_index = _value_bins(distinct, r_values)
        c_index = _value_bins(distinct, c_values)
        used = distinct.size + 1
    else:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
        r_index = np.searchsorted(edges, r_values, side="right")
        c_index = np.searchsorted(edges, c_values, side="right")
        used = edges.size + 1
    r_counts = np.append(np.bincount(r_index, minlength=used), r_missing.sum())
    c_counts = np.append(np.bincount(c_index, minlength=used), c_missing.sum())
    psi = _psi(r_counts, c_counts)
    if r_values.size and c_values.size:
        from scipy import stats  # type: ignore[import-untyped]

        test = stats.ks_2samp(r_values, c_values)
        statistic, p_value = float(test.statistic), float(test.pvalue)
    else:
        # Missing entirely on one side: whether it is missing is all there is to compare.
        present = np.array([[r_values.size, r_missing.sum()], [c_values.size, c_missing.sum()]])
        statistic, p_value = _chi2(present)
    return Result(
        feature=feature,
        kind="numeric",
        test="ks",
        psi=psi,
        statistic=statistic,
        p_value=_probability(p_value),
        bins=used + 1,
        reference_missing=int(r_missing.sum()),
        current_missing=int(c_missing.sum()),
    )


def _value_bins(distinct: npt.NDArray[np.float64], values: npt.NDArray[np.float64]) -> Any:
    """Index of each value among `distinct`, or len(distinct) for a value not among them."""
    import numpy as np

    if distinct.size == 0:
        return np.zeros(values.size, dtype=np.intp)
    position = np.searchsorted(distinct, values)
    clipped = np.minimum(position, distinct.size - 1)
    return np.where(distinct[clipped] == values, clipped, distinct.size)


def _categorical(feature: str, ref: pd.Series, cur: pd.Series, both_numeric: bool) -> Result:
    import numpy as np

    def keys(series: pd.Series) -> pd.Series:
        # Numbers compare by value (a column read as int on one side and as float on the
        # other, because of a missing cell, must not differ); anything else as text.
        return series.astype("float64") if both_numeric else series.astype("string")

    r_counts = keys(ref).value_counts(dropna=False)
    c_counts = keys(cur).value_counts(dropna=False)
    categories = r_counts.index.union(c_counts.index)
    r = r_counts.reindex(categories, fill_value=0).to_numpy(dtype=np.int64)
    c = c_counts.reindex(categories, fill_value=0).to_numpy(dtype=np.int64)
    statistic, p_value = _chi2(np.vstack([r, c]))
    return Result(
        feature=feature,
        kind="categorical",
        test="chi2",
        psi=_psi(r, c),
        statistic=statistic,
        p_value=_probability(p_value),
        bins=len(categories),
        reference_missing=int(ref.isna().sum()),
        current_missing=int(cur.isna().sum()),
    )


def _psi(reference: Any, current: Any) -> float:
    import numpy as np

    r = np.maximum(reference / reference.sum(), PSI_EPSILON)
    c = np.maximum(current / current.sum(), PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def _chi2(table: Any) -> tuple[float, float]:
    """Chi-square test of a 2 x K table of counts; columns empty on both sides are dropped."""
    import numpy as np
    from scipy import stats

    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0  # one category on both sides: nothing can differ
    statistic, p_value, _, _ = stats.chi2_contingency(np.asarray(table, dtype=np.float64))
    return float(statistic), float(p_value)


def _probability(value: float) -> float:
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else 1.0


def bh(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values, in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=p_values.__getitem__)
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        index = order[rank - 1]
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = min(running, 1.0)
    return adjusted
