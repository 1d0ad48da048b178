"""The drift stage's config and policy: which files and columns, the thresholds, and where to
start retraining.

Light on purpose (pydantic and the stdlib only): the config is validated without importing
numpy, scipy or pandas.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

from mlgate.fields import Columns, Count, EventType, NonEmptyStr
from mlgate.stages.interface import StageConfig, StagePolicy

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
    ref: NonEmptyStr = Field(
        default="main", description="workflow_dispatch: branch or tag to run on."
    )
    inputs: dict[str, InputValue] = Field(
        default_factory=dict,
        description="Extra workflow inputs (sent as strings), or extra client_payload keys of a "
        "repository_dispatch.",
    )
    repository_dispatch: EventType | None = Field(
        default=None,
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

    reference: NonEmptyStr = Field(
        description="Reference data (what the model was trained on), relative to "
        "working_directory: CSV, or Parquet (.parquet, .pq, .parq, or a file starting with the "
        "Parquet magic bytes).",
    )
    current: NonEmptyStr = Field(
        description="Current data (what the model sees now), same formats."
    )
    features: Columns | None = Field(
        default=None,
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
    psi_threshold: PositiveFloat = Field(
        default=0.2, description="A feature whose PSI exceeds this has drifted."
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
    max_drifted_features: Count = Field(
        default=0, description="More drifted features than this fails the gate."
    )
