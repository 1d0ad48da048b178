"""Scoring requests (MLflow JSON) as documents, and the edits the probe makes to them."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

_EXTRA_COLUMN = "mlgate_probe_extra"


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def _rows(document: Any) -> list[Any] | None:
    """The rows of a scoring request (in place), or None for a format the probe does not know."""
    if not isinstance(document, dict):
        return None
    split = document.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("data"), list):
        rows: list[Any] = split["data"]
        return rows
    for key in ("dataframe_records", "instances", "inputs"):
        value = document.get(key)
        if isinstance(value, list):
            return value
    return None


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def map_leaves(value: Any, change: Callable[[Any], Any], wanted: Callable[[Any], bool]) -> Any:
    """`value` with `change` applied to every leaf `wanted` picks, recursively."""
    if isinstance(value, list):
        return [map_leaves(v, change, wanted) for v in value]
    if isinstance(value, dict):
        return {k: map_leaves(v, change, wanted) for k, v in value.items()}
    return change(value) if wanted(value) else value


def in_rows(document: Any, change: Callable[[Any], Any]) -> Any:
    """A copy of the document with `change` applied to each row (or to the whole of a document
    in a format the probe does not know)."""
    copied = copy.deepcopy(document)
    rows = _rows(copied)
    if rows is None:
        return change(copied)
    rows[:] = [change(row) for row in rows]
    return copied


def count_leaves(value: Any, wanted: Callable[[Any], bool]) -> int:
    found = 0

    def tally(leaf: Any) -> Any:
        nonlocal found
        found += 1
        return leaf

    map_leaves(value, tally, wanted)
    return found


def wrong_type(document: Any) -> Any:
    changed = in_rows(document, lambda row: map_leaves(row, lambda _: "not-a-number", is_number))
    return changed if count_leaves(document, is_number) else None


def special(document: Any, value: float) -> Any:
    """Each row's first number replaced by `value`."""
    if not count_leaves(document, is_number):
        return None

    def first(row: Any) -> Any:
        done = False

        def once(leaf: Any) -> Any:
            nonlocal done
            if done:
                return leaf
            done = True
            return value

        return map_leaves(row, once, is_number)

    return in_rows(document, first)


def _with_rows(document: Any) -> tuple[Any, list[Any], list[Any] | None] | None:
    """A copy of the document, its rows and its dataframe_split columns (both in place, the
    columns None when it has none); None for a document without rows."""
    copied = copy.deepcopy(document)
    rows = _rows(copied)
    if not rows:
        return None
    split = copied.get("dataframe_split") if isinstance(copied, dict) else None
    columns = split.get("columns") if isinstance(split, dict) else None
    return copied, rows, columns if isinstance(columns, list) else None


def drop_column(document: Any) -> Any:
    found = _with_rows(document)
    if found is None:
        return None
    copied, rows, columns = found
    if columns:
        del columns[-1]
    for index, row in enumerate(rows):
        if isinstance(row, list) and row:
            rows[index] = row[:-1]
        elif isinstance(row, dict) and row:
            rows[index] = dict(list(row.items())[:-1])
        else:
            return None  # a scalar row has no column to leave out
    return copied


def add_column(document: Any) -> Any:
    found = _with_rows(document)
    if found is None:
        return None
    copied, rows, columns = found
    if columns is not None:
        columns.append(_EXTRA_COLUMN)
    for index, row in enumerate(rows):
        if isinstance(row, list):
            rows[index] = [*row, 0.5]
        elif isinstance(row, dict):
            rows[index] = row | {_EXTRA_COLUMN: 0.5}
        else:
            return None
    return copied


def oversized(document: Any, size: int) -> bytes:
    """A request of at least `size` bytes: its rows repeated (a huge batch), padded with
    whitespace (valid JSON) to exactly `size` when that falls short or the format is unknown."""
    copied = copy.deepcopy(document)
    rows = _rows(copied)
    if rows:
        one = len(encode(rows[0])) + 2
        repeat = max(size // max(one * len(rows), 1), 1)
        rows[:] = rows * repeat
        while len(encode(copied)) > size and len(rows) > 1:
            del rows[len(rows) // 2 :]  # the estimate overshot (short rows): halve and pad
    body = encode(copied)
    return body + b" " * (size - len(body)) if len(body) < size else body


def is_float(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)
