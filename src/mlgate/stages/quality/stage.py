"""The quality stage: is the candidate model at least as good as the champion on held-out data?

Both models are MLflow models: a registry URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``),
another artifact URI (``runs:/RUN_ID/PATH``, ...) or a local model directory. Each predicts every
row of one dataset (CSV or Parquet) through ``mlflow.pyfunc``; probabilities come from the
underlying scikit-learn model (``predict_proba``) when the model has the sklearn flavor.

Task: ``task`` in the config, else inferred, in this order: an sklearn model says itself (a
classifier, or anything with predict_proba, is classification; a regressor is regression);
otherwise a target that is boolean, text or categorical, or whole numbers with at most 20
distinct values, is classification; anything else is regression.

Metrics, computed by one vectorised code path for the values and their intervals, and equal to
scikit-learn's (the tests hold them to it):

- classification: ``accuracy``; ``f1_macro`` (F1 averaged over the labels found in the truth or
  the predictions); ``roc_auc`` (binary, or one-vs-rest macro over the labels in the data) and
  ``log_loss`` - these two need probabilities, and are left out, with a note, without them;
- regression: ``rmse``, ``mae``, ``r2``.

Comparison, per metric: ``difference`` = candidate - champion in the metric's own units, and
``higher_is_better`` says which sign is good. Its interval is a paired percentile bootstrap: rows
are resampled with replacement, the same resamples for both models, so what the models share
(hard rows, easy rows) cancels out of the difference. For accuracy, McNemar's exact test on the
rows exactly one of the two models gets right gives a p-value. The same is done per value of each
``slices`` column, with intervals only when the slice has ``min_slice_rows`` rows.

Champion: ``champion`` in the config, which must resolve (an explicit champion that cannot be
found is an error); else, for a registered candidate, the version at ``champion_alias``
(``production``) of the same model. When that alias is not set there is no champion: the first
model. Policy ``first_model`` decides it (default pass, judged on the floors only).

Policy, per metric, "better" meaning higher for accuracy, F1, ROC AUC and R2, lower for log
loss, RMSE and MAE:

- ``floors``: the candidate's value must be at least as good as the floor (at least 0.9
  accuracy; at most 3.5 RMSE). A floor on a metric that was not measured fails.
- ``max_drop`` (absolute) or ``max_relative_drop`` (a fraction of the champion's value): the
  tolerance t of a drop. With the one-sided bounds of the change at the configured confidence
  turned to "better is positive", [lo, hi]: hi < -t fails (surely worse beyond the tolerance);
  lo >= -t passes (any drop surely within it); otherwise the data cannot tell, which is
  inconclusive, never a pass. A non-inferiority test (stages.quality_rules says why it is
  one-sided, and why several metrics need no multiplicity correction); an improvement,
  however large, never fails.
- ``slice_floors``: floors for every slice value with at least ``min_slice_rows`` rows.

Cost: the bootstrap is O(resamples x rows) per scope (all rows, then each slice column): about
10 s for 100,000 rows and 2000 resamples on one core. The models are loaded in this process,
which runs their (unpickled) code: scan them first (the scan stage's model scanner).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeGuard, cast, get_args
from urllib.parse import unquote, urlsplit

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from mlgate import evidence as ev
from mlgate.evidence import Evidence
from mlgate.report import escape
from mlgate.report.comparison import Comparison
from mlgate.stages import model_guard, quality_report, quality_rules
from mlgate.stages.interface import RunContext, Stage, StageConfig, StagePolicy
from mlgate.verdict import Outcome, RuleResult

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mlgate.registry.mlflow_registry import Registry

    FloatArray = npt.NDArray[np.float64]
    IntArray = npt.NDArray[np.int64]
    BoolArray = npt.NDArray[np.bool_]
    # Bootstrap weights (resamples x rows: how often each row was drawn) -> one value per resample.
    Statistic = Callable[[FloatArray], FloatArray]

Task = Literal["classification", "regression"]
Metric = Literal["accuracy", "f1_macro", "roc_auc", "log_loss", "rmse", "mae", "r2"]

METRICS: tuple[str, ...] = get_args(Metric)
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "f1_macro": True,
    "roc_auc": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
# Bounded metrics take an absolute tolerance; the scale of the others depends on the data, so
# theirs is a fraction of the champion's value.
DEFAULT_MAX_DROP: dict[Metric, float | None] = {
    "accuracy": 0.02,
    "f1_macro": 0.02,
    "roc_auc": 0.02,
    "r2": 0.02,
}
DEFAULT_MAX_RELATIVE_DROP: dict[Metric, float | None] = {
    "log_loss": 0.05,
    "rmse": 0.05,
    "mae": 0.05,
}
# A whole-number target with at most this many distinct values is taken for class labels.
_MAX_INFERRED_CLASSES = 20
# Bootstrap weights are drawn in chunks of at most this many (resample, row) cells, which bounds
# memory at a few arrays of 16 MiB whatever the number of rows.
_CHUNK = 1 << 21
# An interval needs this share of resamples where the metric is defined (ROC AUC is not when a
# resample of a small slice holds one label only).
_MIN_DEFINED_SHARE = 0.9
_REGISTERED = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?")
# A scheme of two letters or more: "C:\models" is a path.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
# Rows of the per-slice table in markdown reports (PR comments have a size limit).
_MAX_SLICE_LINES = 200


class QualityConfig(StageConfig):
    candidate: str = Field(
        min_length=1,
        description="The model to judge: an MLflow model URI (models:/NAME@ALIAS, "
        "models:/NAME/VERSION, runs:/RUN_ID/PATH, ...) or a local MLflow model directory, "
        "relative to working_directory.",
    )
    champion: str | None = Field(
        default=None,
        description="The model to compare with, given like candidate; it must exist. Default: "
        "the version at champion_alias of a registered candidate's model.",
    )
    champion_alias: str | None = Field(
        default="production",
        pattern=r"^[\w-]+$",
        description="When candidate is a registered model and champion is not given, the version "
        "this alias of the same model points at is the champion; when the alias is not set, "
        "there is none (the first model, see policy first_model). null turns this off.",
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking and registry URI for models:/ and runs:/ URIs "
        "[default: $MLFLOW_TRACKING_URI, else sqlite:///.mlgate/mlflow.db].",
    )
    data: str = Field(
        min_length=1,
        description="Evaluation data, relative to working_directory: CSV, or Parquet "
        "(.parquet, .pq, or a file starting with the Parquet magic bytes).",
    )
    target: str = Field(min_length=1, description="Column holding the true label or value.")
    task: Task | None = Field(
        default=None,
        description="classification or regression [default: inferred: an sklearn model's own "
        "kind; else a boolean, text, categorical or whole-number target with at most 20 "
        "distinct values is classification, anything else regression].",
    )
    features: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Columns given to both models [default, per model: its signature's inputs, "
        "else the columns its sklearn estimator was fitted on, else every column but target].",
    )
    slices: list[str] = Field(
        default_factory=list,
        description="Segment columns: metrics (and intervals) are also computed for each of "
        "their values.",
    )
    min_slice_rows: int = Field(
        default=30,
        ge=2,
        description="A slice value with fewer rows gets values only: no interval, no slice floor.",
    )
    max_slice_values: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="A slice column with more distinct values is an error (an id, not a segment).",
    )
    resamples: int = Field(
        default=2000, ge=100, le=100_000, description="Bootstrap resamples per interval."
    )
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1, description="Confidence level of the intervals."
    )
    seed: int = Field(default=0, ge=0, description="Seed of the bootstrap: same seed, same CIs.")


_Tolerance = Annotated[float, Field(ge=0, allow_inf_nan=False)] | None


class QualityPolicy(StagePolicy):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    floors: dict[Metric, float] = Field(
        default_factory=dict,
        description="The candidate's value must be at least this good, per metric: a minimum "
        "for accuracy, f1_macro, roc_auc, r2; a maximum for log_loss, rmse, mae.",
    )
    max_drop: dict[Metric, _Tolerance] = Field(
        default_factory=lambda: dict(DEFAULT_MAX_DROP),
        description="Tolerated drop from the champion, absolute, per metric; merged over the "
        "defaults (0.02 for accuracy, f1_macro, roc_auc, r2); null removes one. One-sided "
        "bounds of the change at the configured confidence decide: the worst-side bound "
        "within the tolerance passes, the best-side bound beyond it fails, otherwise "
        "inconclusive.",
    )
    max_relative_drop: dict[Metric, _Tolerance] = Field(
        default_factory=lambda: dict(DEFAULT_MAX_RELATIVE_DROP),
        description="Tolerated drop as a fraction of the champion's value, for metrics without "
        "a max_drop; merged over the defaults (0.05 for log_loss, rmse, mae); null removes one.",
    )
    slice_floors: dict[Metric, float] = Field(
        default_factory=dict,
        description="Floors applied to every slice value with at least min_slice_rows rows.",
    )
    first_model: Literal["pass", "fail"] = Field(
        default="pass",
        description="Without a champion (its alias is not set yet): pass, judged on the floors "
        "only, or fail.",
    )

    @field_validator("max_drop", "max_relative_drop", mode="after")
    @classmethod
    def _over_the_defaults(
        cls, value: dict[Metric, _Tolerance], info: ValidationInfo
    ) -> dict[Metric, _Tolerance]:
        # Tightening one metric must not silently drop the comparison of the others.
        defaults = DEFAULT_MAX_DROP if info.field_name == "max_drop" else DEFAULT_MAX_RELATIVE_DROP
        return defaults | value

    def tolerance(self, metric: str, champion: float) -> tuple[float, str] | None:
        """The tolerated drop of a metric (in its units) and how it was set; None: not compared."""
        absolute = self.max_drop.get(cast(Metric, metric))
        if absolute is not None:
            return absolute, f"{absolute:g}"
        relative = self.max_relative_drop.get(cast(Metric, metric))
        if relative is not None:
            allowed = relative * abs(champion)
            return allowed, f"{relative:.0%} of the champion's value = {allowed:.4g}"
        return None


class _Invalid(Exception):
    """Input the stage cannot evaluate; the message is the one-line reason."""


class QualityStage(Stage[QualityConfig, QualityPolicy]):
    name = "quality"
    title = "Model quality"
    config_model = QualityConfig
    policy_model = QualityPolicy
    extras = ("quality",)

    def run(self, config: QualityConfig, context: RunContext) -> Evidence:
        started = ev.now()
        try:
            return _run(config, context, started)
        except _Invalid as exc:
            return _evidence(
                context,
                started,
                "error",
                reason=str(exc),
                data={"candidate": {"uri": config.candidate}, "dataset": {"path": config.data}},
            )

    def evaluate(self, policy: QualityPolicy, evidence: Evidence) -> list[RuleResult]:
        try:
            view = _View.of(evidence)
        except _Invalid as exc:
            # Evidence edited by hand or written by something else: its numbers decide nothing.
            return [_rule("evidence", "fail", str(exc))]
        results: list[RuleResult] = []
        if view.champion is None:
            note = f" ({view.champion_note})" if view.champion_note else ""
            if policy.first_model == "pass":
                results.append(
                    _rule(
                        "first_model",
                        "pass",
                        f"no champion: first model, judged on floors only{note}",
                    )
                )
            else:
                results.append(
                    _rule(
                        "first_model",
                        "fail",
                        f"no champion to compare with (first_model: fail){note}",
                    )
                )
        for floored, floor in policy.floors.items():
            results.append(_floor_rule("floor", "", view.metrics.get(floored), floored, floor))
        if view.champion is not None:
            rows = evidence.metrics.get("rows")
            for metric in METRICS:
                judged = quality_rules.judge_drop(
                    policy,
                    view.metrics.get(metric),
                    metric,
                    HIGHER_IS_BETTER[metric],
                    rows if type(rows) is int else 0,
                    view.confidence,
                )
                if judged is not None:
                    results.append(judged.rule())
        results += _slice_rules(policy, view)
        if not results:
            results.append(
                _rule(
                    "rules",
                    "inconclusive",
                    "nothing to judge: no floor, and no tolerance for a metric both models have",
                )
            )
        return results

    def summary(self, evidence: Evidence) -> str:
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

    def report_markdown(self, evidence: Evidence) -> str:
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
            lines.append(
                f"| {_metric_label(entry)} | {_number(entry.get('candidate'))} | "
                f"{_number(entry.get('champion'))} | {_signed(entry.get('difference'))} | "
                f"{_interval(entry.get('ci'))} | {_p_value(entry.get('p_value'))} |"
            )
        slices = _entries(data.get("slices"))
        if slices:
            lines += [
                "",
                f"| slice | rows | metric | candidate | champion | difference | {level} CI |",
                "|---|---:|---|---:|---:|---:|---|",
            ]
            rows = [
                f"| {escape.inline(_slice_name(item))} | "
                f"{_count(item.get('rows'))} | {_metric_label(entry)} | "
                f"{_number(entry.get('candidate'))} | {_number(entry.get('champion'))} | "
                f"{_signed(entry.get('difference'))} | {_interval(entry.get('ci'))} |"
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

    def comparisons(self, evidence: Evidence, policy: QualityPolicy) -> list[Comparison]:
        return quality_report.comparisons(evidence, policy)

    def report_html(self, evidence: Evidence) -> str:
        if evidence.status != "passed":
            return ""
        data = evidence.data
        level = _level(evidence)
        head = "".join(
            f"<th>{h}</th>"
            for h in ("metric", "candidate", "champion", "difference", f"{level} CI", "p")
        )
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{escape.html_text(cell)}</td>"
                for cell in (
                    str(entry.get("metric")),
                    _number(entry.get("candidate")),
                    _number(entry.get("champion")),
                    _signed(entry.get("difference")),
                    _interval(entry.get("ci")),
                    _p_value(entry.get("p_value")),
                )
            )
            + "</tr>"
            for entry in _entries(data.get("metrics"))
        )
        html = (
            f"<p>{_heading(data, escape.html_text)}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        )
        slice_rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{escape.html_text(cell)}</td>"
                for cell in (
                    _slice_name(item),
                    _count(item.get("rows")),
                    str(entry.get("metric")),
                    _number(entry.get("candidate")),
                    _number(entry.get("champion")),
                    _signed(entry.get("difference")),
                    _interval(entry.get("ci")),
                )
            )
            + "</tr>"
            for item in _entries(data.get("slices"))
            for entry in _entries(item.get("metrics"))
        )
        if slice_rows:
            slice_head = "".join(
                f"<th>{h}</th>"
                for h in (
                    "slice",
                    "rows",
                    "metric",
                    "candidate",
                    "champion",
                    "difference",
                    f"{level} CI",
                )
            )
            html += (
                f"<table><thead><tr>{slice_head}</tr></thead><tbody>{slice_rows}</tbody></table>"
            )
        return html


def as_json(evidence: Evidence, policy: QualityPolicy | None = None) -> dict[str, Any]:
    """What `mlgate quality --json` prints: the comparison, and with a policy its rule results."""
    keys = (
        "task",
        "candidate",
        "champion",
        "champion_note",
        "dataset",
        "target",
        "confidence",
        "resamples",
        "seed",
        "min_slice_rows",
        "metrics",
        "slices",
        "notes",
    )
    document: dict[str, Any] = {
        "stage": evidence.stage,
        "status": evidence.status,
        "reason": evidence.reason,
        "summary": QualityStage().summary(evidence),
    } | {key: evidence.data.get(key) for key in keys if key in evidence.data}
    if policy is not None and evidence.status == "passed":
        document["rules"] = [
            r.model_dump(mode="json") for r in QualityStage().evaluate(policy, evidence)
        ]
    return document


# -- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    task: str
    resamples: int
    confidence: float
    seed: int
    deadline: _Deadline


class _Deadline:
    """The stage's timeout, checked between steps: a model predicts in this process and cannot
    be stopped midway."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def check(self, doing: str) -> None:
        if time.monotonic() > self._end:
            raise _Invalid(f"{doing} did not finish within the stage timeout of {self.seconds:g} s")


def _run(config: QualityConfig, context: RunContext, started: datetime) -> Evidence:
    deadline = _Deadline(config.timeout)
    workdir = Path(config.working_directory)
    if not workdir.is_dir():
        raise _Invalid(f"working directory {workdir} is not a directory")
    _quiet_mlflow()
    frame, dataset = _read_data(workdir / config.data, config.data)
    _check_columns(frame, config)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlgate-quality-") as scratch:
        models = _Models(config, workdir, Path(scratch), context)
        candidate_ref = models.reference("candidate", config.candidate)
        champion_ref, champion_note = models.champion(candidate_ref)
        candidate = models.load(candidate_ref)
        champion = models.load(champion_ref) if champion_ref is not None else None
        deadline.check("loading the models")
        if champion is not None and candidate.digest == champion.digest:
            notes.append("the candidate and the champion are the same files")
        task = config.task or _infer_task(candidate, frame[config.target])
        if task == "regression":
            _check_numeric(frame[config.target], config.target)
        outputs = [
            _predict(model, frame, config, task)
            for model in (candidate, champion)
            if model is not None
        ]
        deadline.check("predicting")
    truth, encoded, encoding_notes = _encode(task, frame[config.target], outputs)
    loaded = [model for model in (candidate, champion) if model is not None]
    for model, output in zip(loaded, encoded, strict=True):
        notes += [f"{model.reference.role}: {n}" for n in output.notes]
    notes += encoding_notes
    settings = _Settings(task, config.resamples, config.confidence, config.seed, deadline)
    candidate_out = encoded[0]
    champion_out = encoded[1] if len(encoded) > 1 else None
    entries, scope_notes = _measure(settings, truth, candidate_out, champion_out, 0, True)
    notes += scope_notes
    slices = _slices(settings, frame, config, truth, candidate_out, champion_out)
    metrics: dict[str, ev.MetricValue] = {"rows": len(frame), "task": task}
    for entry in entries:
        for side in ("candidate", "champion", "difference"):
            metrics[f"{entry['metric']}.{side}"] = cast("float | None", entry[side])
    data: dict[str, object] = {
        "task": task,
        "target": config.target,
        "candidate": candidate.describe(),
        "champion": champion.describe() if champion is not None else None,
        "champion_note": champion_note,
        "dataset": dataset,
        "method": "paired percentile bootstrap (rows resampled jointly for both models)",
        "confidence": config.confidence,
        "resamples": config.resamples,
        "seed": config.seed,
        "min_slice_rows": config.min_slice_rows,
        "metrics": entries,
        "slices": slices,
        "notes": notes,
    }
    return _evidence(context, started, "passed", metrics=metrics, data=data)


def _evidence(
    context: RunContext,
    started: datetime,
    status: ev.Status,
    *,
    reason: str | None = None,
    metrics: dict[str, ev.MetricValue] | None = None,
    data: dict[str, object] | None = None,
) -> Evidence:
    return Evidence(
        stage=QualityStage.name,
        status=status,
        reason=reason,
        started_at=started,
        finished_at=ev.now(),
        metrics=metrics or {},
        data=data or {},
        provenance=ev.collect_provenance(context.config_digest, _tool_versions()),
    )


def _tool_versions() -> dict[str, str]:
    found = {}
    for package in ("mlflow", "scikit-learn", "numpy", "pandas"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def _quiet_mlflow() -> None:
    # Set before mlflow is first imported: MLflow 3 reports usage otherwise.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")


# -- data ------------------------------------------------------------------------------------


def _read_data(path: Path, shown: str) -> tuple[Any, dict[str, object]]:
    """The evaluation data as a DataFrame, and what identifies it (digest, shape)."""
    try:
        import pandas as pd  # type: ignore[import-untyped]
    except ImportError:
        raise _Invalid("the quality stage needs pandas: pip install 'mlgate[quality]'") from None
    if path.is_dir():
        raise _Invalid(f"data {shown} is a directory, not a CSV or Parquet file")
    if not path.is_file():
        raise _Invalid(f"data file {shown} does not exist")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise _Invalid(f"cannot read data {shown}: {exc.strerror or exc}") from None
    if not magic:
        raise _Invalid(f"data file {shown} is empty")
    parquet = path.suffix.lower() in _PARQUET_SUFFIXES or magic == b"PAR1"
    kind = "parquet" if parquet else "csv"
    try:
        # round_trip: every pandas parses a decimal to the nearest double (pandas before 2.2
        # may be one unit off by default), so CSV and Parquet give the same numbers.
        frame = (
            pd.read_parquet(path) if parquet else pd.read_csv(path, float_precision="round_trip")
        )
    except ImportError as exc:
        raise _Invalid(f"cannot read {kind} data {shown}: {_line(exc)}") from None
    except pd.errors.EmptyDataError:
        raise _Invalid(f"data file {shown} holds no columns") from None
    except Exception as exc:  # pandas and pyarrow raise many kinds: all mean "unreadable"
        raise _Invalid(f"cannot read data {shown} as {kind}: {_line(exc)}") from None
    if len(frame) == 0:
        raise _Invalid(f"data {shown} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame, {
        "path": shown,
        "format": kind,
        "sha256": ev.sha256_file(path),
        "bytes": path.stat().st_size,
        "rows": len(frame),
        "columns": list(frame.columns),
    }


def _check_columns(frame: Any, config: QualityConfig) -> None:
    columns = set(frame.columns)
    if config.target not in columns:
        raise _Invalid(
            f"target column {config.target!r} is not in data {config.data} "
            f"(columns: {_listing(list(frame.columns))})"
        )
    missing = [c for c in config.slices if c not in columns]
    if missing:
        raise _Invalid(f"slice column {missing[0]!r} is not in data {config.data}")
    absent = int(frame[config.target].isna().sum())
    if absent:
        raise _Invalid(f"target column {config.target!r} has {absent} missing values")


# -- models ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reference:
    """Where one model is, once its URI is resolved."""

    role: str
    uri: str  # as configured
    shown: str  # models:/NAME/VERSION for a registered model, else the URI or path
    registered: tuple[str, str] | None = None  # name, version
    local: Path | None = None
    remote: str | None = None  # an artifact URI to download


@dataclass(frozen=True)
class _Model:
    reference: _Reference
    digest: str
    files: int
    flavors: list[str]
    pyfunc: Any
    estimator: Any  # the scikit-learn model of an sklearn flavor, else None

    def describe(self) -> dict[str, object]:
        name, number = self.reference.registered or (None, None)
        return {
            "uri": self.reference.uri,
            "resolved": self.reference.shown,
            "registered_model": name,
            "version": number,
            "digest": self.digest,
            "files": self.files,
            "flavors": self.flavors,
        }


class _Models:
    """Resolves, fetches and loads the two models; connects to the registry only when a URI
    needs it."""

    def __init__(
        self, config: QualityConfig, workdir: Path, scratch: Path, context: RunContext
    ) -> None:
        self._config = config
        self._context = context
        self._workdir = workdir
        self._scratch = scratch
        self._registry: Registry | None = None

    def registry(self) -> Registry:
        if self._registry is None:
            from mlgate.registry.mlflow_registry import Registry, RegistryError

            try:
                self._registry = Registry.connect(self._config.tracking_uri)
            except RegistryError as exc:
                raise _Invalid(str(exc)) from None
        return self._registry

    def reference(self, role: str, uri: str) -> _Reference:
        from mlgate.registry.mlflow_registry import RegistryError

        match = _REGISTERED.fullmatch(uri)
        if match is not None:
            name, alias, number = match.group("name", "alias", "version")
            try:
                if alias is not None:
                    aliased = self.registry().alias(name, alias)
                    if aliased is None:
                        raise _Invalid(f"{role}: alias {alias} of model {name} is not set ({uri})")
                    number = aliased
                else:
                    self.registry().model_version(name, number)
            except RegistryError as exc:
                raise _Invalid(f"{role}: {exc}{self._why_missing()}") from None
            return _Reference(role, uri, f"models:/{name}/{number}", registered=(name, number))
        if _SCHEME.match(uri) and not uri.startswith("file:"):
            return _Reference(role, uri, uri, remote=uri)
        path = Path(unquote(urlsplit(uri).path)) if uri.startswith("file:") else Path(uri)
        return _Reference(role, uri, uri, local=self._workdir / path)

    def _why_missing(self) -> str:
        from mlgate.stages.quality_registry import why_missing

        return why_missing(self.registry(), self._config.tracking_uri)

    def champion(self, candidate: _Reference) -> tuple[_Reference | None, str | None]:
        """The champion, or None and why there is none (a note for the evidence)."""
        from mlgate.registry.mlflow_registry import RegistryError

        config = self._config
        if config.champion is not None:
            return self.reference("champion", config.champion), None
        if candidate.registered is None or config.champion_alias is None:
            return None, "no champion configured"
        name, _ = candidate.registered
        try:
            number = self.registry().alias(name, config.champion_alias)
        except RegistryError as exc:
            raise _Invalid(f"champion: {exc}") from None
        if number is None:
            return None, f"models:/{name}@{config.champion_alias} is not set"
        return _Reference(
            "champion",
            f"models:/{name}@{config.champion_alias}",
            f"models:/{name}/{number}",
            registered=(name, number),
        ), None

    def load(self, reference: _Reference) -> _Model:
        role = reference.role
        directory = self._directory(reference)
        if not (directory / "MLmodel").is_file():
            raise _Invalid(f"{role}: {reference.shown} is not an MLflow model (no MLmodel file)")
        digest, files = _files_digest(directory)
        if refused := model_guard.refusal(self._context, QualityStage.name, directory):
            raise _Invalid(f"{role}: {refused}")
        try:
            import mlflow.pyfunc
        except ImportError:
            raise _Invalid(
                "the quality stage needs mlflow: pip install 'mlgate[quality]'"
            ) from None
        try:
            model = mlflow.pyfunc.load_model(str(directory))
            flavors = sorted(model.metadata.flavors)
            estimator = None
            if "sklearn" in flavors:
                import mlflow.sklearn

                estimator = mlflow.sklearn.load_model(str(directory))
        except Exception as exc:  # unpickling can raise anything: all mean "cannot load"
            raise _Invalid(
                f"{role}: cannot load the model {reference.shown}: {_line(exc)}"
            ) from None
        return _Model(reference, digest, files, flavors, model, estimator)

    def _directory(self, reference: _Reference) -> Path:
        if reference.local is not None:
            if not reference.local.is_dir():
                what = "is not a directory" if reference.local.exists() else "does not exist"
                raise _Invalid(f"{reference.role}: model directory {reference.shown} {what}")
            return reference.local
        from mlflow import MlflowClient

        from mlgate.registry.mlflow_registry import download_artifacts

        registry = self.registry()
        try:
            if reference.registered is not None:
                # The version's storage location, resolved with this registry: MLflow's models:/
                # resolver reads the process-wide registry URI instead.
                client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
                location = str(client.get_model_version_download_uri(*reference.registered))
            else:
                location = str(reference.remote)
            local = download_artifacts(
                registry.uri, artifact_uri=location, dst_path=str(self._scratch / reference.role)
            )
        except Exception as exc:  # store and transport errors alike: the model is not there
            raise _Invalid(
                f"{reference.role}: cannot download {reference.shown}: {_line(exc)}"
            ) from None
        return Path(local)


def _files_digest(directory: Path) -> tuple[str, int]:
    """The digest of a model's files, as the registry computes it (files_digest), so a model
    can be recognised in promotion bundles."""
    from mlgate.registry.mlflow_registry import FileDigest, files_digest

    files = [
        FileDigest(p.relative_to(directory).as_posix(), ev.sha256_file(p), p.stat().st_size)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    ]
    return files_digest(files), len(files)


def _infer_task(model: _Model, target: Any) -> str:
    """See the module docstring: the sklearn model's own kind, else the target's type."""
    import pandas as pd

    estimator = model.estimator
    if estimator is not None:
        from sklearn.base import is_classifier, is_regressor  # type: ignore[import-untyped]

        if is_classifier(estimator) or hasattr(estimator, "predict_proba"):
            return "classification"
        if is_regressor(estimator):
            return "regression"
    dtype = target.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        return "classification"
    if pd.api.types.is_integer_dtype(dtype) and target.nunique() <= _MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def _check_numeric(target: Any, column: str) -> None:
    import numpy as np
    import pandas as pd

    dtype = target.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise _Invalid(f"target column {column!r} holds {dtype} values: regression needs numbers")
    if not np.isfinite(target.to_numpy(dtype=np.float64)).all():
        raise _Invalid(f"target column {column!r} holds infinite values")


@dataclass(frozen=True)
class _RawOutputs:
    """What one model said about every row, before labels are encoded."""

    predicted: Any  # 1-D array of labels or values
    probabilities: Any  # (rows, classes) floats, or None
    classes: Any  # the labels of the probability columns, or None
    notes: list[str]


def _feature_columns(model: _Model, config: QualityConfig, columns: list[str]) -> list[str]:
    """The columns the model takes, checked against the data."""
    role = model.reference.role
    required: list[str]
    if config.features is not None:
        required = list(config.features)
        given = required
    else:
        schema = model.pyfunc.metadata.get_input_schema()
        fitted = getattr(model.estimator, "feature_names_in_", None)
        if schema is not None and schema.has_input_names():
            given = [str(n) for n in schema.input_names()]
            required = [str(n) for n in schema.required_input_names()]
        elif fitted is not None:
            given = required = [str(n) for n in fitted]
        else:
            given = required = [c for c in columns if c != config.target]
    missing = [c for c in required if c not in columns]
    if missing:
        raise _Invalid(
            f"{role}: the model expects column{'s' * (len(missing) > 1)} "
            f"{_listing(missing)}, missing from data {config.data}"
        )
    return [c for c in given if c in columns]


def _predict(model: _Model, frame: Any, config: QualityConfig, task: str) -> _RawOutputs:
    import numpy as np

    role = model.reference.role
    columns = _feature_columns(model, config, list(frame.columns))
    features = frame[columns]
    try:
        raw = model.pyfunc.predict(features)
    except Exception as exc:  # the model's own code runs here: anything can come out
        raise _Invalid(
            f"{role}: predict failed on columns {_listing(columns)}: {_line(exc)}"
        ) from None
    predicted = _one_per_row(raw, len(frame), role)
    notes: list[str] = []
    if task == "regression":
        try:
            predicted = predicted.astype(np.float64)
        except (TypeError, ValueError):
            raise _Invalid(f"{role}: predictions are not numbers (regression)") from None
        bad = int(np.count_nonzero(~np.isfinite(predicted)))
        if bad:
            raise _Invalid(f"{role}: {bad} predictions are not finite numbers")
        return _RawOutputs(predicted, None, None, notes)
    estimator = model.estimator
    if estimator is None or not hasattr(estimator, "predict_proba"):
        notes.append("no probabilities (not an sklearn model with predict_proba)")
        return _RawOutputs(predicted, None, None, notes)
    fitted = getattr(estimator, "feature_names_in_", None)
    try:
        # In the order the estimator was fitted with: sklearn checks names and order.
        probabilities = np.asarray(
            estimator.predict_proba(frame[list(fitted)] if fitted is not None else features),
            dtype=np.float64,
        )
        classes = np.asarray(estimator.classes_, dtype=object)
    except Exception as exc:  # the model's own code again
        notes.append(f"predict_proba failed, no probabilities: {_line(exc)}")
        return _RawOutputs(predicted, None, None, notes)
    if probabilities.shape != (len(frame), classes.size) or not np.all(np.isfinite(probabilities)):
        notes.append("predict_proba gave no finite probability per row and class: none used")
        return _RawOutputs(predicted, None, None, notes)
    return _RawOutputs(predicted, probabilities, classes, notes)


def _one_per_row(raw: Any, rows: int, role: str) -> Any:
    import numpy as np

    if hasattr(raw, "columns"):  # a DataFrame
        if len(raw.columns) != 1:
            raise _Invalid(
                f"{role}: the model returned {len(raw.columns)} columns per row; "
                "one prediction per row is needed"
            )
        raw = raw.iloc[:, 0]
    array = np.asarray(raw)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or array.shape[0] != rows:
        raise _Invalid(
            f"{role}: the model returned predictions of shape {array.shape} for {rows} rows; "
            "one prediction per row is needed"
        )
    return array


# -- labels ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outputs:
    """One model's predictions in the stage's encoding: class codes (classification) or
    floats (regression); probabilities with the code of each column."""

    predicted: Any
    probabilities: Any = None
    probability_codes: Any = None
    notes: tuple[str, ...] = ()

    def take(self, rows: Any) -> _Outputs:
        return _Outputs(
            self.predicted[rows],
            None if self.probabilities is None else self.probabilities[rows],
            self.probability_codes,
            self.notes,
        )


def _encode(
    task: str, target: Any, outputs: list[_RawOutputs]
) -> tuple[Any, list[_Outputs], list[str]]:
    """Truth and predictions as arrays the metrics work on: one integer code per label, shared
    by the data and both models (labels equal in Python, like 1 and 1.0, share a code)."""
    import numpy as np
    import pandas as pd

    if task == "regression":
        truth = target.to_numpy(dtype=np.float64)
        return truth, [_Outputs(o.predicted, notes=tuple(o.notes)) for o in outputs], []
    pieces = [np.asarray(target.to_numpy(), dtype=object)]
    for o in outputs:
        pieces.append(np.asarray(o.predicted, dtype=object))
        if o.classes is not None:
            pieces.append(o.classes)
    codes, _ = pd.factorize(pd.Series(np.concatenate(pieces), dtype=object), use_na_sentinel=False)
    codes = np.asarray(codes, dtype=np.int64)
    rows = len(target)
    truth, offset = codes[:rows], rows
    encoded: list[_Outputs] = []
    notes: list[str] = []
    for o in outputs:
        predicted, offset = codes[offset : offset + rows], offset + rows
        probability_codes = None
        if o.classes is not None:
            probability_codes = codes[offset : offset + o.classes.size]
            offset += o.classes.size
        encoded.append(_Outputs(predicted, o.probabilities, probability_codes, tuple(o.notes)))
        if not np.isin(predicted, truth).any():
            notes.append(
                "no predicted label occurs in the target: are the labels of the same type "
                "(e.g. '1' and 1)?"
            )
    return truth, encoded, list(dict.fromkeys(notes))


# -- metrics ---------------------------------------------------------------------------------


def _statistics(task: str, truth: Any, outputs: _Outputs) -> tuple[dict[str, Statistic], list[str]]:
    """Each measurable metric of one model, as a function of bootstrap weights; and notes on
    the metrics that cannot be measured here."""
    if task == "regression":
        return _regression_statistics(truth, outputs.predicted), []
    return _classification_statistics(truth, outputs)


def _weighted_mean(values: FloatArray) -> Statistic:
    def statistic(weights: FloatArray) -> FloatArray:
        result: FloatArray = (weights @ values) / weights.sum(axis=1)
        return result

    return statistic


def _classification_statistics(
    truth: IntArray, outputs: _Outputs
) -> tuple[dict[str, Statistic], list[str]]:
    import numpy as np

    predicted = outputs.predicted
    statistics: dict[str, Statistic] = {
        "accuracy": _weighted_mean((predicted == truth).astype(np.float64))
    }
    labels = np.union1d(truth, predicted)
    in_predicted = predicted[:, None] == labels
    in_truth = truth[:, None] == labels
    counts = np.hstack([in_predicted & in_truth, in_predicted, in_truth]).astype(np.float64)
    statistics["f1_macro"] = _macro_f1(counts)
    if outputs.probabilities is None:
        return statistics, []
    column_of = {int(code): j for j, code in enumerate(outputs.probability_codes)}
    data_labels = [int(code) for code in np.unique(truth)]
    if any(code not in column_of for code in data_labels):
        return statistics, [
            "the model's classes do not include every label in the data: "
            "roc_auc and log_loss not measured"
        ]
    probabilities = outputs.probabilities
    columns = np.array([column_of[int(code)] for code in truth], dtype=np.intp)
    truth_probability = probabilities[np.arange(truth.size), columns]
    eps = np.finfo(np.float64).eps  # scikit-learn's clipping, so log(0) stays finite
    statistics["log_loss"] = _weighted_mean(-np.log(np.clip(truth_probability, eps, 1 - eps)))
    if len(data_labels) < 2:
        return statistics, ["roc_auc undefined: the data holds one label only"]
    if len(data_labels) == 2:
        # Binary: the score of the label of the later probability column, as scikit-learn's
        # roc_auc_score(y, predict_proba(X)[:, 1]).
        positive = max(data_labels, key=column_of.__getitem__)
        curves = [_auc(truth == positive, probabilities[:, column_of[positive]])]
    else:
        curves = [_auc(truth == code, probabilities[:, column_of[code]]) for code in data_labels]
    statistics["roc_auc"] = _mean_of(curves)
    return statistics, []


def _macro_f1(counts: FloatArray) -> Statistic:
    """Macro F1 from per-row indicator columns [hit_k..., predicted_k..., true_k...]; a label
    counts in a resample when it occurs in its truth or predictions, as in scikit-learn."""
    import numpy as np

    def statistic(weights: FloatArray) -> FloatArray:
        hits, predicted, actual = np.split(weights @ counts, 3, axis=1)
        total = predicted + actual
        present = total > 0
        f1 = np.divide(2 * hits, total, out=np.zeros_like(total), where=present)
        result: FloatArray = f1.sum(axis=1) / present.sum(axis=1)
        return result

    return statistic


def _auc(positive: BoolArray, score: FloatArray) -> Statistic:
    """ROC AUC as the weighted Mann-Whitney statistic: the chance that a positive row scores
    above a negative one, ties counting half. Rows are sorted by score once; per resample, one
    cumulative sum over the negatives' weights gives the weight below each positive."""
    import numpy as np

    order = np.argsort(score, kind="stable")
    ordered = score[order]
    is_positive = positive[order]
    first_of_group = np.ones(ordered.size, dtype=bool)
    first_of_group[1:] = ordered[1:] != ordered[:-1]
    group = np.cumsum(first_of_group) - 1
    starts = np.flatnonzero(first_of_group)
    ends = np.append(starts[1:], ordered.size)
    negative_at = np.flatnonzero(~is_positive)  # sorted positions of the negatives
    positive_at = np.flatnonzero(is_positive)
    # Per positive: how many negatives score lower, and how many lower or tied (static: the
    # resample changes weights, not the order).
    lower = np.searchsorted(negative_at, starts[group[positive_at]])
    lower_or_tied = np.searchsorted(negative_at, ends[group[positive_at]])
    ties = bool(np.any(lower != lower_or_tied))
    negative_rows, positive_rows = order[negative_at], order[positive_at]

    def statistic(weights: FloatArray) -> FloatArray:
        # cumulative[:, k]: the weight of the k lowest-scoring negatives.
        cumulative = np.zeros((weights.shape[0], negative_rows.size + 1))
        np.cumsum(np.take(weights, negative_rows, axis=1), axis=1, out=cumulative[:, 1:])
        below = np.take(cumulative, lower, axis=1)
        if ties:
            below = (below + np.take(cumulative, lower_or_tied, axis=1)) / 2
        positive_weights = np.take(weights, positive_rows, axis=1)
        wins = np.einsum("ij,ij->i", positive_weights, below)
        pairs = positive_weights.sum(axis=1) * cumulative[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            result: FloatArray = wins / pairs  # NaN when a resample lacks one side
        return result

    return statistic


def _mean_of(statistics: list[Statistic]) -> Statistic:
    """The unweighted mean over labels (macro), of the labels defined in each resample."""
    import numpy as np

    def statistic(weights: FloatArray) -> FloatArray:
        values = np.column_stack([s(weights) for s in statistics])
        defined = np.isfinite(values)
        count = defined.sum(axis=1)
        total = np.where(defined, values, 0.0).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            result: FloatArray = np.where(count > 0, total / count, np.nan)
        return result

    return statistic


def _regression_statistics(truth: FloatArray, predicted: FloatArray) -> dict[str, Statistic]:
    import numpy as np

    errors = predicted - truth
    squared = errors**2
    # Centred once, so the weighted variance below does not lose digits to a large mean.
    centred = truth - truth.mean()
    sums = np.column_stack([squared, centred, centred**2])

    def rmse(weights: FloatArray) -> FloatArray:
        result: FloatArray = np.sqrt((weights @ squared) / weights.sum(axis=1))
        return result

    def r2(weights: FloatArray) -> FloatArray:
        residual, first, second = (weights @ sums).T
        spread = second - first**2 / weights.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            # Undefined (NaN) when the truth does not vary.
            result: FloatArray = np.where(spread > 0, 1.0 - residual / spread, np.nan)
        return result

    return {"rmse": rmse, "mae": _weighted_mean(np.abs(errors)), "r2": r2}


def _bootstrap_weights(rows: int, resamples: int, rng: np.random.Generator) -> FloatArray:
    """How often each row is drawn in each resample (resamples x rows): rows drawn with
    replacement, as counts, so that every metric is a weighted sum over the rows."""
    import numpy as np

    drawn = rng.integers(0, rows, size=(resamples, rows), dtype=np.int32)
    weights = np.empty((resamples, rows))
    for index, draws in enumerate(drawn):
        # Row by row: a bincount of one resample stays in cache (3x faster than one flat one).
        weights[index] = np.bincount(draws, minlength=rows)
    return weights


def _intervals(
    settings: _Settings,
    candidate: dict[str, Statistic],
    champion: dict[str, Statistic],
    metrics: list[str],
    rows: int,
    stream: int,
) -> dict[str, dict[str, Any] | None]:
    """Percentile bounds of candidate - champion, per metric, from the same resamples: the
    two-sided interval and the one-sided bounds (quality_rules.bootstrap_bounds)."""
    import numpy as np

    rng = np.random.default_rng([settings.seed, stream])
    # Per metric, the candidate's and the champion's value in each resample.
    replicates = {metric: np.empty((2, settings.resamples)) for metric in metrics}
    step = max(1, _CHUNK // rows)
    for start in range(0, settings.resamples, step):
        stop = min(start + step, settings.resamples)
        weights = _bootstrap_weights(rows, stop - start, rng)
        for metric in metrics:
            replicates[metric][0, start:stop] = candidate[metric](weights)
            replicates[metric][1, start:stop] = champion[metric](weights)
        settings.deadline.check("the bootstrap")
    return {
        metric: quality_rules.bootstrap_bounds(
            ours, theirs, settings.confidence, _MIN_DEFINED_SHARE
        )
        for metric, (ours, theirs) in replicates.items()
    }


def _mcnemar(truth: IntArray, candidate: IntArray, champion: IntArray) -> dict[str, object]:
    """McNemar's exact test: of the rows exactly one model gets right, is the split even?"""
    import numpy as np
    from scipy.stats import binomtest  # type: ignore[import-untyped]

    candidate_right = candidate == truth
    champion_right = champion == truth
    only_candidate = int(np.count_nonzero(candidate_right & ~champion_right))
    only_champion = int(np.count_nonzero(champion_right & ~candidate_right))
    discordant = only_candidate + only_champion
    p_value = float(binomtest(only_candidate, discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "p_value": p_value,
        "only_candidate_right": only_candidate,
        "only_champion_right": only_champion,
    }


def _measure(
    settings: _Settings,
    truth: Any,
    candidate: _Outputs,
    champion: _Outputs | None,
    stream: int,
    with_intervals: bool,
) -> tuple[list[dict[str, object]], list[str]]:
    """Metric entries of one scope (all rows, or one slice), and notes on what is missing."""
    import numpy as np

    rows = int(truth.size)
    candidate_stats, candidate_notes = _statistics(settings.task, truth, candidate)
    notes = [f"candidate: {n}" for n in candidate_notes]
    champion_stats: dict[str, Statistic] = {}
    if champion is not None:
        champion_stats, champion_notes = _statistics(settings.task, truth, champion)
        notes += [f"champion: {n}" for n in champion_notes]
    everyone = np.ones((1, rows))
    compared = [
        m for m in TASK_METRICS[settings.task] if m in candidate_stats and m in champion_stats
    ]
    intervals = (
        _intervals(settings, candidate_stats, champion_stats, compared, rows, stream)
        if with_intervals and compared
        else {}
    )
    entries: list[dict[str, object]] = []
    for metric in TASK_METRICS[settings.task]:
        ours = _finite(candidate_stats[metric](everyone)[0]) if metric in candidate_stats else None
        theirs = _finite(champion_stats[metric](everyone)[0]) if metric in champion_stats else None
        if ours is None and theirs is None:
            continue
        interval = intervals.get(metric)
        entry: dict[str, object] = {
            "metric": metric,
            "candidate": ours,
            "champion": theirs,
            "difference": ours - theirs if ours is not None and theirs is not None else None,
            "ci": interval["ci"] if interval is not None else None,
            "one_sided": interval["one_sided"] if interval is not None else None,
            "one_sided_relative": interval["one_sided_relative"] if interval is not None else None,
            "p_value": None,
            "higher_is_better": HIGHER_IS_BETTER[metric],
        }
        if metric == "accuracy" and champion is not None:
            test = _mcnemar(truth, candidate.predicted, champion.predicted)
            entry["p_value"] = test.pop("p_value")
            entry["mcnemar"] = test
        entries.append(entry)
        if with_intervals and metric in compared and interval is None:
            notes.append(f"{metric}: no interval, undefined in too many resamples")
    return entries, notes


def _slices(
    settings: _Settings,
    frame: Any,
    config: QualityConfig,
    truth: Any,
    candidate: _Outputs,
    champion: _Outputs | None,
) -> list[dict[str, object]]:
    import numpy as np
    import pandas as pd

    results: list[dict[str, object]] = []
    stream = 0
    for column in config.slices:
        values = frame[column]
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        if len(uniques) > config.max_slice_values:
            raise _Invalid(
                f"slice column {column!r} has {len(uniques)} distinct values, more than "
                f"max_slice_values ({config.max_slice_values}): an identifier, not a segment?"
            )
        labelled = sorted(
            ((None if _missing(v) else str(v), i) for i, v in enumerate(uniques)),
            key=lambda pair: (pair[0] is None, pair[0] or ""),
        )
        for label, code in labelled:
            stream += 1
            rows = np.flatnonzero(codes == code)
            enough = rows.size >= config.min_slice_rows
            entries, notes = _measure(
                settings,
                truth[rows],
                candidate.take(rows),
                champion.take(rows) if champion is not None else None,
                stream,
                enough,
            )
            if not enough:
                notes.insert(
                    0, f"{rows.size} rows, fewer than {config.min_slice_rows}: values only"
                )
            results.append(
                {
                    "column": column,
                    "value": label,
                    "rows": int(rows.size),
                    "judged": bool(enough),
                    "metrics": entries,
                    "note": "; ".join(notes) if notes else None,
                }
            )
    return results


def _missing(value: object) -> bool:
    """None, NaN, pandas' NA or NaT: a row whose segment is not known."""
    import pandas as pd

    return value is None or bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


# -- judging ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    """The parts of the evidence the policy reads, checked to agree with themselves."""

    champion: dict[str, Any] | None
    champion_note: str | None
    confidence: float
    metrics: dict[str, dict[str, Any]]
    slices: list[dict[str, Any]]

    @classmethod
    def of(cls, evidence: Evidence) -> _View:
        if evidence.status != "passed":
            raise _Invalid(f"evidence status '{evidence.status}' is not one the stage writes")
        data = evidence.data
        if data.get("task") not in TASK_METRICS:
            raise _Invalid("evidence names no task (classification or regression)")
        champion = data.get("champion")
        if champion is not None and not isinstance(champion, dict):
            raise _Invalid("evidence holds a champion that is not an object")
        confidence = data.get("confidence")
        if not _is_number(confidence) or not 0 < confidence < 1:
            raise _Invalid("evidence lacks the confidence level of its intervals")
        metrics = {e["metric"]: e for e in _checked_entries(data.get("metrics"), champion)}
        slices = data.get("slices", [])
        if not isinstance(slices, list) or not all(isinstance(s, dict) for s in slices):
            raise _Invalid("evidence holds slices that are not a list of objects")
        for item in slices:
            if type(item.get("rows")) is not int or not isinstance(item.get("judged"), bool):
                raise _Invalid("evidence holds a slice without rows and judged")
            _checked_entries(item.get("metrics"), champion)
        note = data.get("champion_note")
        return cls(
            champion, note if isinstance(note, str) else None, float(confidence), metrics, slices
        )


def _checked_entries(entries: object, champion: object) -> list[dict[str, Any]]:
    if not isinstance(entries, list):
        raise _Invalid("evidence lacks its list of metrics")
    checked = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("metric") not in HIGHER_IS_BETTER:
            raise _Invalid("evidence holds a metric entry without a known metric name")
        name = entry["metric"]
        for key in ("candidate", "champion", "difference"):
            if entry.get(key) is not None and not _is_number(entry.get(key)):
                raise _Invalid(f"evidence holds a {name} {key} that is not a finite number")
        if entry.get("higher_is_better") is not HIGHER_IS_BETTER[name]:
            raise _Invalid(f"evidence has {name} in the wrong direction")
        if entry.get("champion") is not None and champion is None:
            raise _Invalid(f"evidence has a champion {name} but no champion")
        for key in ("ci", "one_sided", "one_sided_relative"):
            ci = entry.get(key)
            if ci is not None and not (
                isinstance(ci, list)
                and len(ci) == 2
                and all(_is_number(v) for v in ci)
                and ci[0] <= ci[1]
            ):
                what = "interval" if key == "ci" else f"{key} bounds"
                raise _Invalid(f"evidence holds a {name} {what} that is not [low, high]")
        checked.append(entry)
    return checked


def _floor_rule(
    kind: str, where: str, entry: dict[str, Any] | None, metric: str, floor: float
) -> RuleResult:
    value = entry.get("candidate") if entry is not None else None
    higher = HIGHER_IS_BETTER[metric]
    bound = f"at least {floor:g}" if higher else f"at most {floor:g}"
    if value is None:
        return _rule(kind, "fail", f"{where}{metric} was not measured; {bound} required")
    ok = value >= floor if higher else value <= floor
    return _rule(
        kind,
        "pass" if ok else "fail",
        f"{where}candidate {metric} {value:.4f}, {bound} {'required' if higher else 'allowed'}",
    )


def _slice_rules(policy: QualityPolicy, view: _View) -> list[RuleResult]:
    if not policy.slice_floors:
        return []
    if not view.slices:
        return [
            _rule(
                "slice_floor",
                "fail",
                "slice_floors are set, but no slice was evaluated (stages.quality.slices)",
            )
        ]
    results = []
    for item in view.slices:
        if not item["judged"]:
            continue  # too few rows: values only, reported as such
        where = f"{item.get('column')}={_slice_value(item.get('value'))}: "
        entries = {e["metric"]: e for e in item["metrics"]}
        for metric, floor in policy.slice_floors.items():
            results.append(_floor_rule("slice_floor", where, entries.get(metric), metric, floor))
    return results


def _rule(rule: str, outcome: Outcome, reason: str) -> RuleResult:
    return RuleResult(
        stage=QualityStage.name,
        rule=f"quality.{rule}",
        outcome=outcome,
        reason=f"quality: {reason}",
    )


# -- formatting ------------------------------------------------------------------------------


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int to Python, never a measurement.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: object) -> str:
    return f"{value:.4f}" if _is_number(value) else "n/a"


def _signed(value: object) -> str:
    return f"{value:+.4f}" if _is_number(value) else "n/a"


def _interval(ci: object) -> str:
    if isinstance(ci, list) and len(ci) == 2 and all(_is_number(v) for v in ci):
        return f"{ci[0]:+.4f} to {ci[1]:+.4f}"
    return "n/a"


def _level(evidence: Evidence) -> str:
    confidence = evidence.data.get("confidence")
    return f"{confidence:.0%}" if _is_number(confidence) else "?"


def _interval_text(ci: object, evidence: Evidence) -> str:
    return f"{_level(evidence)} CI {_interval(ci)}"


def _p_value(value: object) -> str:
    return f"{value:.3g}" if _is_number(value) else ""


def _metric_label(entry: dict[str, Any]) -> str:
    arrow = "↑" if entry.get("higher_is_better") else "↓"
    return f"{escape.inline(str(entry.get('metric')))} {arrow}"


def _slice_name(item: dict[str, Any]) -> str:
    return f"{item.get('column')} = {_slice_value(item.get('value'))}"


def _count(value: object) -> str:
    return str(value) if type(value) is int else "?"


def _slice_value(value: object) -> str:
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


def _listing(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _line(exc: BaseException, limit: int = 300) -> str:
    """The exception's message on one line; a long one keeps its start and its end (where
    MLflow's schema errors say what is missing, after a dump of the data)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"
