"""Scan stage: every configured scanner over code, dependencies, the image and the model files,
one Finding model, one policy, governed waivers, SARIF per scanner.

Waivers are applied twice: when scanning (so the evidence and its reports show what is waived)
and again by the gate with its own date, from the waivers recorded in the evidence, so a waiver
that expires between the two stops waiving.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlgate import evidence as ev
from mlgate import waivers as waiver_rules
from mlgate.errors import MlgateError
from mlgate.evidence import Evidence, Finding, Severity
from mlgate.fields import Paths
from mlgate.report import escape
from mlgate.stages import scan_registry
from mlgate.stages.baseline import Baseline, baseline_path
from mlgate.stages.interface import RunContext, Stage, StageConfig, StagePolicy
from mlgate.verdict import RuleResult

if TYPE_CHECKING:
    from mlgate.scanners.osv import OsvDatabase

Threshold = Literal["critical", "high", "medium", "low", "info", "never"]
_DEFAULT_WAIVERS = ".mlgate/waivers.yml"
_SCRATCH = "scan"  # under the evidence directory: SARIF files, SBOM, image archive
_SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info", "unknown")
# Advisory-type findings, to which only_fixable applies (a code smell has no fixed version).
_VULNERABILITY_SOURCES = ("dependencies", "image-os", "image-python")


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
        description=f"Waivers file [default: {_DEFAULT_WAIVERS} when it exists].",
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
    tool_timeout: float = Field(default=900, gt=0, description="Seconds each tool may take.")

    @field_validator("models", mode="after")
    @classmethod
    def _registry_uris(cls, models: list[str]) -> list[str]:
        return [scan_registry.check_uri(entry) for entry in models]

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


class ScanStage(Stage[ScanConfig, ScanPolicy]):
    name = "scan"
    title = "Security scan"
    config_model = ScanConfig
    policy_model = ScanPolicy
    extras = ("scan",)

    def run(self, config: ScanConfig, context: RunContext) -> Evidence:
        from mlgate.scanners import SCANNERS
        from mlgate.scanners.errors import ScanError
        from mlgate.scanners.interface import ScanTargets, fingerprint
        from mlgate.stages import model_guard

        started = ev.now()
        workdir = Path(config.working_directory).resolve()
        scratch = context.evidence_dir / _SCRATCH
        scratch.mkdir(parents=True, exist_ok=True)
        findings: list[Finding] = []
        tool_versions: dict[str, str] = {}
        data: dict[str, object] = {}
        artifacts: list[ev.Artifact] = []

        def done(status: ev.Status, reason: str | None = None) -> Evidence:
            return _evidence(
                context, started, status, reason, findings, data, artifacts, tool_versions
            )

        local_models = [m for m in config.models if not scan_registry.is_registry_uri(m)]
        try:
            registered = scan_registry.fetch(
                [m for m in config.models if scan_registry.is_registry_uri(m)],
                config.tracking_uri,
                workdir / ".mlgate" / "scanned-models",
            )
            targets = ScanTargets(
                workdir=workdir,
                sources=_existing(workdir, config.sources, "source"),
                requirements=_existing(workdir, config.requirements, "requirements file"),
                environments=_existing(workdir, config.environments, "environment"),
                image=config.image,
                dockerfile=(
                    _existing(workdir, [config.dockerfile], "Dockerfile")[0]
                    if config.dockerfile
                    else None
                ),
                models=_existing(workdir, local_models, "model")
                + tuple(target.directory for target in registered),
                osv_db=_osv_db(workdir, config.osv_db),
                image_os_vulnerabilities=config.image_os_vulnerabilities,
                timeout=config.tool_timeout,
                scratch=scratch.resolve(),
            )
            waivers = _waivers(workdir, config.waivers)
        except MlgateError as exc:
            return done("error", str(exc))
        if targets.osv_db is not None:
            data["osv_db"] = {
                "path": str(targets.osv_db.path),
                "digest": targets.osv_db.digest,
                "records": targets.osv_db.records,
            }
        data["waivers"] = [w.model_dump(mode="json") for w in waivers]
        if registered:
            data[scan_registry.DATA_KEY] = [target.identity() for target in registered]
        # What a passing scan vouches for, so stages loading these files need not scan again.
        data["model_digests"] = model_guard.model_digests(targets.models)

        unknown = [name for name in config.scanners or [] if name not in SCANNERS]
        if unknown:
            known = ", ".join(SCANNERS)
            return done("error", f"unknown scanner {unknown[0]!r}; known: {known}")
        chosen = config.scanners or [n for n, s in SCANNERS.items() if s.applies(targets)]
        idle = [n for n in chosen if not SCANNERS[n].applies(targets)]
        if idle:
            return done("error", f"scanner {idle[0]} is configured but has nothing to scan")
        # A model file passes only when every model engine finds it clean: none may be left out.
        left_out = [
            n
            for n, s in SCANNERS.items()
            if "model" in s.sources and targets.models and n not in chosen
        ]
        if left_out:
            return done(
                "error",
                f"models are scanned by every model engine; scanners: leaves out {left_out[0]}",
            )
        data["scanners"] = chosen
        producer: dict[str, str] = {}  # fingerprint -> the scanner that reported it first
        versions: dict[str, str] = {}  # scanner -> its tool's version, for SARIF
        for name in chosen:
            try:
                result = SCANNERS[name].scan(targets)
            except ScanError as exc:
                # Fail closed, keeping what the scanners before it found.
                message = str(exc)
                return done("error", message if message.startswith(name) else f"{name}: {message}")
            for found in result.findings:
                found = scan_registry.relabel(found, registered, workdir)
                if not found.fingerprint:
                    key = fingerprint(name, found.id, found.package, found.version, found.path)
                    found = found.model_copy(update={"fingerprint": key})
                assert found.fingerprint is not None
                if found.fingerprint in producer:
                    continue  # the same problem reported twice is one finding
                producer[found.fingerprint] = name
                findings.append(found)
            tool_versions.update(result.tool_versions)
            versions[name] = result.tool_versions.get(name) or next(
                iter(result.tool_versions.values()), ""
            )
            if result.data:
                data[name] = result.data
            for path, description in result.artifacts.items():
                artifacts.append(_artifact(path, context.evidence_dir, description))

        findings[:] = waiver_rules.apply(waivers, findings, waiver_rules.today()).findings
        for name in chosen:
            own = [f for f in findings if producer.get(f.fingerprint or "") == name]
            path = _write_sarif(name, own, config, versions.get(name), scratch)
            artifacts.append(_artifact(path, context.evidence_dir, f"SARIF 2.1.0 of {name}"))
        data["sarif"] = [a.path for a in artifacts if a.path.endswith(".sarif")]
        if config.baseline is not None:
            try:
                data["baseline"] = _baseline_fingerprints(config, context)
            except MlgateError as exc:
                return done("error", f"baseline: {exc}")
        return done("passed")

    def evaluate(self, policy: ScanPolicy, evidence: Evidence) -> list[RuleResult]:
        today = waiver_rules.today()
        try:
            waivers = [waiver_rules.Waiver.model_validate(w) for w in evidence.data["waivers"]]
        except (KeyError, TypeError, ValidationError):
            # Evidence edited by hand or written by something else: judge nothing from it.
            return [
                RuleResult(
                    stage=self.name,
                    rule="scan.waivers",
                    outcome="fail",
                    reason="scan: the evidence does not record its waivers as mlgate writes them",
                )
            ]
        applied = waiver_rules.apply(waivers, evidence.findings, today)
        baseline = evidence.data.get("baseline")
        results = [self._findings_rule(policy, applied.findings, baseline)]
        results.append(_waivers_rule(applied, today))
        return results

    def _findings_rule(
        self, policy: ScanPolicy, findings: list[Finding], baseline: object
    ) -> RuleResult:
        if policy.new_only and not isinstance(baseline, dict):
            return RuleResult(
                stage=self.name,
                rule="scan.findings",
                outcome="fail",
                reason="scan: new_only needs a baseline (stages.scan.baseline); none was read",
            )
        known = set(baseline.get("fingerprints", [])) if isinstance(baseline, dict) else set()
        blocking = [f for f in findings if _blocks(policy, f, known)]
        waived = sum(1 for f in findings if f.waived_by)
        counts = Counter(f"{f.source or 'other'} {effective(policy, f)}" for f in blocking)
        listed = ", ".join(f"{n} {what}" for what, n in counts.most_common())
        extra = f"; {waived} waived" if waived else ""
        scope = " new" if policy.new_only else ""
        if blocking:
            reason = (
                f"scan: {len(blocking)}{scope} finding{'s' if len(blocking) != 1 else ''} at or "
                f"above the policy's severity ({listed}){extra}"
            )
        else:
            reason = (
                f"scan: {len(findings)} findings, none{scope} at or above the policy's "
                f"severity{extra}"
            )
        return RuleResult(
            stage=self.name,
            rule="scan.findings",
            outcome="fail" if blocking else "pass",
            reason=reason,
        )

    def summary(self, evidence: Evidence) -> str:
        if evidence.status == "error":
            return f"error: {evidence.reason}"
        counts = Counter(f.severity for f in evidence.findings)
        by_severity = ", ".join(f"{counts[s]} {s}" for s in _SEVERITIES if counts[s])
        waived = sum(1 for f in evidence.findings if f.waived_by)
        scanners = ", ".join(str(s) for s in evidence.data.get("scanners", []))
        total = len(evidence.findings)
        what = f"{total} finding{'s' if total != 1 else ''}" + (
            f" ({by_severity})" if total else ""
        )
        return f"{what}, {waived} waived; scanners: {scanners}"

    def report_markdown(self, evidence: Evidence) -> str:
        """Findings grouped by source and severity: counts, then the worst ones listed."""
        if not evidence.findings:
            return ""
        grid: Counter[tuple[str, str]] = Counter(
            (f.source or "other", f.severity) for f in evidence.findings
        )
        sources = sorted({s for s, _ in grid})
        lines = [
            "| source | " + " | ".join(_SEVERITIES) + " | waived |",
            "|---|" + "---|" * (len(_SEVERITIES) + 1),
        ]
        for source in sources:
            waived = sum(
                1 for f in evidence.findings if (f.source or "other") == source and f.waived_by
            )
            cells = " | ".join(str(grid[(source, s)] or "") for s in _SEVERITIES)
            lines.append(f"| {escape.inline(source)} | {cells} | {waived or ''} |")
        worst = sorted(evidence.findings, key=lambda f: _SEVERITIES.index(f.severity))[:20]
        lines += ["", "| severity | id | where | what |", "|---|---|---|---|"]
        for f in worst:
            where = (f.package and f"{f.package} {f.version or ''}".strip()) or f.path or ""
            if f.image:
                where = f"{where} in {f.image}" if where else f.image
            mark = " (waived)" if f.waived_by else ""
            lines.append(
                f"| {f.severity}{mark} | {escape.inline(f.id, 100)} | {escape.inline(where, 200)} "
                f"| {escape.inline(f.title or f.message, 200)} |"
            )
        if len(evidence.findings) > len(worst):
            lines.append(f"\n{len(evidence.findings) - len(worst)} more in the SARIF files.")
        return "\n".join(lines)

    def report_html(self, evidence: Evidence) -> str:
        if not evidence.findings:
            return ""
        return escape.html_table(
            ("severity", "source", "id", "aliases", "where", "image", "what"),
            (
                (
                    f.severity + (" (waived)" if f.waived_by else ""),
                    f.source or "",
                    f.id,
                    ", ".join(f.aliases),
                    (f.package and f"{f.package} {f.version or ''}") or f.path or "",
                    f.image or "",
                    f.title or f.message,
                )
                for f in sorted(evidence.findings, key=lambda f: _SEVERITIES.index(f.severity))
            ),
        )


def effective(policy: ScanPolicy, finding: Finding) -> Severity:
    return policy.unknown_severity if finding.severity == "unknown" else finding.severity


def _blocks(policy: ScanPolicy, finding: Finding, baseline: set[str]) -> bool:
    if finding.waived_by:
        return False
    threshold = policy.fail_on.threshold(finding.source)
    if threshold == "never":
        return False
    severity = effective(policy, finding)
    if _SEVERITIES.index(severity) > _SEVERITIES.index(threshold):
        return False
    if (
        policy.only_fixable
        and finding.source in _VULNERABILITY_SOURCES
        and not finding.fixed_versions
    ):
        return False
    return not (policy.new_only and finding.fingerprint in baseline)


def _waivers_rule(applied: waiver_rules.Applied, today: date) -> RuleResult:
    problems = [f"waiver {w.label()} expired on {w.expires.isoformat()}" for w in applied.expired]
    notes = [
        f"waiver {w.label()} would hide critical {f.id}: it needs allow_critical: true"
        for w, f in applied.refused
    ]
    notes += [f"waiver {w.label()} matched nothing" for w in applied.unused]
    if problems:
        reason = "scan: " + "; ".join(problems + notes)
    elif notes:
        reason = "scan: waivers in order as of " + today.isoformat() + "; " + "; ".join(notes)
    else:
        reason = f"scan: waivers in order as of {today.isoformat()}"
    return RuleResult(
        stage="scan",
        rule="scan.waivers",
        outcome="fail" if problems else "pass",
        reason=reason,
    )


def _existing(workdir: Path, paths: list[str], what: str) -> tuple[Path, ...]:
    resolved = []
    for name in paths:
        path = (workdir / name).resolve()
        if not path.exists():
            raise MlgateError(f"{what} {name} does not exist (in {workdir})")
        resolved.append(path)
    return tuple(resolved)


def _osv_db(workdir: Path, name: str | None) -> OsvDatabase | None:
    if name is None:
        return None
    from mlgate.scanners.osv import OsvDatabase

    return OsvDatabase.load(workdir / name)


def _waivers(workdir: Path, name: str | None) -> list[waiver_rules.Waiver]:
    if name is None:
        default = workdir / _DEFAULT_WAIVERS
        return waiver_rules.load(default) if default.exists() else []
    return waiver_rules.load(workdir / name)


def _write_sarif(
    name: str,
    findings: list[Finding],
    config: ScanConfig,
    version: str | None,
    scratch: Path,
) -> Path:
    from mlgate.report import sarif

    fallback = config.dockerfile if name == "image" else None
    if name != "image" and config.requirements:
        fallback = config.requirements[0]
    log, _ = sarif.document(
        findings,
        tool=name,
        version=version or None,
        category=f"mlgate/{name}",
        fallback_path=fallback,
    )
    path = scratch / f"{name}.sarif"
    sarif.write(log, path)
    return path


def _artifact(path: Path, evidence_dir: Path, description: str) -> ev.Artifact:
    made = ev.artifact(path, description)
    try:
        relative = path.resolve().relative_to(evidence_dir.resolve())
    except ValueError:
        return made
    return made.model_copy(update={"path": relative.as_posix()})


def _baseline_fingerprints(config: ScanConfig, context: RunContext) -> dict[str, object]:
    assert config.baseline is not None
    path = baseline_path(config.baseline, "scan", config.working_directory, context.evidence_dir)
    document = ev.read(path)
    if document.stage != "scan" or document.status != "passed":
        raise MlgateError(
            f"{path}: not scan evidence that ran (stage {document.stage}, {document.status})"
        )
    prints = sorted({f.fingerprint for f in document.findings if f.fingerprint})
    return {"source": str(path), "fingerprints": prints}


def _evidence(
    context: RunContext,
    started: datetime,
    status: ev.Status,
    reason: str | None,
    findings: list[Finding],
    data: dict[str, object],
    artifacts: list[ev.Artifact],
    tool_versions: dict[str, str],
) -> Evidence:
    counts = Counter(f.severity for f in findings)
    metrics: dict[str, ev.MetricValue] = {
        "findings": len(findings),
        "waived": sum(1 for f in findings if f.waived_by),
    }
    metrics.update({s: counts[s] for s in _SEVERITIES})
    return Evidence(
        stage=ScanStage.name,
        status=status,
        reason=reason,
        started_at=started,
        finished_at=ev.now(),
        metrics=metrics,
        findings=findings,
        artifacts=artifacts,
        data=data,
        provenance=ev.collect_provenance(context.config_digest, tool_versions),
    )
