"""The quality stage's evaluation data: one CSV or Parquet file, read and checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlgate import evidence as ev
from mlgate.errors import one_line
from mlgate.stages.quality.config import QualityConfig
from mlgate.stages.quality.errors import Invalid

_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def read_data(path: Path, shown: str) -> tuple[Any, dict[str, object]]:
    """The evaluation data as a DataFrame, and what identifies it (digest, shape)."""
    try:
        import pandas as pd  # type: ignore[import-untyped]
    except ImportError:
        raise Invalid("the quality stage needs pandas: pip install 'mlgate[quality]'") from None
    if path.is_dir():
        raise Invalid(f"data {shown} is a directory, not a CSV or Parquet file")
    if not path.is_file():
        raise Invalid(f"data file {shown} does not exist")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise Invalid(f"cannot read data {shown}: {exc.strerror or exc}") from None
    if not magic:
        raise Invalid(f"data file {shown} is empty")
    parquet = path.suffix.lower() in _PARQUET_SUFFIXES or magic == b"PAR1"
    kind = "parquet" if parquet else "csv"
    try:
        # round_trip: every pandas parses a decimal to the nearest double (pandas before 2.2
        # may be one unit off by default), so CSV and Parquet give the same numbers.
        frame = (
            pd.read_parquet(path) if parquet else pd.read_csv(path, float_precision="round_trip")
        )
    except ImportError as exc:
        raise Invalid(f"cannot read {kind} data {shown}: {one_line(exc)}") from None
    except pd.errors.EmptyDataError:
        raise Invalid(f"data file {shown} holds no columns") from None
    except Exception as exc:  # pandas and pyarrow raise many kinds: all mean "unreadable"
        raise Invalid(f"cannot read data {shown} as {kind}: {one_line(exc)}") from None
    if len(frame) == 0:
        raise Invalid(f"data {shown} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame, {
        "path": shown,
        "format": kind,
        "sha256": ev.sha256_file(path),
        "bytes": path.stat().st_size,
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
    import pandas as pd

    dtype = target.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise Invalid(f"target column {column!r} holds {dtype} values: regression needs numbers")
    if not np.isfinite(target.to_numpy(dtype=np.float64)).all():
        raise Invalid(f"target column {column!r} holds infinite values")


def listing(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
