"""Quality evidence as text: the one-line summary, the markdown and HTML tables; read
defensively, so odd evidence renders as far as it can."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeGuard

from mlgate.evidence import Evidence
from mlgate.report import escape
from mlgate.stages.quality.config import TASK_METRICS

# Rows of the per-slice table in markdown reports (PR comments have a size limit).
_MAX_SLICE_LINES = 200


def summary(evidence: Evidence) -> str:
    """The one-line summary: the headline metric against the champion's."""
    if evidence.status == "error":
        return f"error: {evidence.reason}"
    # Read defensively: a summary never fails on odd evidence.
    task = evidence.data.get("task")
    rows = evidence.metrics.get("rows")
    metric = "accuracy" if task == "classification" else "rmse"
    value = evidence.metrics.get(f"{metric}.candidate")
    head = f"{task} on {rows} rows: {metric} {_number(value)}"
    entry = next(
        (
            e
            for e in evidence.data.get("metrics", [])
            if isinstance(e, dict) and e.get("metric") == metric
        ),
        None,
    )
    if entry is None or entry.get("champion") is None:
        return f"{head} (no champion)"
    return (
        f"{head} vs champion {_number(entry.get('champion'))} "
        f"({_signed(entry.get('difference'))}, {_interval_text(entry.get('ci'), evidence)})"
    )


def markdown(evidence: Evidence) -> str:
    """The metric and slice tables in markdown (empty unless the run passed)."""
    if evidence.status != "passed":
        return ""
    data = evidence.data
    level = _level(evidence)
    lines = [_heading(data, escape.code), ""]
    lines += [
        f"| metric | candidate | champion | difference | {level} CI | p (McNemar) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for entry in _entries(data.get("metrics")):
        cells = (_metric_label(entry), *_compared(entry), _p_value(entry.get("p_value")))
        lines.append(f"| {' | '.join(cells)} |")
    slices = _entries(data.get("slices"))
    if slices:
        lines += [
            "",
            f"| slice | rows | metric | candidate | champion | difference | {level} CI |",
            "|---|---:|---|---:|---:|---:|---|",
        ]
        rows = [
            f"| {escape.inline(_slice_name(item))} | {_count(item.get('rows'))} | "
            f"{_metric_label(entry)} | {' | '.join(_compared(entry))} |"
            for item in slices
            for entry in _entries(item.get("metrics"))
        ]
        lines += rows[:_MAX_SLICE_LINES]
        if len(rows) > _MAX_SLICE_LINES:
            # A comment has a size limit; the evidence keeps every slice.
            lines.append(f"\n{len(rows) - _MAX_SLICE_LINES} more slice rows in the evidence.")
    notes = [str(n) for n in data.get("notes", []) if isinstance(n, str)]
    notes += [
        f"{_slice_name(item)}: {item['note']}"
        for item in slices
        if isinstance(item.get("note"), str)
    ]
    if notes:
        lines += ["", *(f"- {escape.inline(note)}" for note in notes)]
    return "\n".join(lines)


def html(evidence: Evidence) -> str:
    """The metric and slice tables in HTML (empty unless the run passed)."""
    if evidence.status != "passed":
        return ""
    data = evidence.data
    level = _level(evidence)
    metrics = escape.html_table(
        ("metric", "candidate", "champion", "difference", f"{level} CI", "p"),
        (
            (str(entry.get("metric")), *_compared(entry), _p_value(entry.get("p_value")))
            for entry in _entries(data.get("metrics"))
        ),
    )
    slices = escape.html_table(
        ("slice", "rows", "metric", "candidate", "champion", "difference", f"{level} CI"),
        (
            (
                _slice_name(item),
                _count(item.get("rows")),
                str(entry.get("metric")),
                *_compared(entry),
            )
            for item in _entries(data.get("slices"))
            for entry in _entries(item.get("metrics"))
        ),
    )
    return f"<p>{_heading(data, escape.html_text)}</p>{metrics}{slices}"


# -- formatting ------------------------------------------------------------------------------


def is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int to Python, never a measurement.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _compared(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    """A metric entry's candidate, champion, difference and interval, as table cells."""
    return (
        _number(entry.get("candidate")),
        _number(entry.get("champion")),
        _signed(entry.get("difference")),
        _interval(entry.get("ci")),
    )


def _number(value: object) -> str:
    return f"{value:.4f}" if is_number(value) else "n/a"


def _signed(value: object) -> str:
    return f"{value:+.4f}" if is_number(value) else "n/a"


def _interval(ci: object) -> str:
    if isinstance(ci, list) and len(ci) == 2 and all(is_number(v) for v in ci):
        return f"{ci[0]:+.4f} to {ci[1]:+.4f}"
    return "n/a"


def _level(evidence: Evidence) -> str:
    confidence = evidence.data.get("confidence")
    return f"{confidence:.0%}" if is_number(confidence) else "?"


def _interval_text(ci: object, evidence: Evidence) -> str:
    return f"{_level(evidence)} CI {_interval(ci)}"


def _p_value(value: object) -> str:
    return f"{value:.3g}" if is_number(value) else ""


def _metric_label(entry: dict[str, Any]) -> str:
    arrow = "↑" if entry.get("higher_is_better") else "↓"
    return f"{escape.inline(str(entry.get('metric')))} {arrow}"


def _slice_name(item: dict[str, Any]) -> str:
    return f"{item.get('column')} = {slice_value(item.get('value'))}"


def _count(value: object) -> str:
    return str(value) if type(value) is int else "?"


def slice_value(value: object) -> str:
    return "(missing)" if value is None else str(value)


def _entries(value: object) -> list[dict[str, Any]]:
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _heading(data: dict[str, Any], quote: Callable[[str], str]) -> str:
    """One line on what was compared: models (digests), data, method. `quote` renders the
    text parts (URIs, paths, column names); the rest is shown only when it is what the stage
    writes there (a task name, numbers, hex digests), so nothing else reaches a report raw."""
    dataset = data.get("dataset")
    if not isinstance(dataset, dict):
        dataset = {}

    def model(described: object) -> str:
        if not isinstance(described, dict):
            return "?"
        shown = str(described.get("resolved") or described.get("uri"))
        digest = _hex(described.get("digest"), "sha256:", 12)
        return f"{quote(shown)} ({digest})" if digest else quote(shown)

    champion = data.get("champion")
    against = (
        f"vs champion {model(champion)}"
        if champion
        else f"no champion ({quote(str(data.get('champion_note') or 'none'))})"
    )
    task = data.get("task") if data.get("task") in TASK_METRICS else "?"
    rows, resamples = dataset.get("rows"), data.get("resamples")
    return (
        f"{task}: candidate {model(data.get('candidate'))} {against}, on "
        f"{quote(str(dataset.get('path')))} ({rows if type(rows) is int else '?'} rows, "
        f"sha256 {_hex(dataset.get('sha256'), '', 12) or '?'}), target "
        f"{quote(str(data.get('target')))}; paired bootstrap, "
        f"{resamples if type(resamples) is int else '?'} resamples"
    )


def _hex(value: object, prefix: str, length: int) -> str:
    """The start of a digest, or "" when the value is not one."""
    if not isinstance(value, str) or not re.fullmatch(f"{prefix}[0-9a-f]{{64}}", value):
        return ""
    return value[: len(prefix) + length]
