"""Charts for reports: Mermaid xychart for GitHub markdown, inline SVG for the HTML report.

Both take numbers only (labels are ours), so nothing untrusted reaches them. GitHub's Mermaid
may lack newer diagram types, so the markdown always carries the numbers in a table too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlgate.report import escape

_COLOURS = ("#8c959f", "#0969da", "#bf3989", "#1a7f37")


def markdown_bars(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]], unit: str
) -> str:
    """A Mermaid xychart (one bar series per entry) followed by the same numbers as a table."""
    names = list(series)
    top = max((v for values in series.values() for v in values), default=1.0) or 1.0
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        f"    x-axis [{', '.join(labels)}]",
        f'    y-axis "{unit}" 0 --> {top * 1.15:.4g}',
    ]
    lines += [f"    bar [{', '.join(f'{v:.4g}' for v in series[name])}]" for name in names]
    lines.append("```")
    if len(names) > 1:
        lines.append("Bars, left to right: " + ", ".join(names) + ".")
    table = escape.markdown_table(
        [unit, *labels], ([name, *(f"{v:.4g}" for v in series[name])] for name in names)
    )
    return "\n".join(lines) + "\n\n" + "\n".join(table)


def svg_bars(
    labels: Sequence[str], series: Mapping[str, Sequence[float]], unit: str, width: int = 640
) -> str:
    """Grouped bars as an inline SVG with a legend; no scripts, no external references."""
    names = list(series)
    top = max((v for values in series.values() for v in values), default=1.0) or 1.0
    height, margin, legend = 240, 40, 18 * len(names)
    plot_h = height - 2 * margin
    group_w = (width - 2 * margin) / max(len(labels), 1)
    bar_w = group_w * 0.8 / max(len(names), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + legend}" '
        f'role="img" aria-label="{unit} by percentile">'
    ]
    for gi, label in enumerate(labels):
        x0 = margin + gi * group_w + group_w * 0.1
        for si, name in enumerate(names):
            value = series[name][gi]
            h = plot_h * value / (top * 1.1)
            x, y = x0 + si * bar_w, height - margin - h
            colour = _COLOURS[si % len(_COLOURS)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w * 0.95:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{name} {label}: {value:.4g} {unit}</title></rect>'
            )
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{y - 3:.1f}" font-size="10" '
                f'text-anchor="middle">{value:.3g}</text>'
            )
        parts.append(
            f'<text x="{x0 + group_w * 0.4:.1f}" y="{height - margin + 14}" font-size="12" '
            f'text-anchor="middle">{label}</text>'
        )
    for si, name in enumerate(names):
        y = height + 18 * si
        colour = _COLOURS[si % len(_COLOURS)]
        parts.append(f'<rect x="{margin}" y="{y - 10}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{margin + 16}" y="{y}" font-size="12">{name} ({unit})</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Interval:
    """One row of an interval chart: an estimate, its confidence interval and the bounds that
    decide (a tolerance), all turned so that right is better; each row has its own scale (the
    metrics' units differ)."""

    label: str
    estimate: float
    low: float
    high: float
    bounds: tuple[float, ...] = ()
    outcome: str = ""  # pass, fail, inconclusive or "": the colour


TEXT_LEGEND = "o estimate, [===] interval, | no change, ! tolerance; right is better"


def _scale(row: Interval) -> tuple[float, float]:
    points = (row.low, row.high, row.estimate, 0.0, *row.bounds)
    low, high = min(points), max(points)
    pad = (high - low) * 0.08 or 1.0
    return low - pad, high + pad


def text_intervals(rows: Sequence[Interval], width: int = 41) -> list[str]:
    """Each row as one line of plain characters (terminal, markdown code block)."""
    label_width = max((len(r.label) for r in rows), default=0)
    lines = []
    for row in rows:
        low, high = _scale(row)

        def at(value: float, low: float = low, high: float = high) -> int:
            return round((value - low) / (high - low) * (width - 1))

        cells = ["."] * width
        for index in range(at(row.low), at(row.high) + 1):
            cells[index] = "="
        cells[at(row.low)], cells[at(row.high)] = "[", "]"
        cells[at(0.0)] = "|"
        for bound in row.bounds:
            cells[at(bound)] = "!"
        cells[at(row.estimate)] = "o"
        lines.append(f"{row.label.ljust(label_width)}  {''.join(cells)}")
    return lines


_OUTCOME_COLOURS = {
    "pass": "#1a7f37",
    "warn": "#9a6700",
    "fail": "#cf222e",
    "inconclusive": "#9a6700",
}


def svg_intervals(rows: Sequence[Interval], axis: str, width: int = 640) -> str:
    """Interval rows as an inline SVG: a whisker and a dot per row, a grey line at no change and
    a red dashed line at each tolerance, with their values. Labels are escaped here."""
    from mlgate.report.escape import html_text

    label_w, row_h, top = 150, 40, 24
    plot_w = width - label_w - 20
    height = top + row_h * len(rows) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html_text(axis)}">',
        f'<text x="{label_w}" y="14" font-size="12" fill="#57606a">{html_text(axis)}</text>',
    ]
    for index, row in enumerate(rows):
        low, high = _scale(row)

        def x(value: float, low: float = low, high: float = high) -> float:
            return label_w + (value - low) / (high - low) * plot_w

        y = top + row_h * index + row_h / 2
        colour = _OUTCOME_COLOURS.get(row.outcome, "#0969da")
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">'
            f"{html_text(row.label)}</text>"
        )
        parts.append(
            f'<line x1="{x(0):.1f}" y1="{y - 12:.1f}" x2="{x(0):.1f}" y2="{y + 12:.1f}" '
            'stroke="#8c959f" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{x(0):.1f}" y="{y + 21:.1f}" font-size="9" fill="#57606a" '
            'text-anchor="middle">0</text>'
        )
        for bound in row.bounds:
            parts.append(
                f'<line x1="{x(bound):.1f}" y1="{y - 12:.1f}" x2="{x(bound):.1f}" '
                f'y2="{y + 12:.1f}" stroke="#cf222e" stroke-width="1.5" stroke-dasharray="4 3">'
                f"<title>tolerance {bound:+.4g}</title></line>"
            )
            parts.append(
                f'<text x="{x(bound):.1f}" y="{y + 21:.1f}" font-size="9" fill="#cf222e" '
                f'text-anchor="middle">{bound:+.3g}</text>'
            )
        parts.append(
            f'<line x1="{x(row.low):.1f}" y1="{y:.1f}" x2="{x(row.high):.1f}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-width="3"><title>{html_text(row.label)}: '
            f"{row.estimate:+.4g} ({row.low:+.4g} to {row.high:+.4g})</title></line>"
        )
        parts.append(f'<circle cx="{x(row.estimate):.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>')
        parts.append(
            f'<text x="{x(row.estimate):.1f}" y="{y - 7:.1f}" font-size="10" '
            f'text-anchor="middle">{row.estimate:+.3g}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
