"""The quality stage's config and policy: which models, which data, and how much worse is too much.

Light on purpose (pydantic and the stdlib only): the config is validated without importing the
stage's numerical code.
"""

from __future__ import annotations

from typing import Annotated, Literal, cast, get_args

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from mlgate.fields import Columns, NonEmptyStr, PositiveCount
from mlgate.stages.interface import StageConfig, StagePolicy

NAME = "quality"

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


class QualityConfig(StageConfig):
    candidate: NonEmptyStr = Field(
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
    data: NonEmptyStr = Field(
        description="Evaluation data, relative to working_directory: CSV, or Parquet "
        "(.parquet, .pq, .parq, or a file starting with the Parquet magic bytes).",
    )
    target: NonEmptyStr = Field(description="Column holding the true label or value.")
    task: Task | None = Field(
        default=None,
        description="classification or regression [default: inferred: an sklearn model's own "
        "kind; else a boolean, text, categorical or whole-number target with at most 20 "
        "distinct values is classification, anything else regression].",
    )
    features: Columns | None = Field(
        default=None,
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
    max_slice_values: PositiveCount = Field(
        default=50,
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
