"""What a scanner is: one adapter per tool, each turning the tool's output into Findings.

A new scanner is one module implementing `Scanner` plus one line in `mlgate.scanners.SCANNERS`;
the scan stage runs every scanner whose target is configured, and the policy judges all their
findings alike.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from mlgate.evidence import Finding, Severity

if TYPE_CHECKING:
    from mlgate.scanners.osv import OsvDatabase

# Where a finding was found; the policy sets a severity threshold per source.
Source = Literal[
    "code", "dependencies", "image-os", "image-python", "secrets", "misconfig", "model"
]
SOURCES: tuple[Source, ...] = (
    "code",
    "dependencies",
    "image-os",
    "image-python",
    "secrets",
    "misconfig",
    "model",
)
SEVERITY_ORDER: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info", "unknown")


@dataclass(frozen=True)
class ScanTargets:
    """What the scan stage was pointed at, resolved to absolute paths."""

    workdir: Path
    sources: tuple[Path, ...] = ()  # source directories or files for code scanners
    requirements: tuple[Path, ...] = ()  # requirements files for dependency scanners
    # Installed environments to audit (the serving environment): site-packages directories.
    environments: tuple[Path, ...] = ()
    image: str | None = None  # an image name or id on the engine
    dockerfile: Path | None = None  # built into an image when no image is given
    models: tuple[Path, ...] = ()  # model files or directories
    # Offline vulnerability data; None means each tool's online service.
    osv_db: OsvDatabase | None = None
    # trivy's own vulnerability database for OS packages of the image (needs its DB).
    image_os_vulnerabilities: bool = True
    timeout: float = 600.0  # seconds each tool may take
    scratch: Path = Path(".mlgate/scan")  # where scanners put SBOMs and intermediate files


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    tool_versions: dict[str, str] = field(default_factory=dict)
    # Files to attach to the evidence (an SBOM), with a description each.
    artifacts: dict[Path, str] = field(default_factory=dict)
    # Anything else worth keeping in the evidence's data, under the scanner's name.
    data: dict[str, object] = field(default_factory=dict)


class Scanner(ABC):
    name: ClassVar[str]  # e.g. "bandit"; also the key in scan config `scanners:`
    sources: ClassVar[tuple[Source, ...]]  # what its findings are about

    @abstractmethod
    def applies(self, targets: ScanTargets) -> bool:
        """Whether the configured targets give this scanner something to scan."""

    @abstractmethod
    def scan(self, targets: ScanTargets) -> ScanResult:
        """Scan and return findings; raise ScanError when the tool is missing or fails."""


def fingerprint(*parts: str | int | None) -> str:
    """A stable identity from what makes a finding the same one across runs (never a line
    number alone: code moves)."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def at_least(severity: Severity, threshold: Severity) -> bool:
    """Whether `severity` is `threshold` or worse (info and unknown rank lowest)."""
    return SEVERITY_ORDER.index(severity) <= SEVERITY_ORDER.index(threshold)
