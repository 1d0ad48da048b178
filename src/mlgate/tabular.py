"""Tabular data files, CSV or Parquet, read into a DataFrame with the sha256 that pins the file.

The one reader of the stages that take data files (drift: reference and current; quality: the
evaluation data). Parquet is told by its suffix (.parquet, .pq, .parq) or its magic bytes, any
other file is CSV. Every problem is a TableError with one line naming the file; pandas itself
is imported here, and a missing pandas is the caller's ImportError (it knows which extra to
name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mlgate import evidence as ev
from mlgate.errors import one_line

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_PARQUET_MAGIC = b"PAR1"


class TableError(Exception):
    """A file that cannot be read as a table; the message is the one-line reason."""


@dataclass(frozen=True)
class Table:
    """One data file as read: its rows, and what identifies the file."""

    label: str  # what the file is to the stage ("data", "reference", ...)
    path: Path
    shown: str  # the path as messages and evidence show it
    format: Literal["csv", "parquet"]
    frame: Any  # a pandas DataFrame with string column names
    sha256: str
    size: int


def read(path: Path, label: str, shown: str | None = None) -> Table:
    """The table in `path`; `label` and `shown` (default: the path) name it in messages."""
    import pandas as pd  # type: ignore[import-untyped]

    shown = str(path) if shown is None else shown
    if path.is_dir():
        raise TableError(f"{label} {shown} is a directory, not a CSV or Parquet file")
    if not path.exists():
        raise TableError(f"{label} file {shown} does not exist")
    if not path.is_file():
        raise TableError(f"{label} file {shown} is not a regular file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_PARQUET_MAGIC))
    except OSError as exc:
        raise TableError(f"cannot read {label} {shown}: {exc.strerror or exc}") from None
    if not magic:
        raise TableError(f"{label} file {shown} is empty")
    parquet = path.suffix.lower() in PARQUET_SUFFIXES or magic == _PARQUET_MAGIC
    kind: Literal["csv", "parquet"] = "parquet" if parquet else "csv"
    # Every decimal to the nearest double, so CSV and Parquet give the same numbers: pandas
    # before 2.2 may be one unit off by default, pandas 3 is exact and deprecates the option.
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    try:
        frame = pd.read_parquet(path) if parquet else pd.read_csv(path, **exact)
    except pd.errors.EmptyDataError:
        raise TableError(f"{label} file {shown} holds no columns") from None
    except UnicodeDecodeError:
        raise TableError(f"{label} file {shown} is not UTF-8 text") from None
    except ImportError as exc:
        hint = " (pip install pyarrow)" if parquet else ""
        raise TableError(f"cannot read {label} {shown} as {kind}: {one_line(exc)}{hint}") from None
    except Exception as exc:  # pandas and pyarrow raise many kinds: all mean "unreadable"
        raise TableError(f"cannot read {label} {shown} as {kind}: {one_line(exc)}") from None
    if len(frame.columns) == 0:
        raise TableError(f"{label} file {shown} has no columns")
    if len(frame) == 0:
        raise TableError(f"{label} file {shown} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    if frame.columns.duplicated().any():
        raise TableError(f"{label} file {shown} names a column twice")
    return Table(label, path, shown, kind, frame, ev.sha256_file(path), path.stat().st_size)
