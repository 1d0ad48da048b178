"""Evidence: the one JSON document each stage writes, versioned and schema-checked on every read.

Reading checks a document against the published JSON Schema (schemas/evidence.schema.json,
generated from these models) through the models themselves, in pydantic's strict JSON mode: no
coercion ("1" is not an integer, 1.0 is not a string), no extra keys, patterns and bounds as the
schema states, and date-times as RFC 3339 requires. A property test keeps the models and the
schema accepting and refusing the same documents.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import weakref
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from mlgate import __version__, actions_env, atomic_file, redact
from mlgate.errors import EvidenceError

SCHEMA_RESOURCE = "evidence.schema.json"

Status = Literal["passed", "failed", "error", "skipped"]
Severity = Literal["critical", "high", "medium", "low", "info", "unknown"]
# Most severe first: the order findings are judged, listed and annotated in.
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info", "unknown")
MetricValue = float | int | str | bool | None


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Stable identity of what was found (test id, advisory id, ...).")
    severity: Severity
    message: str
    rule: str = Field(description="What kind of finding this is, e.g. 'test-failure'.")
    path: str | None = None
    line: int | None = Field(default=None, ge=1)
    title: str | None = None
    detail: str | None = None
    # Security findings (the scan stage); other stages leave these out.
    tool: str | None = Field(default=None, description="Scanner that reported it, e.g. 'bandit'.")
    source: str | None = Field(
        default=None,
        description="Where it was found: code, dependencies, image-os, image-python, secrets, "
        "misconfig or model.",
    )
    aliases: list[str] = Field(
        default_factory=list, description="Other ids of the same advisory (CVE, GHSA, PYSEC)."
    )
    package: str | None = None
    version: str | None = Field(default=None, description="Installed version of the package.")
    fixed_versions: list[str] = Field(default_factory=list)
    image: str | None = Field(default=None, description="Image the finding is in.")
    fingerprint: str | None = Field(
        default=None, description="Stable identity across runs, for new-findings-only mode."
    )
    waived_by: dict[str, str] | None = Field(
        default=None, description="The waiver that covers it (id, owner, reason, expires)."
    )


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    description: str | None = None
    input: bool = Field(
        default=False,
        description="A file the stage read (a JUnit report), named as configured and pinned by its "
        "digest; not part of an evidence bundle. Otherwise a file the stage wrote, named inside "
        "the evidence directory.",
    )


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repository: str | None = None
    git_sha: str | None = None
    ref: str | None = None
    pr_number: int | None = None
    workflow_run_id: str | None = None
    workflow_run_attempt: int | None = None
    actor: str | None = None
    runner_os: str | None = None
    tool_versions: dict[str, str] = Field(default_factory=dict)
    config_digest: str | None = None


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["1.0"] = "1.0"
    stage: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    status: Status
    reason: str | None = Field(
        default=None, description="Why the stage errored or was skipped; one line."
    )
    started_at: datetime
    finished_at: datetime

    @field_validator("started_at", "finished_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        # The schema's "date-time" is RFC 3339's; pydantic would also take "2024-01-01T00:00",
        # a missing offset or a bare timestamp, so a string is parsed here, strictly.
        return _parse_rfc3339(value) if isinstance(value, str) else value

    @field_validator("reason")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # Reasons quote tools' errors, which may repeat a URI with its credentials.
        return redact.credentials(" ".join(value.split())) if value is not None else None

    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    artifacts: list[Artifact] = Field(default_factory=list)
    data: dict[str, Any] = Field(
        default_factory=dict, description="Stage-specific structured detail."
    )
    provenance: Provenance = Field(default_factory=Provenance)


_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(?:([Zz])|([+-]\d{2}:\d{2}))",
    re.ASCII,
)


def _parse_rfc3339(text: str) -> datetime:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("not an RFC 3339 date-time (e.g. 2024-05-01T12:00:00Z)")
    day, time, fraction, utc, offset = match.groups()
    micro = f".{(fraction or '')[:6]:0<6}"
    try:  # fromisoformat checks the ranges (month 13, hour 24, a 30th of February)
        return datetime.fromisoformat(f"{day}T{time}{micro}{'+00:00' if utc else offset}")
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {exc}") from None


def now() -> datetime:
    return datetime.now(timezone.utc)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact(path: Path, description: str | None = None, *, read: bool = False) -> Artifact:
    """The artifact record of `path`: a file the stage wrote, or with `read` one it read."""
    return Artifact(
        path=str(path),
        sha256=sha256_file(path),
        size=path.stat().st_size,
        description=description,
        input=read,
    )


def crashed(
    stage: str, started: datetime, problem: BaseException, config_digest: str | None
) -> Evidence:
    """Error evidence for a stage that raised: the gate must see the crash, not old evidence."""
    return Evidence(
        stage=stage,
        status="error",
        reason=f"stage crashed: {type(problem).__name__}: {problem}"[:1000],
        started_at=started,
        finished_at=now(),
        provenance=collect_provenance(config_digest, {}),
    )


def collect_provenance(config_digest: str | None, tool_versions: dict[str, str]) -> Provenance:
    """Where and from what this evidence was made, read from the GitHub Actions environment."""
    env = os.environ
    payload = actions_env.event_payload()
    attempt = env.get("GITHUB_RUN_ATTEMPT")
    return Provenance(
        repository=env.get("GITHUB_REPOSITORY"),
        git_sha=actions_env.commit_under_test(payload),
        ref=env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF"),
        pr_number=actions_env.pr_number(payload),
        workflow_run_id=env.get("GITHUB_RUN_ID"),
        workflow_run_attempt=int(attempt) if attempt and attempt.isdigit() else None,
        actor=env.get("GITHUB_ACTOR"),
        runner_os=env.get("RUNNER_OS") or platform.system(),
        tool_versions={"mlgate": __version__, "python": platform.python_version()} | tool_versions,
        config_digest=config_digest,
    )


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema, for tools and tests (reading checks through the models)."""
    text = resources.files("mlgate.schemas").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def generated_schema() -> dict[str, Any]:
    """The JSON Schema the shipped file must equal (a test keeps them in sync)."""
    generated = Evidence.model_json_schema()
    generated["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    generated["$id"] = "https://mlgate.dev/schemas/evidence-1.0.json"
    return generated


def evidence_path(evidence_dir: Path, stage: str) -> Path:
    return evidence_dir / f"{stage}.json"


def write(evidence: Evidence, evidence_dir: Path) -> Path:
    """Write atomically, so a crash mid-write never leaves a half document behind."""
    evidence_dir.mkdir(parents=True, exist_ok=True)
    target = evidence_path(evidence_dir, evidence.stage)
    atomic_file.write_bytes(target, evidence.model_dump_json(indent=2).encode("utf-8"))
    return target


def read(path: Path) -> Evidence:
    """Read one evidence document; anything unreadable or off-schema is an EvidenceError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read evidence: {exc.strerror or exc}") from None
    try:
        evidence = Evidence.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise EvidenceError(f"{path}: {_refusal(exc.errors(include_url=False))}") from None
    key = id(evidence)
    forget = weakref.ref(evidence, lambda _: _digests.pop(key, None))
    _digests[key] = (forget, hashlib.sha256(raw).hexdigest())
    return evidence


# The digest of the bytes each document read() returned was parsed from: the verdict pins, and
# the report compares, what was judged, without reading the file again (a second read could
# also see a file replaced in between).
_digests: dict[int, tuple[weakref.ref[Evidence], str]] = {}


def digest(evidence: Evidence, path: Path) -> str:
    """The sha256 of the bytes `evidence` was read from, or of `path` now if it was not read."""
    held = _digests.get(id(evidence))
    if held is not None and held[0]() is evidence:
        return held[1]
    return sha256_file(path)


# The members of MetricValue, as pydantic names the branches of the union in an error.
_METRIC_BRANCHES = frozenset({"float", "int", "str", "bool"})


def _refusal(errors: list[ErrorDetails]) -> str:
    """One line: the first problem, where it is (a JSON pointer-like path) and what is wrong."""
    first = errors[0]
    if first["type"] == "json_invalid":
        reason = str(first.get("ctx", {}).get("error", first["msg"]))
        if "recursion" in reason:
            return "not valid evidence: nested too deeply"
        return f"not valid JSON: {reason}"
    where = list(first["loc"])
    message = first["msg"]
    if len(where) == 3 and where[0] == "metrics" and where[-1] in _METRIC_BRANCHES:
        # A metric matching no branch of the union: one error per branch, said once.
        where.pop()
        message = "Input should be a number, a string, a boolean or null"
    if first["type"] == "value_error":
        message = str(first.get("ctx", {}).get("error", message))
    pointer = "/".join(str(part) for part in where) or "(root)"
    if len(message) > 200:
        message = message[:200] + "..."
    return f"does not match the evidence schema at {pointer}: {message}"


def scan(evidence_dir: Path) -> tuple[dict[str, tuple[Path, Evidence]], list[tuple[Path, str]]]:
    """All evidence in a directory, and the files that could not be read (with the reason)."""
    found: dict[str, tuple[Path, Evidence]] = {}
    broken: list[tuple[Path, str]] = []
    if not evidence_dir.is_dir():
        return found, broken
    for path in sorted(evidence_dir.glob("*.json")):
        try:
            evidence = read(path)
        except EvidenceError as exc:
            broken.append((path, str(exc)))
            continue
        if path.stem != evidence.stage:
            broken.append((path, f"{path}: holds evidence of stage '{evidence.stage}'"))
            continue
        found[evidence.stage] = (path, evidence)
    return found, broken
