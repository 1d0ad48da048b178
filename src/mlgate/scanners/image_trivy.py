"""trivy run over a saved image or a Dockerfile, and its JSON reports turned into findings:
secrets, misconfigurations and vulnerable OS packages."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlgate.evidence import Finding, Severity
from mlgate.scanners.errors import ScanError
from mlgate.scanners.interface import (
    ScanTargets,
    fingerprint,
)
from mlgate.scanners.tool_output import (
    clip,
    json_dict,
    json_dicts,
    short,
)
from mlgate.scanners.tool_run import run_tool

TOOL = "image"  # the scanner these findings are reported by
_SEVERITIES: dict[str, Severity] = {
    "CRITICAL": "critical",
    "HIGH": "high",
    "MEDIUM": "medium",
    "LOW": "low",
    "UNKNOWN": "unknown",
}
_LAYER_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Every trivy run stays on this machine, except the vulnerability scan's database download.
_TRIVY_LOCAL = [
    "--quiet",
    "--skip-version-check",
    "--disable-telemetry",
    "--cache-backend",
    "memory",
]
TRIVY_OFFLINE = ["--skip-db-update", "--skip-java-db-update", "--skip-check-update"]


class Trivy:
    def __init__(self, binary: Path | None, targets: ScanTargets) -> None:
        if binary is None:
            raise ScanError(
                "trivy is not installed; needed for secrets and misconfig scanning of the image "
                f"(looked beside {sys.executable} and on PATH)"
            )
        self.binary = binary
        self.targets = targets
        # Its vulnerability database stays in the user's cache, as trivy itself keeps it, so it
        # is downloaded once, not in every scan; analysis results stay in memory.
        self.cache = Path(
            os.environ.get("TRIVY_CACHE_DIR")
            or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trivy"
        )

    def run(
        self,
        what: str,
        command: list[str],
        options: list[str],
        output: Path,
        *,
        database: bool = False,
    ) -> dict[str, Any]:
        """Run `trivy COMMAND...` writing JSON to `output`, and return it parsed."""
        if command[0] == "convert":
            extra = ["--quiet"]  # convert reads a report: no analysis, no cache
        else:
            timeout = f"{max(1, int(self.targets.timeout))}s"
            extra = [*_TRIVY_LOCAL, "--cache-dir", str(self.cache), "--timeout", timeout]
            extra += ["--format", "json"]
        argv = [str(self.binary), *command, *extra, *options, "--output", str(output)]
        exit_code, _, stderr = run_tool(argv, self.targets, "trivy")
        if exit_code != 0:
            problem = _trivy_problem(stderr.decode(errors="replace")) or f"exit code {exit_code}"
            if database and "DB error" in problem:
                raise ScanError(
                    "trivy has no vulnerability database for the image's OS packages and "
                    f"cannot get one into {self.cache}: {clip(problem)}"
                )
            raise ScanError(f"trivy {what} failed: {clip(problem)}")
        try:
            report = json.loads(output.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ScanError(f"trivy {what} wrote no readable report: {short(exc)}") from None
        if not isinstance(report, dict):
            raise ScanError(f"trivy {what} wrote no readable report: not a JSON object")
        return report


def _trivy_problem(stderr: str) -> str:
    """trivy's FATAL message (it may span lines), without its timestamp and level."""
    lines = stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if "\tFATAL\t" in line), None)
    if start is None:
        return next((line.strip() for line in reversed(lines) if line.strip()), "")
    first = lines[start].split("\tFATAL\t", 1)[1].removeprefix("Fatal error")
    return " ".join(" ".join([first, *lines[start + 1 :]]).split())


def _results(report: dict[str, Any], kind: str) -> Iterator[dict[str, Any]]:
    for result in json_dicts(report.get("Results")):
        if result.get("Class") == kind:
            yield result


def os_packages(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for r in _results(report, "os-pkgs") for p in json_dicts(r.get("Packages"))]


def secret_findings(report: dict[str, Any], archive: Path, ref: str) -> list[Finding]:
    findings: dict[str, Finding] = {}
    for result in _results(report, "secret"):
        target = str(result.get("Target", ""))
        # Secrets in the image's configuration (ENV, labels, history) are reported against the
        # archive; their line is one of trivy's rendering of the config JSON, of no use here.
        in_config = target in (str(archive), archive.name)
        for secret in json_dicts(result.get("Secrets")):
            rule_id = str(secret.get("RuleID") or "secret")
            title = str(secret.get("Title") or rule_id)
            line = _line(secret.get("StartLine"))
            if in_config:
                where = "the image configuration (ENV, LABEL or build history)"
            else:
                where = f"{target}:{line}" if line else target
            finding = Finding(
                id=rule_id,
                severity=_severity(secret.get("Severity")),
                message=f"{title} in {where}",
                rule="secret",
                path=None if in_config else target,
                line=None if in_config else line,
                title=title,
                detail=_secret_layer(secret),
                tool=TOOL,
                source="secrets",
                image=ref,
                # Not the line: the same secret in the same file stays the same finding.
                fingerprint=fingerprint("secret", rule_id, "" if in_config else target, ref),
            )
            assert finding.fingerprint is not None
            findings.setdefault(finding.fingerprint, finding)
    return list(findings.values())


def _secret_layer(secret: dict[str, Any]) -> str | None:
    """Which layer added the secret, by its digest: never the layer's command (CreatedBy), the
    RUN or ENV line that wrote the secret, nor trivy's Match or Code lines, which hold it too."""
    layer = json_dict(secret.get("Layer"))
    digest = next(
        (d for d in (layer.get("DiffID"), layer.get("Digest")) if _LAYER_DIGEST.fullmatch(str(d))),
        None,
    )
    return f"Added by the image layer {digest} (its build command is not shown)" if digest else None


def misconfig_findings(report: dict[str, Any], dockerfile: str) -> Iterator[Finding]:
    for result in _results(report, "config"):
        for check in json_dicts(result.get("Misconfigurations")):
            if check.get("Status", "FAIL") != "FAIL":
                continue
            check_id = str(check.get("ID") or check.get("AVDID") or "misconfiguration")
            # trivy renamed its checks (DS002 -> DS-0002); waivers may use either.
            legacy = str(check.get("Namespace", "")).rpartition(".")[2]
            title = str(check.get("Title") or check_id)
            resolution = check.get("Resolution")
            line = _line(json_dict(check.get("CauseMetadata")).get("StartLine"))
            yield Finding(
                id=check_id,
                severity=_severity(check.get("Severity")),
                message=str(check.get("Message") or title),
                rule="misconfiguration",
                path=dockerfile,
                line=line,
                title=title,
                detail=" ".join(
                    str(part)
                    for part in (check.get("Description"), resolution and f"Fix: {resolution}")
                    if part
                )
                or None,
                tool=TOOL,
                source="misconfig",
                aliases=[legacy] if legacy and legacy != check_id else [],
                fingerprint=fingerprint("misconfiguration", check_id, dockerfile),
            )


def os_vulnerability_findings(report: dict[str, Any], ref: str) -> Iterator[Finding]:
    for result in _results(report, "os-pkgs"):
        for vuln in json_dicts(result.get("Vulnerabilities")):
            vuln_id = str(vuln.get("VulnerabilityID", ""))
            package = str(vuln.get("PkgName", ""))
            installed = str(vuln.get("InstalledVersion", ""))
            fixed = [v.strip() for v in str(vuln.get("FixedVersion") or "").split(",") if v.strip()]
            title = str(vuln.get("Title") or vuln_id)
            fix = f"fixed in {', '.join(fixed)}" if fixed else "no fixed version"
            yield Finding(
                id=vuln_id,
                severity=_severity(vuln.get("Severity")),
                message=f"{package} {installed} has {vuln_id}: {clip(title, 200)}; {fix}",
                rule="vulnerable-os-package",
                title=title,
                detail=str(vuln.get("Description") or "").strip() or None,
                tool=TOOL,
                source="image-os",
                aliases=[str(a) for a in vuln.get("VendorIDs") or [] if a != vuln_id],
                package=package,
                version=installed,
                fixed_versions=fixed,
                image=ref,
                fingerprint=fingerprint("vulnerable-os-package", vuln_id, package, installed, ref),
            )


def _severity(value: object) -> Severity:
    return _SEVERITIES.get(str(value or "UNKNOWN").upper(), "unknown")


def _line(value: object) -> int | None:
    return value if isinstance(value, int) and value >= 1 else None
