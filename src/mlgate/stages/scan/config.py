"""The scan stage's configuration and policy models (light: pydantic and small mlgate modules)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlgate.fields import Paths, Seconds
from mlgate.stages.baseline import Baseline
from mlgate.stages.interface import StageConfig, StagePolicy
from mlgate.stages.scan import registry_models

Threshold = Literal["critical", "high", "medium", "low", "info", "never"]
DEFAULT_WAIVERS = ".mlgate/waivers.yml"


class ScanConfig(StageConfig):
    sources: Paths = Field(
        default_factory=list, description="Source directories or files for bandit."
    )
    requirements: Paths = Field(
        default_factory=list, description="Requirements files for pip-audit (pins: offline)."
    )
    environments: Paths = Field(
        default_factory=list,
        description="Installed environments to audit with pip-audit (the serving "
        "environment): their site-packages directories.",
    )
    image: str | None = Field(default=None, description="Image name or id on the Docker engine.")
    dockerfile: str | None = Field(
        default=None, description="Dockerfile to build and scan when no image is given."
    )
    models: Paths = Field(
        default_factory=list,
        description="Model files or directories, or registered models (models:/NAME@ALIAS, "
        "models:/NAME/VERSION: the version's files are downloaded from the registry and "
        "scanned), to scan for unsafe pickles with every model engine.",
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking and registry URI for models:/ entries in models "
        "[default: $MLFLOW_TRACKING_URI, else sqlite:///.mlgate/mlflow.db].",
    )
    osv_db: str | None = Field(
        default=None,
        description="Offline vulnerability data: a directory or zip of OSV records (JSON or "
        "YAML, e.g. the PyPA advisory database or OSV's PyPI all.zip). Default: online services.",
    )
    waivers: str | None = Field(
        default=None,
        description=f"Waivers file [default: {DEFAULT_WAIVERS} when it exists].",
    )
    image_os_vulnerabilities: bool = Field(
        default=True,
        description="Scan the image's OS packages with trivy's vulnerability database.",
    )
    scanners: list[str] | None = Field(
        default=None,
        description="Scanners to run [default: every scanner that has a target]; naming one "
        "that has no target is an error.",
    )
    baseline: Baseline | None = Field(
        default=None,
        description="Scan evidence of the base branch, for policy new_only: a file, or "
        "{github: {workflow: mlgate.yml}} (its last successful run's report artifact).",
    )
    tool_timeout: Seconds = Field(default=900, description="Seconds each tool may take.")

    @field_validator("models", mode="after")
    @classmethod
    def _registry_uris(cls, models: list[str]) -> list[str]:
        return [registry_models.check_uri(entry) for entry in models]

    @model_validator(mode="after")
    def _has_target(self) -> ScanConfig:
        targets = (self.sources, self.requirements, self.environments, self.image)
        if not (any(targets) or self.dockerfile or self.models):
            raise ValueError(
                "nothing to scan: give sources, requirements, environments, image, dockerfile "
                "or models"
            )
        if self.image and self.dockerfile:
            raise ValueError("give image (to scan as it is) or dockerfile (to build), not both")
        return self


class FailOn(BaseModel):
    """The lowest severity that fails the gate, per source; 'never' reports without failing."""

    model_config = ConfigDict(extra="forbid")

    code: Threshold = "high"
    dependencies: Threshold = "high"
    image_os: Threshold = "critical"
    image_python: Threshold = "high"
    secrets: Threshold = "low"
    misconfig: Threshold = "high"
    model: Threshold = "high"

    def threshold(self, source: str | None) -> Threshold:
        value: Threshold = getattr(self, (source or "code").replace("-", "_"), "high")
        return value


class ScanPolicy(StagePolicy):
    fail_on: FailOn = Field(default_factory=FailOn)
    only_fixable: bool = Field(
        default=False, description="Vulnerabilities with no fixed version do not fail the gate."
    )
    new_only: bool = Field(
        default=False,
        description="Only findings not in the baseline's scan evidence fail the gate "
        "(needs stages.scan.baseline).",
    )
    unknown_severity: Literal["critical", "high", "medium", "low"] = Field(
        default="high",
        description="What an unscored finding counts as (PyPA advisories carry no CVSS).",
    )
