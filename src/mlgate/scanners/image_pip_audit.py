"""pip-audit's online service over the image's Python distributions (`name==version` pins), used
when no offline OSV database is configured."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from mlgate.evidence import Finding
from mlgate.scanners.errors import ScanError
from mlgate.scanners.image_layers import Distribution
from mlgate.scanners.interface import (
    ScanTargets,
)
from mlgate.scanners.python_environment import normalized_version
from mlgate.scanners.tool_output import (
    clip,
    json_dicts,
    last_line,
)
from mlgate.scanners.tool_run import importable, run_tool, tool_path

TOOL = "image"  # the scanner these findings are reported by


class ImagePipAudit:
    """pip-audit's online service over `name==version` pins: nothing to resolve, no pip."""

    def __init__(self, targets: ScanTargets) -> None:
        self.targets = targets
        if importable("pip_audit"):
            self.command = [sys.executable, "-m", "pip_audit"]
        else:
            found = tool_path("pip-audit")
            if found is None:
                raise ScanError(
                    "pip-audit is not installed; needed to audit the image's Python packages "
                    "online (or configure an offline OSV database)"
                )
            self.command = [str(found)]
        exit_code, stdout, stderr = run_tool([*self.command, "--version"], targets, "pip-audit")
        text = stdout.decode(errors="replace").strip()
        if exit_code != 0 or not text.startswith("pip-audit "):
            raise ScanError(
                f"pip-audit cannot run: {clip(last_line(stderr.decode(errors='replace')) or text)}"
            )
        self.version = text.removeprefix("pip-audit ")

    def findings(self, distributions: list[Distribution], ref: str, work: Path) -> list[Finding]:
        from mlgate.scanners.osv_findings import advisory_finding, advisory_from_pip_audit

        auditable, findings = [], []
        for distribution in distributions:
            problem = _unpinnable(distribution)
            if problem is None:
                auditable.append(distribution)
            else:
                findings.append(_unaudited(distribution, problem, ref))
        by_key = {(canonicalize_name(d.name), normalized_version(d.version)): d for d in auditable}
        for group, pins in enumerate(_without_duplicate_names(auditable)):
            for dependency in self._audit(pins, work / f"pins-{group}.txt"):
                name, version = str(dependency.get("name")), str(dependency.get("version"))
                distribution = by_key.get(
                    (canonicalize_name(name), normalized_version(version))
                ) or Distribution(name, version, "")
                if "skip_reason" in dependency:
                    reason = str(dependency.get("skip_reason") or "no reason given")
                    findings.append(_unaudited(distribution, reason, ref))
                    continue
                for vuln in json_dicts(dependency.get("vulns")):
                    findings.append(
                        advisory_finding(
                            advisory_from_pip_audit(vuln),
                            distribution.name,
                            distribution.version,
                            tool=TOOL,
                            source="image-python",
                            image=ref,
                            path=distribution.path or None,
                        )
                    )
        return findings

    def _audit(self, pins: list[Distribution], requirements: Path) -> list[dict[str, Any]]:
        if not pins:
            return []
        requirements.write_text("".join(f"{d.name}=={d.version}\n" for d in pins), "utf-8")
        report_path = requirements.with_suffix(".json")
        arguments = ["-r", str(requirements), "--no-deps", "--disable-pip", "--format", "json"]
        arguments += ["--progress-spinner", "off", "--output", str(report_path)]
        exit_code, _, output = run_tool([*self.command, *arguments], self.targets, "pip-audit")
        stderr = output.decode(errors="replace")
        # pip-audit exits 1 both when it found vulnerabilities and when it failed.
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
            dependencies = report["dependencies"]
        except (OSError, ValueError, KeyError, TypeError):
            logged = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
            # "ERROR:pip_audit._cli:<problem>", else a traceback's last line.
            problem = (
                logged[-1].split(":", 2)[-1] if logged else last_line(stderr)
            ) or f"exit code {exit_code}"
            raise ScanError(
                f"pip-audit of the image's Python packages failed: {clip(problem)}"
            ) from None
        return json_dicts(dependencies)


def _unpinnable(distribution: Distribution) -> str | None:
    try:
        canonicalize_name(distribution.name, validate=True)
        Version(distribution.version)
    except InvalidName:
        return f"{distribution.name!r} is not a valid distribution name"
    except InvalidVersion:
        return f"version {distribution.version!r} is not a PEP 440 version"
    return None


def _unaudited(distribution: Distribution, reason: str, ref: str) -> Finding:
    from mlgate.scanners.osv_findings import unaudited_finding

    return unaudited_finding(
        distribution.name,
        reason,
        tool=TOOL,
        source="image-python",
        version=distribution.version,
        image=ref,
        path=distribution.path or None,
    )


def _without_duplicate_names(distributions: Iterable[Distribution]) -> list[list[Distribution]]:
    """pip-audit refuses two pins of one name in a run; two versions of one package (in two
    site-packages) go to separate runs."""
    groups: list[list[Distribution]] = []
    names: list[set[str]] = []
    for distribution in distributions:
        name = canonicalize_name(distribution.name)
        index = next((i for i, seen in enumerate(names) if name not in seen), len(groups))
        if index == len(groups):
            groups.append([])
            names.append(set())
        groups[index].append(distribution)
        names[index].add(name)
    return groups
