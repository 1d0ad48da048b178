"""mlgate.yml: loading, validation with errors that name the file and key, digests, schema."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    ValidationError,
    create_model,
    field_validator,
)

from mlgate import safe_yaml
from mlgate import stages as registry
from mlgate.errors import ConfigError
from mlgate.fields import Count, EventType, Fraction, HttpUrl, NonEmptyStr, Seconds, UrlPath

if TYPE_CHECKING:
    from mlgate.stages.interface import StageConfig, StagePolicy

DEFAULT_PATH = Path("mlgate.yml")

CommentMode = Literal["always", "on-change", "on-failure", "off"]
# A header declaring 100,000 unlisted tests, or a suite failing whole, must not send 2,000
# requests: past this, findings are counted on the check and listed in the report only.
MAX_ANNOTATIONS = 5000
MAX_BUNDLE_AGE_HOURS = 10 * 8766  # 10 years of hours: beyond any sensible age (1e308 crashed)


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: CommentMode = Field(
        default="always",
        description="When the sticky pull-request comment is written or updated.",
    )
    check_name: str = Field(
        default="mlgate",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$",
        description="Name of the aggregate check run; stage checks are '<check_name>/<stage>'. "
        "It also keys the sticky comment: give each gating job of a repository its own.",
    )
    artifact_name: NonEmptyStr = Field(
        default="mlgate-report",
        description="Name of the workflow artifact holding the full report (named in "
        "truncation notices).",
    )
    write_delay_seconds: float = Field(
        default=1.0,
        ge=0,
        allow_inf_nan=False,
        description="Pause between content-creating GitHub API requests, as GitHub asks "
        "integrations to do (env MLGATE_WRITE_DELAY_SECONDS overrides).",
    )
    code_scanning: bool = Field(
        default=True,
        description="Upload the scan stage's SARIF files to GitHub code scanning (needs "
        "'security-events: write'; skipped with a notice where not allowed).",
    )
    max_annotations: Count = Field(
        default=MAX_ANNOTATIONS,
        description="Findings annotated on a stage's check run at most (50 a request, so 5,000 "
        "take 100 requests; a workflow token may make 1,000 an hour per repository). The "
        "check says how many more there are; every one is in the report artifact.",
    )


class StageAccess(BaseModel):
    """Who may move a model to one stage."""

    model_config = ConfigDict(extra="forbid")

    permission: Literal["read", "triage", "write", "maintain", "admin"] | None = Field(
        default="write", description="Repository permission the actor needs at least."
    )
    teams: list[str] = Field(
        default_factory=list,
        description="'org/team-slug' entries; if given, the actor must be in one of them.",
    )
    approvals: Count = Field(
        default=0,
        description="Approvals of the run's environment deployment, by people other than the "
        "actor, that the promotion needs.",
    )
    approvers: list[str] = Field(
        default_factory=list, description="If given, only these logins' approvals count."
    )


class PromotionCheck(BaseModel):
    """A health check and a short load of the deployed model after each promotion."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    url: HttpUrl = Field(
        description="Base URL of the server that serves the stage once deployed; '{stage}' in "
        "it is replaced by the stage promoted to. GET url/ping or url/health must answer 200."
    )
    path: UrlPath = Field(default="/invocations", description="Endpoint the requests go to.")
    payload: NonEmptyStr = Field(
        description="JSON-lines file, one request body per line, posted round-robin "
        "(relative to the directory mlgate runs in).",
    )
    duration: Seconds = Field(default=10, le=3600, description="Seconds of load measured.")
    warmup: NonNegativeFloat = Field(
        default=1, le=600, description="Seconds of load before measuring, left out."
    )
    rate: PositiveFloat = Field(
        default=20, le=100_000, description="Requests per second, sent on schedule."
    )
    health_timeout: Seconds = Field(
        default=30, le=3600, description="Seconds the server has to become healthy."
    )
    p95_ms_max: PositiveFloat | None = Field(default=None, description="p95 latency limit, ms.")
    error_rate_max: Fraction = Field(default=0.0, description="Share of requests allowed to fail.")


class CardConfig(BaseModel):
    """What the model card says that evidence cannot: what the model is for, and its limits."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="The model's name on the card.")
    purpose: str | None = None
    intended_use: str | None = None
    out_of_scope: str | None = None
    owners: list[str] = Field(default_factory=list)
    training_data: list[str] = Field(default_factory=list, description="Data sources.")
    evaluation_data: list[str] = Field(default_factory=list)
    limitations: list[str] = Field(default_factory=list)
    ethical_considerations: str | None = None


class PromotionConfig(BaseModel):
    """Promotion of model versions through MLflow aliases (`mlgate promote`)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None, description="Registered model name the bundles and promotions are about."
    )
    stages: list[str] = Field(
        default_factory=lambda: ["staging", "production"],
        min_length=1,
        description="Stages in order; each is an MLflow alias of the registered model.",
    )
    order: Literal["strict", "any"] = Field(
        default="strict",
        description="strict: a later stage only takes the version that holds the stage before "
        "it; any: every stage takes any version with a passing bundle.",
    )
    max_bundle_age_hours: float = Field(
        default=168,
        gt=0,
        le=MAX_BUNDLE_AGE_HOURS,
        allow_inf_nan=False,
        description="Older bundles are refused (at most 10 years).",
    )
    require_model_scan: bool = Field(
        default=False,
        description="Promote only a version whose bundle holds scan evidence that passes this "
        "policy and scanned that version's files (the scan stage's models: lists it as "
        "models:/NAME@ALIAS or models:/NAME/VERSION).",
    )
    data: list[str] = Field(
        default_factory=list,
        description="Data files (e.g. a DVC lock file) whose sha256 goes into the bundle.",
    )
    access: dict[str, StageAccess] = Field(
        default_factory=dict,
        description="Per stage: permission, teams and approvals [default: write permission].",
    )
    deploy_dispatch: EventType | None = Field(
        default=None,
        description="After a promotion, send this repository_dispatch event type through the "
        "GitHub API (client_payload: model, version, stage, bundle digest) for the workflow "
        "that deploys; if GitHub refuses it, the promotion is rolled back.",
    )
    deploy_command: list[str] | None = Field(
        default=None,
        description="Run after a promotion with MLGATE_MODEL, MLGATE_VERSION and MLGATE_STAGE "
        "set; if it fails, the promotion is rolled back and recorded as such.",
    )
    check: PromotionCheck | None = Field(
        default=None,
        description="Run after a promotion (after deploy_command): health, then a short "
        "open-loop load judged by p95_ms_max and error_rate_max; if it fails, the promotion is "
        "rolled back and recorded as such.",
    )

    @field_validator("stages")
    @classmethod
    def _distinct_aliases(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each stage may be listed once")
        for alias in value:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,62}", alias) or alias.lower() in (
                "latest",
            ):
                raise ValueError(f"{alias!r} cannot be an MLflow alias")
        return value

    def access_for(self, stage: str) -> StageAccess:
        return self.access.get(stage) or StageAccess()


# The `stages` and `policy` sections are built from the stage registry, so a new stage
# brings its own config and policy keys without edits here. A config is validated with the
# sections of the stages it names only: a command imports no stage it does not use.
@functools.cache
def _sections(names: frozenset[str]) -> tuple[type[BaseModel], type[BaseModel]]:
    """The `stages` and `policy` section models holding these stages, in registry order."""
    listed = [name for name in registry.REGISTRY if name in names]
    stages_config = create_model(  # type: ignore[call-overload]
        "StagesConfig",
        __config__=ConfigDict(extra="forbid"),
        **{name: (registry.config_model(name) | None, None) for name in listed},
    )
    policy_config = create_model(  # type: ignore[call-overload]
        "PolicyConfig",
        __config__=ConfigDict(extra="forbid"),
        **{
            name: (model, Field(default_factory=model))
            for name in listed
            for model in [registry.policy_model(name)]
        },
    )
    return stages_config, policy_config


_NO_STAGES, _NO_POLICY = _sections(frozenset())


class MlgateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="mlgate configuration (mlgate.yml)")

    version: Literal[1] = 1
    evidence_dir: NonEmptyStr = Field(
        default=".mlgate/evidence",
        description="Where stages write evidence, relative to the project directory.",
    )
    stages: BaseModel = Field(
        default_factory=_NO_STAGES,
        description="Stages to run; a stage listed here is required by the gate.",
    )
    policy: BaseModel = Field(
        default_factory=_NO_POLICY, description="Rules the gate applies per stage."
    )
    report: ReportConfig = Field(default_factory=ReportConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    card: CardConfig = Field(default_factory=CardConfig)

    @field_validator("evidence_dir")
    @classmethod
    def _inside_the_project(cls, value: str) -> str:
        # The report artifact uploads the project's .mlgate/: evidence elsewhere would be
        # missing from it (and from every later run's reach).
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a relative path inside the project, without '..'")
        return value

    def stage_config(self, name: str) -> StageConfig | None:
        section: StageConfig | None = getattr(self.stages, name, None)
        return section if section is not None and section.enabled else None

    def stage_policy(self, name: str) -> StagePolicy:
        """The stage's policy section; a stage the config does not name has the defaults."""
        policy = self.named_policy(name)
        return policy if policy is not None else registry.policy_model(name)()

    def named_policy(self, name: str) -> StagePolicy | None:
        """The stage's policy section if the config names the stage, else None (the defaults,
        left unbuilt: the stage's module is not imported)."""
        policy: StagePolicy | None = getattr(self.policy, name, None)
        return policy

    @property
    def enabled_stages(self) -> list[str]:
        return [name for name in registry.REGISTRY if self.stage_config(name) is not None]

    @property
    def digest(self) -> str:
        """The whole config as validated (see `_judged_document`)."""
        return _digest(self._judged_document())

    @property
    def policy_digest(self) -> str:
        """The `policy` part of the same: what a verdict or bundle was judged under."""
        return _digest(self._judged_document()["policy"])

    def _judged_document(self) -> dict[str, Any]:
        # Covers every section, and the resolved stages/policy sections (defaults filled in)
        # of each stage the config names: the gate judges only the configured stages, so
        # those sections pin what was judged. Stages the config never names are left out,
        # so their defaults are neither built nor hashed. The one exception is the scan
        # policy that promotion.require_model_scan applies to a bundle: it is hashed too.
        document = self.model_dump(mode="json")
        if self.promotion.require_model_scan and "scan" not in document["policy"]:
            document["policy"]["scan"] = self.stage_policy("scan").model_dump(mode="json")
        return document


def _digest(document: Any) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def load(path: Path | None = None, *, required: bool = True) -> MlgateConfig:
    """Load and validate a config file; with `required=False` a missing file means defaults."""
    path = path or DEFAULT_PATH
    try:
        document = safe_yaml.load_file(path, "config")
    except safe_yaml.MissingFile:
        if not required:
            return MlgateConfig()
        raise
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return parse(document, source=str(path))


def parse(document: dict[str, Any], source: str = "config") -> MlgateConfig:
    try:
        return _model_for(_named_stages(document)).model_validate(document)
    except ValidationError as exc:
        raise ConfigError(describe(exc, source)) from None


def describe(exc: ValidationError, source: str) -> str:
    """One line: file, dotted key, what was expected, and how many more problems there are."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = first["msg"]
        if first["type"] not in ("missing",):
            message += f" (got {_short(first.get('input'))})"
    more = (
        f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
    )
    return f"{source}: {key}: {message}{more}"


def _short(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _named_stages(document: dict[str, Any]) -> frozenset[str]:
    """The registered stages the document's `stages` and `policy` sections name (any other
    key is left for validation to refuse as unknown)."""
    named = [
        key
        for section in (document.get("stages"), document.get("policy"))
        if isinstance(section, dict)
        for key in section
    ]
    return frozenset(name for name in named if name in registry.REGISTRY)


@functools.cache
def _model_for(names: frozenset[str]) -> type[MlgateConfig]:
    """MlgateConfig with the `stages` and `policy` sections of these stages."""
    stages_config, policy_config = _sections(names)
    fields = MlgateConfig.model_fields
    model: type[MlgateConfig] = create_model(
        "MlgateConfig",
        __base__=MlgateConfig,
        stages=(
            stages_config,
            Field(default_factory=stages_config, description=fields["stages"].description),
        ),
        policy=(
            policy_config,
            Field(default_factory=policy_config, description=fields["policy"].description),
        ),
    )
    return model


def json_schema() -> dict[str, Any]:
    schema = _model_for(frozenset(registry.REGISTRY)).model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
