"""A small real model: a scikit-learn classifier of iris flowers, on the bundled data set."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ("sepal length", "sepal width", "petal length", "petal width")
SEED = 7


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_iris()
    return train_test_split(
        data.data, data.target, test_size=0.3, random_state=SEED, stratify=data.target
    )


def train(features: np.ndarray, labels: np.ndarray) -> Pipeline:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=SEED))
    return model.fit(features, labels)


def predict(model: Pipeline, rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=float)
    if rows.ndim != 2 or rows.shape[1] != len(FEATURES):
        raise ValueError(f"expected rows of {len(FEATURES)} features, got shape {rows.shape}")
    if not np.isfinite(rows).all():
        raise ValueError("features must be finite numbers")
    return model.predict(rows)
