"""`mlgate compare`: latency samples of a baseline and a candidate, compared."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from mlgate.samples import Samples


def _fraction(text: str) -> float:
    """'10%' or '0.1' as 0.1."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a percentage like 10% or a fraction like 0.1"
        ) from None
    if not 0 <= value < 10:
        raise click.BadParameter(f"{text!r} is out of range")
    return value


@click.command()
@click.argument("baseline", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("candidate", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    type=click.Choice(["p50", "p90", "p95", "p99", "mean"]),
    help="Statistic to compare; repeatable [default: p50, p95, mean; p99 needs tens of "
    "thousands of samples per side to decide].",
)
@click.option(
    "--tolerance",
    default="10%",
    show_default=True,
    help="Practical tolerance: a change within it is 'no change' (e.g. 10% or 0.1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(
    baseline: Path, candidate: Path, metrics: tuple[str, ...], tolerance: str, as_json: bool
) -> None:
    """Compare latency samples of BASELINE and CANDIDATE (evidence or raw sample files).

    Decides regression, improvement, no change or inconclusive per metric against the
    tolerance. When both sides mark the same number of rounds ('# round' lines, as the load
    stage writes for a champion loaded in interleaved rounds), rounds are paired: a t interval
    and t-test of the per-round log-ratios, which machine drift between rounds cannot fool (a
    round whose time windows both sides mark, '# window' lines, counts as the mean of its
    windows' log-ratios).
    Otherwise the samples are taken as independent: a bootstrap interval of the relative
    change and a Mann-Whitney U test. The false-discovery rate is controlled across metrics.
    Exit 0 no regression, 1 regression, 3 inconclusive.
    """
    from mlgate import samples, stats

    tol = _fraction(tolerance)
    base, cand = samples.read_samples(baseline), samples.read_samples(candidate)
    chosen = list(metrics) or list(stats.DEFAULT_METRICS)
    paired = len(base.rounds) >= 2 and len(base.rounds) == len(cand.rounds)
    if paired:
        results = stats.compare_rounds(
            *_windows_if_matched(base, cand), metrics=chosen, tolerance=tol
        )
    else:
        if base.rounds or cand.rounds:
            click.echo(
                f"note: rounds do not pair up ({len(base.rounds)} vs {len(cand.rounds)}); "
                "the samples are compared as independent",
                err=True,
            )
        results = stats.compare(base.values, cand.values, metrics=chosen, tolerance=tol)
    if as_json:
        document = {
            "method": "paired rounds" if paired else "independent samples",
            "metrics": [r.as_json() for r in results],
        }
        click.echo(json.dumps(document, indent=2))
    else:
        rounds = f", {len(base.rounds)} paired rounds" if paired else ""
        _print_comparison(results, tol, len(base.values), len(cand.values), rounds)
    decisions = {r.decision for r in results}
    sys.exit(1 if "regression" in decisions else 3 if "inconclusive" in decisions else 0)


def _windows_if_matched(base: Samples, cand: Samples) -> tuple[list[Any], list[Any]]:
    """Both sides' rounds in their time windows when every round has as many on each side;
    else each round whole."""
    base_windows, cand_windows = base.windows, cand.windows
    if [len(w) for w in base_windows] == [len(w) for w in cand_windows]:
        return base_windows, cand_windows
    return [[r] for r in base.rounds], [[r] for r in cand.rounds]


def _print_comparison(
    results: Any, tolerance: float, n_base: int, n_cand: int, rounds: str
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"baseline n={n_base}, candidate n={n_cand}{rounds}, tolerance ±{tolerance:.0%}",
        title_justify="left",
    )
    for column in ("metric", "baseline ms", "candidate ms", "change", "95% CI", "p", "decision"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.metric,
            f"{r.baseline:.2f}",
            f"{r.candidate:.2f}",
            f"{r.relative_change:+.1%}",
            f"[{r.ci[0]:+.1%}, {r.ci[1]:+.1%}]",
            f"{r.p_value:.3g}",
            r.decision,
        )
    # Wide enough for the table even when the output is a pipe or a CI log.
    Console(highlight=False, width=max(110, shutil.get_terminal_size().columns)).print(table)
