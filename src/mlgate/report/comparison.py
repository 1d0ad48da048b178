"""A candidate-against-champion comparison as every reporter shows it: a table with a decision
per row, an interval chart against the tolerance, and one line saying what was compared.

Stages build `Comparison`s from their evidence and policy (`Stage.comparisons`); the markdown,
HTML and terminal reports render the same ones. Cells and labels may quote evidence, so every
renderer escapes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mlgate.report import charts, escape


@dataclass(frozen=True)
class Comparison:
    title: str
    caption: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    # Per row: pass, fail, inconclusive or "" (not judged); colours the last column.
    outcomes: Sequence[str] = field(default_factory=list)
    intervals: Sequence[charts.Interval] = field(default_factory=list)
    axis: str = ""

    def outcome(self, index: int) -> str:
        return self.outcomes[index] if index < len(self.outcomes) else ""


def markdown(comparison: Comparison) -> str:
    lines = [
        f"**{escape.inline(comparison.title)}**: {escape.inline(comparison.caption)}",
        "",
        *escape.markdown_table(
            [escape.inline(h) for h in comparison.headers],
            ([escape.inline(c) for c in row] for row in comparison.rows),
        ),
    ]
    if comparison.intervals:
        chart = charts.text_intervals(comparison.intervals)
        # A <pre> block: monospace on GitHub, and its text is escaped (labels quote evidence).
        lines += [
            "",
            escape.block("\n".join([comparison.axis, *chart, charts.TEXT_LEGEND])),
        ]
    return "\n".join(lines)


def html(comparison: Comparison) -> str:
    head = "".join(f"<th>{escape.html_text(h)}</th>" for h in comparison.headers)
    body = ""
    for index, row in enumerate(comparison.rows):
        outcome = comparison.outcome(index)
        cells = [f"<td>{escape.html_text(c)}</td>" for c in row]
        if outcome and cells:
            cells[-1] = f"<td class='{outcome}'><b>{escape.html_text(row[-1])}</b></td>"
        body += "<tr>" + "".join(cells) + "</tr>"
    chart = (
        charts.svg_intervals(comparison.intervals, comparison.axis) if comparison.intervals else ""
    )
    return (
        f"<h3>{escape.html_text(comparison.title)}</h3>"
        f"<p>{escape.html_text(comparison.caption)}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{chart}"
    )
