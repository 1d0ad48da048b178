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
  inconclusive, never a pass. A non-inferiority test (rules.py says why it is
  one-sided, and why several metrics need no multiplicity correction); an improvement,
  however large, never fails.
- ``slice_floors``: floors for every slice value with at least ``min_slice_rows`` rows.

Cost: the bootstrap is O(resamples x rows) per scope (all rows, then each slice column): about
10 s for 100,000 rows and 2000 resamples on one core. The models are loaded in this process,
which runs their (unpickled) code: scan them first (the scan stage's model scanner).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, cast

from mlgate import evidence as ev
from mlgate.evidence import Evidence
from mlgate.report.comparison import Comparison
from mlgate.stages.finish import finished_evidence
from mlgate.stages.interface import RunContext, Stage
from mlgate.stages.quality import bootstrap, judge, render, report
from mlgate.stages.quality.config import NAME, QualityConfig, QualityPolicy
from mlgate.stages.quality.data import check_columns, check_numeric, read_data
from mlgate.stages.quality.errors import Invalid
from mlgate.stages.quality.models import Models
from mlgate.stages.quality.predictions import encode, infer_task, predict
from mlgate.verdict import RuleResult


class QualityStage(Stage[QualityConfig, QualityPolicy]):
    name = NAME
    title = "Model quality"
    extras = ("quality",)

    def run(self, config: QualityConfig, context: RunContext) -> Evidence:
        started = ev.now()
        try:
            return _run(config, context, started)
        except Invalid as exc:
            return finished_evidence(
                NAME,
                context,
                started,
                reason=str(exc),
                data={"candidate": {"uri": config.candidate}, "dataset": {"path": config.data}},
                tool_versions=_tool_versions(),
            )

    def evaluate(self, policy: QualityPolicy, evidence: Evidence) -> list[RuleResult]:
        return judge.evaluate(policy, evidence)

    def summary(self, evidence: Evidence) -> str:
        return render.summary(evidence)

    def report_markdown(self, evidence: Evidence) -> str:
        return render.markdown(evidence)

    def comparisons(self, evidence: Evidence, policy: QualityPolicy) -> list[Comparison]:
        return report.comparisons(evidence, policy)

    def report_html(self, evidence: Evidence) -> str:
        return render.html(evidence)


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


def _run(config: QualityConfig, context: RunContext, started: datetime) -> Evidence:
    deadline = bootstrap.Deadline(config.timeout)
    workdir = Path(config.working_directory)
    if not workdir.is_dir():
        raise Invalid(f"working directory {workdir} is not a directory")
    _quiet_mlflow()
    frame, dataset = read_data(workdir / config.data, config.data)
    check_columns(frame, config)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlgate-quality-") as scratch:
        models = Models(config, workdir, Path(scratch), context)
        candidate_ref = models.reference("candidate", config.candidate)
        champion_ref, champion_note = models.champion(candidate_ref)
        candidate = models.load(candidate_ref)
        champion = models.load(champion_ref) if champion_ref is not None else None
        deadline.check("loading the models")
        if champion is not None and candidate.digest == champion.digest:
            notes.append("the candidate and the champion are the same files")
        task = config.task or infer_task(candidate, frame[config.target])
        if task == "regression":
            check_numeric(frame[config.target], config.target)
        outputs = [
            predict(model, frame, config, task)
            for model in (candidate, champion)
            if model is not None
        ]
        deadline.check("predicting")
    truth, encoded, encoding_notes = encode(task, frame[config.target], outputs)
    loaded = [model for model in (candidate, champion) if model is not None]
    for model, output in zip(loaded, encoded, strict=True):
        notes += [f"{model.reference.role}: {n}" for n in output.notes]
    notes += encoding_notes
    settings = bootstrap.Settings(task, config.resamples, config.confidence, config.seed, deadline)
    candidate_out = encoded[0]
    champion_out = encoded[1] if len(encoded) > 1 else None
    entries, scope_notes = bootstrap.measure(settings, truth, candidate_out, champion_out, 0, True)
    notes += scope_notes
    slices = bootstrap.slices(settings, frame, config, truth, candidate_out, champion_out)
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
    return finished_evidence(
        NAME, context, started, metrics=metrics, data=data, tool_versions=_tool_versions()
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
