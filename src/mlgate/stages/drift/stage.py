"""The drift stage: compare the current data with the reference data, feature by feature.

Each feature gets two numbers:

- the population stability index (PSI), sum over bins of (c - r) * ln(c / r), where r and c are
  the shares of the reference and current rows in each bin. A numeric feature with more distinct
  reference values than `bins` is cut at the reference's quantiles (1/bins, 2/bins, ...; the
  outer bins are open-ended, so current values beyond the reference's range land in them; tied
  quantiles merge bins, so fewer bins may result). A numeric feature with at most `bins` distinct
  reference values (counts, codes, a constant) gets one bin per value instead, plus one for values
  the reference never had. A categorical feature gets one bin per category seen on either side.
  Missing values (empty cells, NaN) are one more bin in every case, so a change in how often a
  feature is missing counts as drift. A bin empty on one side would make the logarithm infinite:
  every share is raised to at least PSI_EPSILON (1e-4) first, the usual convention (a 10% share
  appearing in a bin the reference left empty then adds about 0.69).
- the p-value of a two-sample test: Kolmogorov-Smirnov (`scipy.stats.ks_2samp`, missing values
  left out) for a numeric feature, chi-square on the 2 x K table of category counts
  (`scipy.stats.chi2_contingency`, missing values one more category, a category seen on only
  one side a column with a zero) for a categorical one. A numeric feature missing entirely on
  one side is tested with chi-square on its missing and present counts instead.

The p-values are adjusted across the features for Benjamini-Hochberg's false-discovery rate by
default (`p_adjust: bh`): with 100 features and unadjusted p-values, one would be flagged at
p < 0.01 about every run by chance alone. A feature has drifted when its PSI exceeds
`psi_threshold` or its (adjusted) p-value is below `p_threshold`. With many rows a test finds
even a trivially small shift significant, while PSI measures its size: `p_threshold: 0` judges
by PSI alone.

Columns that are in one file but not the other are an error, unless excluded or left out by an
explicit `features` list: a changed schema is not a distribution to compare.

`dispatch.dispatch()` sends the drift summary to GitHub as a `workflow_dispatch` (inputs
`drifted_features`, comma-separated, and `max_psi`, which the workflow must declare) or a
`repository_dispatch` (client_payload `drifted_features` as a list, `max_psi`, and `drift` with
the counts and both files' sha256), to start retraining.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mlgate import evidence as ev
from mlgate import tabular
from mlgate.evidence import Evidence, Finding
from mlgate.report import escape
from mlgate.stages.drift.config import DriftConfig, DriftPolicy
from mlgate.stages.drift.entries import checked_entries, safe_entries, table_rows
from mlgate.stages.drift.errors import Invalid
from mlgate.stages.drift.statistics import PSI_EPSILON, Result, bh, chosen_features, compare
from mlgate.stages.finish import finished_evidence
from mlgate.stages.interface import RunContext, Stage
from mlgate.verdict import RuleResult

_NAMES_IN_REASON = 10
# The report's table of features, in Markdown and in HTML: its columns, and a row's cells.
_COLUMNS = ("feature", "kind", "PSI", "p-value", "drifted")


def _cells(entry: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """A feature's row as plain text: html_table escapes it, the Markdown table inlines it."""
    return (
        str(entry["feature"]),
        str(entry["kind"]),
        f"{entry['psi']:.4f}",
        f"{entry['p_value']:.3g}",
        "yes" if entry["drifted"] else "no",
    )


class DriftStage(Stage[DriftConfig, DriftPolicy]):
    name = "drift"
    title = "Data drift"
    extras = ("drift",)

    def run(self, config: DriftConfig, context: RunContext) -> Evidence:
        started = ev.now()
        workdir = Path(config.working_directory)
        try:
            if not workdir.is_dir():
                raise Invalid(f"working directory {workdir} is not a directory")
            reference = tabular.read(workdir / config.reference, "reference")
            current = tabular.read(workdir / config.current, "current")
            features = chosen_features(config, reference.frame, current.frame)
            results = [compare(config, reference.frame, current.frame, f) for f in features]
        except (Invalid, tabular.TableError) as exc:
            return _evidence(context, started, reason=str(exc))
        except ImportError as exc:
            return _evidence(
                context,
                started,
                reason=f"the drift stage needs {exc.name or 'numpy, scipy and pandas'}: "
                "pip install 'mlgate[drift]'",
            )
        adjusted = bh([r.p_value for r in results]) if config.p_adjust == "bh" else None
        return _evidence(
            context,
            started,
            config=config,
            tables=(reference, current),
            results=results,
            adjusted=adjusted,
        )

    def evaluate(self, policy: DriftPolicy, evidence: Evidence) -> list[RuleResult]:
        try:
            entries = checked_entries(evidence)
        except Invalid as exc:
            # Evidence edited by hand or written by something else: its numbers decide nothing.
            return [_rule("evidence", False, str(exc))]
        drifted = [e for e in entries if e["drifted"]]
        limit = policy.max_drifted_features
        if drifted:
            ranked = sorted(drifted, key=lambda e: -float(e["psi"]))
            named = ", ".join(
                f"{e['feature']} (PSI {e['psi']:.3g}, p {e['p_value']:.2g})"
                for e in ranked[:_NAMES_IN_REASON]
            )
            more = len(ranked) - _NAMES_IN_REASON
            named += f" and {more} more" if more > 0 else ""
            reason = (
                f"drift: {len(drifted)} of {len(entries)} features drifted: {named}; "
                f"at most {limit} allowed"
            )
        else:
            reason = f"drift: none of {len(entries)} features drifted, at most {limit} allowed"
        return [_rule("max_drifted_features", len(drifted) <= limit, reason)]

    def summary(self, evidence: Evidence) -> str:
        if evidence.status == "error":
            return f"error: {evidence.reason}"
        m = evidence.metrics
        features, drifted, max_psi = m.get("features"), m.get("drifted_features"), m.get("max_psi")
        names = evidence.data.get("drifted")
        shown = ""
        if isinstance(names, list) and names:
            shown = " (" + ", ".join(str(n) for n in names[:5])
            shown += ", ...)" if len(names) > 5 else ")"
        psi = f", max PSI {max_psi:.3g}" if isinstance(max_psi, (int, float)) else ""
        return f"{features} features, {drifted} drifted{shown}{psi}"

    def report_markdown(self, evidence: Evidence) -> str:
        rows = table_rows(evidence)
        if not rows:
            return ""
        cells = []
        for entry in rows:
            feature, kind, psi, p_value, drifted = _cells(entry)
            drifted = "**yes**" if entry["drifted"] else drifted
            cells.append(
                (escape.inline(feature, 200), escape.inline(kind, 40), psi, p_value, drifted)
            )
        lines = escape.markdown_table(_COLUMNS, cells)
        hidden = len(safe_entries(evidence)) - len(rows)
        if hidden > 0:
            lines.append(f"\n{hidden} more features without drift are in the evidence.")
        return "\n".join(lines)

    def report_html(self, evidence: Evidence) -> str:
        rows = table_rows(evidence)
        if not rows:
            return ""
        return escape.html_table(_COLUMNS, map(_cells, rows))


def as_json(evidence: Evidence) -> dict[str, Any]:
    """What `mlgate drift --json` prints: per feature its PSI, p-value (adjusted when the run
    adjusted them: the one compared with p_threshold) and whether it drifted."""
    return {
        "features": [
            {
                "feature": e["feature"],
                "psi": float(e["psi"]),
                "p_value": float(e["p_value"]),
                "drifted": bool(e["drifted"]),
            }
            for e in safe_entries(evidence)
        ]
    }


# -- evidence ------------------------------------------------------------------------------------


def _evidence(
    context: RunContext,
    started: datetime,
    *,
    reason: str | None = None,
    config: DriftConfig | None = None,
    tables: tuple[tabular.Table, tabular.Table] | None = None,
    results: list[Result] | None = None,
    adjusted: list[float] | None = None,
) -> Evidence:
    metrics: dict[str, ev.MetricValue] = {}
    data: dict[str, Any] = {}
    artifacts: list[ev.Artifact] = []
    findings: list[Finding] = []
    if config is not None and tables is not None and results is not None:
        entries: list[dict[str, Any]] = []
        for index, r in enumerate(results):
            p = adjusted[index] if adjusted is not None else r.p_value
            drifted = r.psi > config.psi_threshold or p < config.p_threshold
            entries.append(
                {
                    "feature": r.feature,
                    "kind": r.kind,
                    "test": r.test,
                    "psi": r.psi,
                    "statistic": r.statistic,
                    "p_value": p,
                    "p_value_raw": r.p_value,
                    "drifted": drifted,
                    "bins": r.bins,
                    "reference_missing": r.reference_missing,
                    "current_missing": r.current_missing,
                }
            )
            if drifted:
                findings.append(
                    Finding(
                        id=f"drift:{r.feature}",
                        severity="medium",
                        rule="data-drift",
                        title=f"feature {r.feature} drifted",
                        message=f"feature {r.feature}: PSI {r.psi:.4f} "
                        f"(threshold {config.psi_threshold:g}), {r.test} p-value {p:.3g} "
                        f"(threshold {config.p_threshold:g})",
                    )
                )
        reference, current = tables
        drifted_names = [e["feature"] for e in entries if e["drifted"]]
        metrics = {
            "features": len(entries),
            "drifted_features": len(drifted_names),
            "max_psi": max((r.psi for r in results), default=0.0),
            "min_p_value": min((float(e["p_value"]) for e in entries), default=1.0),
            "reference_rows": len(reference.frame),
            "current_rows": len(current.frame),
        }
        data = {
            "reference": _file_entry(reference),
            "current": _file_entry(current),
            "settings": {
                "bins": config.bins,
                "psi_threshold": config.psi_threshold,
                "p_threshold": config.p_threshold,
                "p_adjust": config.p_adjust,
                "psi_epsilon": PSI_EPSILON,
            },
            "features": entries,
            "drifted": drifted_names,
        }
        artifacts = [
            ev.Artifact(
                path=str(t.path), sha256=t.sha256, size=t.size, description=f"{t.label} data"
            )
            for t in tables
        ]
    return finished_evidence(
        DriftStage.name,
        context,
        started,
        reason=reason,
        metrics=metrics,
        findings=findings,
        artifacts=artifacts,
        data=data,
        tool_versions=_tool_versions() if reason is None else {},
    )


def _file_entry(table: tabular.Table) -> dict[str, object]:
    return {
        "path": str(table.path),
        "format": table.format,
        "sha256": table.sha256,
        "rows": len(table.frame),
        "columns": len(table.frame.columns),
    }


def _tool_versions() -> dict[str, str]:
    found = {}
    for package in ("numpy", "scipy", "pandas"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def _rule(rule: str, ok: bool, reason: str) -> RuleResult:
    return RuleResult(
        stage=DriftStage.name,
        rule=f"drift.{rule}",
        outcome="pass" if ok else "fail",
        reason=reason,
    )
