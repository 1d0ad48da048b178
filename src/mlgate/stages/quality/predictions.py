"""What each model says about every row: the task, the feature columns, the predictions and
probabilities, and the labels encoded as codes shared by the data and both models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlgate.errors import one_line
from mlgate.stages.quality.config import QualityConfig
from mlgate.stages.quality.data import listing
from mlgate.stages.quality.errors import Invalid
from mlgate.stages.quality.metrics import Outputs
from mlgate.stages.quality.models import Model

# A whole-number target with at most this many distinct values is taken for class labels.
_MAX_INFERRED_CLASSES = 20


def infer_task(model: Model, target: Any) -> str:
    """See stage.py's docstring: the sklearn model's own kind, else the target's type."""
    import pandas as pd  # type: ignore[import-untyped]

    estimator = model.estimator
    if estimator is not None:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(estimator) or hasattr(estimator, "predict_proba"):
            return "classification"
        if is_regressor(estimator):
            return "regression"
    dtype = target.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        return "classification"
    if pd.api.types.is_integer_dtype(dtype) and target.nunique() <= _MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


@dataclass(frozen=True)
class RawOutputs:
    """What one model said about every row, before labels are encoded."""

    predicted: Any  # 1-D array of labels or values
    probabilities: Any  # (rows, classes) floats, or None
    classes: Any  # the labels of the probability columns, or None
    notes: list[str]


def _feature_columns(model: Model, config: QualityConfig, columns: list[str]) -> list[str]:
    """The columns the model takes, checked against the data."""
    role = model.reference.role
    required: list[str]
    if config.features is not None:
        required = list(config.features)
        given = required
    else:
        schema = model.pyfunc.metadata.get_input_schema()
        fitted = getattr(model.estimator, "feature_names_in_", None)
        if schema is not None and schema.has_input_names():
            given = [str(n) for n in schema.input_names()]
            required = [str(n) for n in schema.required_input_names()]
        elif fitted is not None:
            given = required = [str(n) for n in fitted]
        else:
            given = required = [c for c in columns if c != config.target]
    missing = [c for c in required if c not in columns]
    if missing:
        raise Invalid(
            f"{role}: the model expects column{'s' * (len(missing) > 1)} "
            f"{listing(missing)}, missing from data {config.data}"
        )
    return [c for c in given if c in columns]


def predict(model: Model, frame: Any, config: QualityConfig, task: str) -> RawOutputs:
    import numpy as np

    role = model.reference.role
    columns = _feature_columns(model, config, list(frame.columns))
    features = frame[columns]
    try:
        raw = model.pyfunc.predict(features)
    except Exception as exc:  # the model's own code runs here: anything can come out
        raise Invalid(
            f"{role}: predict failed on columns {listing(columns)}: {one_line(exc)}"
        ) from None
    predicted = _one_per_row(raw, len(frame), role)
    notes: list[str] = []
    if task == "regression":
        try:
            predicted = predicted.astype(np.float64)
        except (TypeError, ValueError):
            raise Invalid(f"{role}: predictions are not numbers (regression)") from None
        bad = int(np.count_nonzero(~np.isfinite(predicted)))
        if bad:
            raise Invalid(f"{role}: {bad} predictions are not finite numbers")
        return RawOutputs(predicted, None, None, notes)
    estimator = model.estimator
    if estimator is None or not hasattr(estimator, "predict_proba"):
        notes.append("no probabilities (not an sklearn model with predict_proba)")
        return RawOutputs(predicted, None, None, notes)
    fitted = getattr(estimator, "feature_names_in_", None)
    try:
        # In the order the estimator was fitted with: sklearn checks names and order.
        probabilities = np.asarray(
            estimator.predict_proba(frame[list(fitted)] if fitted is not None else features),
            dtype=np.float64,
        )
        classes = np.asarray(estimator.classes_, dtype=object)
    except Exception as exc:  # the model's own code again
        notes.append(f"predict_proba failed, no probabilities: {one_line(exc)}")
        return RawOutputs(predicted, None, None, notes)
    if probabilities.shape != (len(frame), classes.size) or not np.all(np.isfinite(probabilities)):
        notes.append("predict_proba gave no finite probability per row and class: none used")
        return RawOutputs(predicted, None, None, notes)
    return RawOutputs(predicted, probabilities, classes, notes)


def _one_per_row(raw: Any, rows: int, role: str) -> Any:
    import numpy as np

    if hasattr(raw, "columns"):  # a DataFrame
        if len(raw.columns) != 1:
            raise Invalid(
                f"{role}: the model returned {len(raw.columns)} columns per row; "
                "one prediction per row is needed"
            )
        raw = raw.iloc[:, 0]
    array = np.asarray(raw)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or array.shape[0] != rows:
        raise Invalid(
            f"{role}: the model returned predictions of shape {array.shape} for {rows} rows; "
            "one prediction per row is needed"
        )
    return array


# -- labels ----------------------------------------------------------------------------------


def encode(
    task: str, target: Any, outputs: list[RawOutputs]
) -> tuple[Any, list[Outputs], list[str]]:
    """Truth and predictions as arrays the metrics work on: one integer code per label, shared
    by the data and both models (labels equal in Python, like 1 and 1.0, share a code)."""
    import numpy as np
    import pandas as pd

    if task == "regression":
        truth = target.to_numpy(dtype=np.float64)
        return truth, [Outputs(o.predicted, notes=tuple(o.notes)) for o in outputs], []
    pieces = [np.asarray(target.to_numpy(), dtype=object)]
    for o in outputs:
        pieces.append(np.asarray(o.predicted, dtype=object))
        if o.classes is not None:
            pieces.append(o.classes)
    codes, _ = pd.factorize(pd.Series(np.concatenate(pieces), dtype=object), use_na_sentinel=False)
    codes = np.asarray(codes, dtype=np.int64)
    rows = len(target)
    truth, offset = codes[:rows], rows
    encoded: list[Outputs] = []
    notes: list[str] = []
    for o in outputs:
        predicted, offset = codes[offset : offset + rows], offset + rows
        probability_codes = None
        if o.classes is not None:
            probability_codes = codes[offset : offset + o.classes.size]
            offset += o.classes.size
        encoded.append(Outputs(predicted, o.probabilities, probability_codes, tuple(o.notes)))
        if not np.isin(predicted, truth).any():
            notes.append(
                "no predicted label occurs in the target: are the labels of the same type "
                "(e.g. '1' and 1)?"
            )
    return truth, encoded, list(dict.fromkeys(notes))
