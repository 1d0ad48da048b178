"""Charts for reports: Mermaid xychart for GitHub markdown, inline SVG for the HTML report.

Both take numbers only (labels are ours), so nothing untrusted reaches them. GitHub's Mermaid
may lack newer diagram types, so the markdown always carries the numbers in a table too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
    table = [
        f"| {unit} | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
        *(f"| {name} | " + " | ".join(f"{v:.4g}" for v in series[name]) + " |" for name in names),
    ]
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
