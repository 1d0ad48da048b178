"""Scan stage: every configured scanner over code, dependencies, the image and the model files,
one Finding model, one policy, governed waivers, SARIF per scanner.

Waivers are applied twice: when scanning (so the evidence and its reports show what is waived)
and again by the gate with its own date, from the waivers recorded in the evidence, so a waiver
that expires between the two stops waiving.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from mlgate import evidence as ev
from mlgate import waivers as waiver_rules
from mlgate.errors import MlgateError
from mlgate.evidence import SEVERITIES, Evidence, Finding
from mlgate.stages.finish import finished_evidence
from mlgate.stages.interface import RunContext, Stage
from mlgate.stages.scan import registry_models
from mlgate.stages.scan.config import ScanConfig, ScanPolicy
from mlgate.stages.scan.inputs import (
    baseline_fingerprints,
    existing_paths,
    load_osv_db,
    load_waivers,
)
from mlgate.stages.scan.model_digests import model_digests
from mlgate.stages.scan.report import findings_html, findings_markdown
from mlgate.stages.scan.rules import findings_rule, waivers_rule
from mlgate.verdict import RuleResult

_SCRATCH = "scan"  # under the evidence directory: SARIF files, SBOM, image archive


class ScanStage(Stage[ScanConfig, ScanPolicy]):
    name = "scan"
    title = "Security scan"
    extras = ("scan",)

    def run(self, config: ScanConfig, context: RunContext) -> Evidence:
        from mlgate.scanners import SCANNERS
        from mlgate.scanners.errors import ScanError
        from mlgate.scanners.interface import ScanTargets, fingerprint

        started = ev.now()
        workdir = Path(config.working_directory).resolve()
        scratch = context.evidence_dir / _SCRATCH
        scratch.mkdir(parents=True, exist_ok=True)
        findings: list[Finding] = []
        tool_versions: dict[str, str] = {}
        data: dict[str, object] = {}
        artifacts: list[ev.Artifact] = []

        def done(status: ev.Status, reason: str | None = None) -> Evidence:
            return finished_evidence(
                ScanStage.name,
                context,
                started,
                status,
                reason,
                metrics=_metrics(findings),
                findings=findings,
                artifacts=artifacts,
                data=data,
                tool_versions=tool_versions,
            )

        local_models = [m for m in config.models if not registry_models.is_registry_uri(m)]
        try:
            registered = registry_models.fetch(
                [m for m in config.models if registry_models.is_registry_uri(m)],
                config.tracking_uri,
                workdir / ".mlgate" / "scanned-models",
            )
            targets = ScanTargets(
                workdir=workdir,
                sources=existing_paths(workdir, config.sources, "source"),
                requirements=existing_paths(workdir, config.requirements, "requirements file"),
                environments=existing_paths(workdir, config.environments, "environment"),
                image=config.image,
                dockerfile=(
                    existing_paths(workdir, [config.dockerfile], "Dockerfile")[0]
                    if config.dockerfile
                    else None
                ),
                models=existing_paths(workdir, local_models, "model")
                + tuple(target.directory for target in registered),
                osv_db=load_osv_db(workdir, config.osv_db),
                image_os_vulnerabilities=config.image_os_vulnerabilities,
                timeout=config.tool_timeout,
                scratch=scratch.resolve(),
            )
            waivers = load_waivers(workdir, config.waivers)
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
            data[registry_models.DATA_KEY] = [target.identity() for target in registered]
        # What a passing scan vouches for, so stages loading these files need not scan again.
        data["model_digests"] = model_digests(targets.models)

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
                found = registry_models.relabel(found, registered, workdir)
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
                data["baseline"] = baseline_fingerprints(config, context)
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
        results = [findings_rule(policy, applied.findings, evidence.data)]
        results.append(waivers_rule(applied, today))
        return results

    def report_markdown(self, evidence: Evidence) -> str:
        """Findings grouped by source and severity: counts, then the worst ones listed."""
        return findings_markdown(evidence)

    def report_html(self, evidence: Evidence) -> str:
        return findings_html(evidence)

    def summary(self, evidence: Evidence) -> str:
        if evidence.status == "error":
            return f"error: {evidence.reason}"
        counts = Counter(f.severity for f in evidence.findings)
        by_severity = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES if counts[s])
        waived = sum(1 for f in evidence.findings if f.waived_by)
        scanners = ", ".join(str(s) for s in evidence.data.get("scanners", []))
        total = len(evidence.findings)
        what = f"{total} finding{'s' if total != 1 else ''}" + (
            f" ({by_severity})" if total else ""
        )
        return f"{what}, {waived} waived; scanners: {scanners}"


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


def _metrics(findings: list[Finding]) -> dict[str, ev.MetricValue]:
    counts = Counter(f.severity for f in findings)
    metrics: dict[str, ev.MetricValue] = {
        "findings": len(findings),
        "waived": sum(1 for f in findings if f.waived_by),
    }
    metrics.update({s: counts[s] for s in SEVERITIES})
    return metrics
