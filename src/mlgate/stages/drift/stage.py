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

`dispatch()` sends the drift summary to GitHub as a `workflow_dispatch` (inputs
`drifted_features`, comma-separated, and `max_psi`, which the workflow must declare) or a
`repository_dispatch` (client_payload `drifted_features` as a list, `max_psi`, and `drift` with
the counts and both files' sha256), to start retraining.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlgate import evidence as ev
from mlgate import tabular
from mlgate.errors import MlgateError
from mlgate.evidence import Evidence, Finding
from mlgate.report import escape
from mlgate.stages.interface import RunContext, Stage, StageConfig, StagePolicy
from mlgate.verdict import RuleResult

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd  # type: ignore[import-untyped]

    from mlgate.github.context import GitHubContext

PSI_EPSILON = 1e-4
# GitHub's limits: workflow_dispatch takes at most 10 inputs of at most 65,535 characters in all
# (the current API description allows 25 inputs; 10 is what older servers, GitHub Enterprise
# Server among them, take); repository_dispatch a client_payload of at most 10 top-level keys,
# under 64 KB.
MAX_DISPATCH_KEYS = 10
MAX_WORKFLOW_INPUTS_CHARS = 65_535
MAX_CLIENT_PAYLOAD_BYTES = 64 * 1024 - 1
# The keys dispatch() fills in; config inputs may not use them.
WORKFLOW_SUMMARY_INPUTS = ("drifted_features", "max_psi")
REPOSITORY_SUMMARY_KEYS = ("drifted_features", "max_psi", "drift")
_NAMES_IN_REASON = 10
_TABLE_ROWS = 50

InputValue = str | int | float | bool


class DispatchTarget(BaseModel):
    """Where a retraining run is started when drift passes the policy's threshold."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    workflow: str | None = Field(
        default=None,
        pattern=r"^([0-9]+|[A-Za-z0-9._-]+\.ya?ml)$",
        description="workflow_dispatch: the workflow's file name in .github/workflows (or its "
        "id); it must declare the inputs drifted_features and max_psi, and those in inputs.",
    )
    ref: str = Field(
        default="main", min_length=1, description="workflow_dispatch: branch or tag to run on."
    )
    inputs: dict[str, InputValue] = Field(
        default_factory=dict,
        description="Extra workflow inputs (sent as strings), or extra client_payload keys of a "
        "repository_dispatch.",
    )
    repository_dispatch: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="repository_dispatch: the event type a workflow listens for "
        "(on: repository_dispatch: types: [...]).",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> DispatchTarget:
        if (self.workflow is None) == (self.repository_dispatch is None):
            raise ValueError("give workflow (workflow_dispatch) or repository_dispatch, one")
        reserved = WORKFLOW_SUMMARY_INPUTS if self.workflow else REPOSITORY_SUMMARY_KEYS
        taken = sorted(set(self.inputs) & set(reserved))
        if taken:
            raise ValueError(f"inputs may not set {', '.join(taken)}: the drift summary fills it")
        room = MAX_DISPATCH_KEYS - len(reserved)
        if len(self.inputs) > room:
            raise ValueError(
                f"at most {room} inputs: GitHub takes {MAX_DISPATCH_KEYS} keys, "
                f"{len(reserved)} of them carry the drift summary"
            )
        if self.repository_dispatch is not None and "ref" in self.model_fields_set:
            raise ValueError("ref applies to a workflow, not to a repository_dispatch")
        return self


class DriftConfig(StageConfig):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    reference: str = Field(
        min_length=1,
        description="Reference data (what the model was trained on): CSV, or Parquet by its "
        "suffix (.parquet, .pq); relative to working_directory.",
    )
    current: str = Field(
        min_length=1, description="Current data (what the model sees now), same formats."
    )
    features: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Columns compared [default: every column of both files except exclude; "
        "a column in one file only is then an error].",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Columns never compared (ids, timestamps, labels)."
    )
    categorical: list[str] = Field(
        default_factory=list,
        description="Columns compared as categories even if numeric [default: non-numeric and "
        "boolean columns].",
    )
    bins: int = Field(
        default=10,
        ge=2,
        le=1000,
        description="PSI bins of a numeric feature, cut at the reference's quantiles.",
    )
    psi_threshold: float = Field(
        default=0.2, gt=0, description="A feature whose PSI exceeds this has drifted."
    )
    p_threshold: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        description="A feature whose (adjusted) two-sample test p-value is below this has "
        "drifted; 0 judges by PSI alone.",
    )
    p_adjust: Literal["bh", "none"] = Field(
        default="bh",
        description="bh: Benjamini-Hochberg adjustment of the p-values across features (false "
        "discovery rate); none: each feature's own p-value.",
    )
    dispatch: DispatchTarget | None = Field(
        default=None,
        description="Start retraining on GitHub when drift passes policy.drift."
        "max_drifted_features: {workflow: FILE, ref: main, inputs: {...}} or "
        "{repository_dispatch: EVENT_TYPE}.",
    )

    @model_validator(mode="after")
    def _features_not_excluded(self) -> DriftConfig:
        if self.features is not None:
            both = sorted(set(self.features) & set(self.exclude))
            if both:
                raise ValueError(f"features and exclude both name {', '.join(both)}")
            if len(set(self.features)) != len(self.features):
                raise ValueError("features lists a column twice")
        return self


class DriftPolicy(StagePolicy):
    max_drifted_features: int = Field(
        default=0, ge=0, description="More drifted features than this fails the gate."
    )


class _Invalid(Exception):
    """Input that cannot be compared; the message is the one-line reason."""


@dataclass(frozen=True)
class _Result:
    feature: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2"]
    psi: float
    statistic: float
    p_value: float
    bins: int
    reference_missing: int
    current_missing: int


class DriftStage(Stage[DriftConfig, DriftPolicy]):
    name = "drift"
    title = "Data drift"
    config_model = DriftConfig
    policy_model = DriftPolicy
    extras = ("drift",)

    def run(self, config: DriftConfig, context: RunContext) -> Evidence:
        started = ev.now()
        workdir = Path(config.working_directory)
        try:
            if not workdir.is_dir():
                raise _Invalid(f"working directory {workdir} is not a directory")
            reference = tabular.read(workdir / config.reference, "reference")
            current = tabular.read(workdir / config.current, "current")
            features = _features(config, reference.frame, current.frame)
            results = [_compare(config, reference.frame, current.frame, f) for f in features]
        except (_Invalid, tabular.TableError) as exc:
            return _evidence(context, started, reason=str(exc))
        except ImportError as exc:
            return _evidence(
                context,
                started,
                reason=f"the drift stage needs {exc.name or 'numpy, scipy and pandas'}: "
                "pip install 'mlgate[drift]'",
            )
        adjusted = _bh([r.p_value for r in results]) if config.p_adjust == "bh" else None
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
            entries = _entries(evidence)
        except _Invalid as exc:
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
        rows = _table_rows(evidence)
        if not rows:
            return ""
        lines = ["| feature | kind | PSI | p-value | drifted |", "|---|---|---|---|---|"]
        for e in rows:
            lines.append(
                f"| {escape.inline(str(e['feature']), 200)} | {escape.inline(str(e['kind']), 40)} "
                f"| {e['psi']:.4f} "
                f"| {e['p_value']:.3g} | {'**yes**' if e['drifted'] else 'no'} |"
            )
        hidden = len(_safe_entries(evidence)) - len(rows)
        if hidden > 0:
            lines.append(f"\n{hidden} more features without drift are in the evidence.")
        return "\n".join(lines)

    def report_html(self, evidence: Evidence) -> str:
        rows = _table_rows(evidence)
        if not rows:
            return ""
        return escape.html_table(
            ("feature", "kind", "PSI", "p-value", "drifted"),
            (
                (
                    str(e["feature"]),
                    str(e["kind"]),
                    f"{e['psi']:.4f}",
                    f"{e['p_value']:.3g}",
                    "yes" if e["drifted"] else "no",
                )
                for e in rows
            ),
        )


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
            for e in _safe_entries(evidence)
        ]
    }


# -- reading -------------------------------------------------------------------------------------


def _features(config: DriftConfig, reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """The columns to compare, in the reference's order; a schema difference is an error."""
    if config.features is not None:
        for role, frame in (("reference", reference), ("current", current)):
            missing = [f for f in config.features if f not in frame.columns]
            if missing:
                raise _Invalid(f"feature {_names(missing)} is not a column of the {role} file")
        return list(config.features)
    excluded = set(config.exclude)
    only_reference = [
        c for c in reference.columns if c not in current.columns and c not in excluded
    ]
    only_current = [c for c in current.columns if c not in reference.columns and c not in excluded]
    if only_reference or only_current:
        parts = []
        if only_reference:
            parts.append(f"only in the reference: {_names(only_reference)}")
        if only_current:
            parts.append(f"only in the current file: {_names(only_current)}")
        raise _Invalid(
            f"the files' columns differ ({'; '.join(parts)}): exclude them or list features"
        )
    chosen = [c for c in reference.columns if c not in excluded]
    if not chosen:
        raise _Invalid("no column is left to compare once exclude is applied")
    return chosen


def _names(columns: list[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:5])
    return shown + (f" and {len(columns) - 5} more" if len(columns) > 5 else "")


# -- statistics ----------------------------------------------------------------------------------


def _compare(
    config: DriftConfig, reference: pd.DataFrame, current: pd.DataFrame, feature: str
) -> _Result:
    from pandas.api import types  # type: ignore[import-untyped]

    ref, cur = reference[feature], current[feature]
    forced = feature in config.categorical

    def numeric(series: pd.Series) -> bool:
        return bool(types.is_numeric_dtype(series) and not types.is_bool_dtype(series))

    if not forced and numeric(ref):
        if not numeric(cur) and cur.notna().any():
            raise _Invalid(
                f"feature {feature!r} is numeric in the reference but not in the current file "
                f"(dtype {cur.dtype}); list it under categorical to compare it as categories"
            )
        return _numeric(feature, ref, cur, config.bins)
    return _categorical(feature, ref, cur, forced and numeric(ref) and numeric(cur))


def _numeric(feature: str, ref: pd.Series, cur: pd.Series, bins: int) -> _Result:
    import numpy as np

    r = ref.to_numpy(dtype=np.float64, na_value=np.nan)
    c = cur.to_numpy(dtype=np.float64, na_value=np.nan)
    r_missing, c_missing = np.isnan(r), np.isnan(c)
    r_values, c_values = r[~r_missing], c[~c_missing]
    finite = r_values[np.isfinite(r_values)]
    distinct = np.unique(finite)
    if distinct.size <= bins:
        # One bin per reference value and one for anything else (as in a category table).
        r_index = _value_bins(distinct, r_values)
        c_index = _value_bins(distinct, c_values)
        used = distinct.size + 1
    else:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
        r_index = np.searchsorted(edges, r_values, side="right")
        c_index = np.searchsorted(edges, c_values, side="right")
        used = edges.size + 1
    r_counts = np.append(np.bincount(r_index, minlength=used), r_missing.sum())
    c_counts = np.append(np.bincount(c_index, minlength=used), c_missing.sum())
    psi = _psi(r_counts, c_counts)
    if r_values.size and c_values.size:
        from scipy import stats  # type: ignore[import-untyped]

        test = stats.ks_2samp(r_values, c_values)
        statistic, p_value = float(test.statistic), float(test.pvalue)
    else:
        # Missing entirely on one side: whether it is missing is all there is to compare.
        present = np.array([[r_values.size, r_missing.sum()], [c_values.size, c_missing.sum()]])
        statistic, p_value = _chi2(present)
    return _Result(
        feature=feature,
        kind="numeric",
        test="ks",
        psi=psi,
        statistic=statistic,
        p_value=_probability(p_value),
        bins=used + 1,
        reference_missing=int(r_missing.sum()),
        current_missing=int(c_missing.sum()),
    )


def _value_bins(distinct: npt.NDArray[np.float64], values: npt.NDArray[np.float64]) -> Any:
    """Index of each value among `distinct`, or len(distinct) for a value not among them."""
    import numpy as np

    if distinct.size == 0:
        return np.zeros(values.size, dtype=np.intp)
    position = np.searchsorted(distinct, values)
    clipped = np.minimum(position, distinct.size - 1)
    return np.where(distinct[clipped] == values, clipped, distinct.size)


def _categorical(feature: str, ref: pd.Series, cur: pd.Series, both_numeric: bool) -> _Result:
    import numpy as np

    def keys(series: pd.Series) -> pd.Series:
        # Numbers compare by value (a column read as int on one side and as float on the
        # other, because of a missing cell, must not differ); anything else as text.
        return series.astype("float64") if both_numeric else series.astype("string")

    r_counts = keys(ref).value_counts(dropna=False)
    c_counts = keys(cur).value_counts(dropna=False)
    categories = r_counts.index.union(c_counts.index)
    r = r_counts.reindex(categories, fill_value=0).to_numpy(dtype=np.int64)
    c = c_counts.reindex(categories, fill_value=0).to_numpy(dtype=np.int64)
    statistic, p_value = _chi2(np.vstack([r, c]))
    return _Result(
        feature=feature,
        kind="categorical",
        test="chi2",
        psi=_psi(r, c),
        statistic=statistic,
        p_value=_probability(p_value),
        bins=len(categories),
        reference_missing=int(ref.isna().sum()),
        current_missing=int(cur.isna().sum()),
    )


def _psi(reference: Any, current: Any) -> float:
    import numpy as np

    r = np.maximum(reference / reference.sum(), PSI_EPSILON)
    c = np.maximum(current / current.sum(), PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def _chi2(table: Any) -> tuple[float, float]:
    """Chi-square test of a 2 x K table of counts; columns empty on both sides are dropped."""
    import numpy as np
    from scipy import stats

    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0  # one category on both sides: nothing can differ
    statistic, p_value, _, _ = stats.chi2_contingency(np.asarray(table, dtype=np.float64))
    return float(statistic), float(p_value)


def _probability(value: float) -> float:
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else 1.0


def _bh(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values, in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=p_values.__getitem__)
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        index = order[rank - 1]
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = min(running, 1.0)
    return adjusted


# -- evidence ------------------------------------------------------------------------------------


def _evidence(
    context: RunContext,
    started: datetime,
    *,
    reason: str | None = None,
    config: DriftConfig | None = None,
    tables: tuple[tabular.Table, tabular.Table] | None = None,
    results: list[_Result] | None = None,
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
    return Evidence(
        stage=DriftStage.name,
        status="error" if reason is not None else "passed",
        reason=reason,
        started_at=started,
        finished_at=ev.now(),
        metrics=metrics,
        findings=findings,
        artifacts=artifacts,
        data=data,
        provenance=ev.collect_provenance(
            context.config_digest, _tool_versions() if reason is None else {}
        ),
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


def _entries(evidence: Evidence) -> list[dict[str, Any]]:
    """The per-feature entries, once the evidence agrees with itself."""
    if evidence.status != "passed":
        raise _Invalid(f"drift: evidence status '{evidence.status}' is not one the stage writes")
    entries = _safe_entries(evidence)
    raw = evidence.data.get("features")
    if not isinstance(raw, list) or len(raw) != len(entries) or not entries:
        raise _Invalid("drift: evidence lacks a well-formed list of compared features")
    if evidence.metrics.get("drifted_features") != sum(1 for e in entries if e["drifted"]):
        raise _Invalid("drift: evidence's drifted count does not match its features")
    return entries


def _safe_entries(evidence: Evidence) -> list[dict[str, Any]]:
    """Entries with a name, finite numbers and a drifted flag; others left out."""
    raw = evidence.data.get("features")
    if not isinstance(raw, list):
        return []
    kept = []
    for e in raw:
        if (
            isinstance(e, dict)
            and isinstance(e.get("feature"), str)
            and _finite(e.get("psi"))
            and _finite(e.get("p_value"))
            and isinstance(e.get("drifted"), bool)
        ):
            kept.append(e)
    return kept


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _table_rows(evidence: Evidence) -> list[dict[str, Any]]:
    """Drifted features first, then by PSI; at most _TABLE_ROWS, every drifted one kept."""
    entries = sorted(_safe_entries(evidence), key=lambda e: (not e["drifted"], -float(e["psi"])))
    drifted = sum(1 for e in entries if e["drifted"])
    return entries[: max(_TABLE_ROWS, drifted)]


def _rule(rule: str, ok: bool, reason: str) -> RuleResult:
    return RuleResult(
        stage=DriftStage.name,
        rule=f"drift.{rule}",
        outcome="pass" if ok else "fail",
        reason=reason,
    )


# -- retraining trigger --------------------------------------------------------------------------


class DispatchError(MlgateError):
    """The dispatch could not be sent; the message is the one-line reason."""


def dispatch(
    evidence: Evidence,
    target: DispatchTarget,
    github_context: GitHubContext,
    *,
    max_drifted_features: int = 0,
) -> str:
    """Start retraining on GitHub when more than `max_drifted_features` features drifted; one
    line saying what was sent, or why nothing was. Raises DispatchError (one line).

    Not retried: a dispatch that failed with a 5xx may have started the workflow already, and a
    retry would start a second one.
    """
    if evidence.status == "error":
        raise DispatchError(f"drift dispatch: the drift stage errored: {evidence.reason}")
    try:
        entries = _entries(evidence)
    except _Invalid as exc:
        raise DispatchError(f"drift dispatch: {str(exc).removeprefix('drift: ')}") from None
    drifted = sorted((e for e in entries if e["drifted"]), key=lambda e: -float(e["psi"]))
    if len(drifted) <= max_drifted_features:
        return (
            f"no dispatch: {len(drifted)} of {len(entries)} features drifted, "
            f"at most {max_drifted_features} allowed"
        )
    names = [str(e["feature"]) for e in drifted]
    max_psi = max(float(e["psi"]) for e in entries)
    summary = f"{len(names)} of {len(entries)} features drifted (max PSI {max_psi:.3g})"
    if target.workflow is not None:
        inputs = _workflow_inputs(target, names, max_psi)
        what = f"workflow_dispatch of {target.workflow} on {target.ref}"

        def send(repo: Any) -> None:
            repo.get_workflow(target.workflow).create_dispatch(target.ref, inputs, throw=True)

    else:
        payload = _client_payload(target, evidence, names, max_psi, len(entries))
        what = f"repository_dispatch {target.repository_dispatch!r}"

        def send(repo: Any) -> None:
            # create_repository_dispatch() hides GitHub's answer (it returns False on any
            # error); the same request through the requester raises with status and message.
            body = {"event_type": target.repository_dispatch, "client_payload": payload}
            repo.requester.requestJsonAndCheck("POST", f"{repo.url}/dispatches", input=body)

    _send(github_context, send, what)
    return f"sent {what} to {github_context.repository}: {summary}"


def _workflow_inputs(target: DispatchTarget, names: list[str], max_psi: float) -> dict[str, str]:
    inputs = {key: _as_input(value) for key, value in target.inputs.items()}
    inputs["max_psi"] = f"{max_psi:.6g}"
    inputs["drifted_features"] = ""
    budget = MAX_WORKFLOW_INPUTS_CHARS - len(json.dumps(inputs))
    if budget < 0:
        raise DispatchError(
            f"drift dispatch: the workflow inputs exceed GitHub's {MAX_WORKFLOW_INPUTS_CHARS} "
            "characters before the drift summary"
        )
    # Names as JSON text (escapes included), joined by ", ", cut with a "(+N more)" tail.
    sizes = [len(json.dumps(name)) - 2 for name in names]
    if sum(sizes) + 2 * (len(names) - 1) <= budget:
        inputs["drifted_features"] = ", ".join(names)
        return inputs
    used, kept = 0, 0
    for size in sizes:
        tail = len(f" (+{len(names) - kept - 1} more)")
        if used + (2 if kept else 0) + size + tail > budget:
            break
        used += (2 if kept else 0) + size
        kept += 1
    inputs["drifted_features"] = f"{', '.join(names[:kept])} (+{len(names) - kept} more)".strip()
    return inputs


def _client_payload(
    target: DispatchTarget, evidence: Evidence, names: list[str], max_psi: float, compared: int
) -> dict[str, Any]:
    def side(role: str) -> object:
        entry = evidence.data.get(role)
        return entry.get("sha256") if isinstance(entry, dict) else None

    drift: dict[str, Any] = {
        "drifted_count": len(names),
        "features_compared": compared,
        "reference_sha256": side("reference"),
        "current_sha256": side("current"),
        "commit": evidence.provenance.git_sha,
        "drifted_features_left_out": 0,
    }
    payload: dict[str, Any] = dict(target.inputs) | {
        "drifted_features": [],
        "max_psi": max_psi,
        "drift": drift,
    }
    budget = MAX_CLIENT_PAYLOAD_BYTES - len(json.dumps(payload).encode())
    if budget < 0:
        raise DispatchError("drift dispatch: the client_payload exceeds GitHub's 64 KB limit")
    used, kept = 0, 0
    for name in names:
        size = len(json.dumps(name).encode()) + (2 if kept else 0)
        if used + size > budget - 8:  # room for the left-out count's digits
            break
        used += size
        kept += 1
    payload["drifted_features"] = names[:kept]
    drift["drifted_features_left_out"] = len(names) - kept
    return payload


def _as_input(value: InputValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _send(context: GitHubContext, send: Any, what: str) -> None:
    import requests
    from github.GithubException import GithubException

    from mlgate.github.client import connect

    repo = connect(context, write_delay=0).get_repo(context.repository)
    try:
        send(repo)
    except GithubException as exc:
        data = exc.data
        message = data.get("message") if isinstance(data, dict) else None
        detail = " ".join(str(message or data or "").split())[:200]
        maybe = " (not retried: it may have been sent)" if exc.status >= 500 else ""
        raise DispatchError(f"{what}: GitHub answered {exc.status} {detail}{maybe}") from None
    except requests.RequestException as exc:
        raise DispatchError(
            f"{what}: GitHub unreachable at {context.api_url}: {type(exc).__name__} "
            "(not retried: it may have been sent)"
        ) from None
