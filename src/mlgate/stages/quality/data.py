"""The quality stage's evaluation data: one CSV or Parquet file, read and checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlgate import tabular
from mlgate.stages.quality.config import QualityConfig
from mlgate.stages.quality.errors import Invalid


def read_data(path: Path, shown: str) -> tuple[Any, dict[str, object]]:
    """The evaluation data as a DataFrame, and what identifies it (digest, shape)."""
    try:
        table = tabular.read(path, "data", shown)
    except ImportError:
        raise Invalid("the quality stage needs pandas: pip install 'mlgate[quality]'") from None
    except tabular.TableError as exc:
        raise Invalid(str(exc)) from None
    frame = table.frame
    return frame, {
        "path": shown,
        "format": table.format,
        "sha256": table.sha256,
        "bytes": table.size,
        "rows": len(frame),
        "columns": list(frame.columns),
    }


def check_columns(frame: Any, config: QualityConfig) -> None:
    columns = set(frame.columns)
    if config.target not in columns:
        raise Invalid(
            f"target column {config.target!r} is not in data {config.data} "
            f"(columns: {listing(list(frame.columns))})"
        )
    missing = [c for c in config.slices if c not in columns]
    if missing:
        raise Invalid(f"slice column {missing[0]!r} is not in data {config.data}")
    absent = int(frame[config.target].isna().sum())
    if absent:
        raise Invalid(f"target column {config.target!r} has {absent} missing values")


def check_numeric(target: Any, column: str) -> None:
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]

    dtype = target.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise Invalid(f"target column {column!r} holds {dtype} values: regression needs numbers")
    if not np.isfinite(target.to_numpy(dtype=np.float64)).all():
        raise Invalid(f"target column {column!r} holds infinite values")


def listing(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
