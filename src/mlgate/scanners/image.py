"""The container image: its Python distributions against advisories, its OS packages against
trivy's vulnerability database, secrets in its files and configuration, and misconfigurations of
the Dockerfile it is built from.

The image is a name or id on the Docker engine at DOCKER_HOST, or built from `targets.dockerfile`
(context: the Dockerfile's directory). It is saved to a docker-archive tarball in a temporary
directory under `targets.scratch`, which every tool reads, and which is removed afterwards; only
the CycloneDX SBOM stays, as an artifact.

Python distributions are read from the archive's layers here, honouring whiteouts, so a package
deleted by a later layer is not reported. Debian-packaged ones (under /usr/lib/python3) are
audited too: their PyPI advisories may already be patched by Debian, but reporting them fails
closed. trivy is required: it lists the OS packages, finds secrets and misconfigurations, and
writes the SBOM.

Findings name the image by what it was given as: its name or id, or, when built, the Dockerfile
path relative to the working directory, so fingerprints and waivers survive a rebuild. The image
id is in `ScanResult.data["image"]`.

The docker SDK is imported only when an image is scanned: `pip install 'mlgate[container]'`.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from packaging.utils import canonicalize_name

from mlgate.evidence import Finding
from mlgate.scanners.errors import ScanError
from mlgate.scanners.image_engine import SavedImage, save_image
from mlgate.scanners.image_layers import Distribution, python_distributions
from mlgate.scanners.image_pip_audit import ImagePipAudit
from mlgate.scanners.image_trivy import (
    TRIVY_OFFLINE,
    Trivy,
    misconfig_findings,
    os_packages,
    os_vulnerability_findings,
    secret_findings,
)
from mlgate.scanners.interface import (
    Scanner,
    ScanResult,
    ScanTargets,
    Source,
)
from mlgate.scanners.tool_output import (
    absolute,
    json_dict,
    shown,
)
from mlgate.scanners.tool_run import tool_path

TOOL = "image"
SBOM_NAME = "image-sbom.cdx.json"


class ImageScanner(Scanner):
    name: ClassVar[str] = TOOL
    sources: ClassVar[tuple[Source, ...]] = ("image-os", "image-python", "secrets", "misconfig")

    def applies(self, targets: ScanTargets) -> bool:
        return targets.image is not None or targets.dockerfile is not None

    def scan(self, targets: ScanTargets) -> ScanResult:
        # The cheap checks first: saving an image takes seconds per hundred megabytes.
        trivy = Trivy(tool_path("trivy"), targets)
        pip_audit = ImagePipAudit(targets) if targets.osv_db is None else None
        scratch = absolute(targets.scratch, targets.workdir)
        dockerfile = absolute(targets.dockerfile, targets.workdir) if targets.dockerfile else None
        if dockerfile is not None and not dockerfile.is_file():
            raise ScanError(f"Dockerfile {dockerfile} does not exist")
        if targets.image is not None:
            ref = targets.image
        elif dockerfile is not None:
            ref = shown(dockerfile, targets.workdir)
        else:
            raise ScanError("neither an image nor a Dockerfile to scan")
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="image-", dir=scratch) as temporary:
            work = Path(temporary)
            archive = work / "image.tar"
            image = save_image(targets, dockerfile, archive)
            scan = _Scan(targets, trivy, pip_audit, ref, image, archive, work)
            return scan.run(dockerfile, scratch / SBOM_NAME)


class _Scan:
    """One scan of a saved image; each step adds to `result`."""

    def __init__(
        self,
        targets: ScanTargets,
        trivy: Trivy,
        pip_audit: ImagePipAudit | None,
        ref: str,
        image: SavedImage,
        archive: Path,
        work: Path,
    ) -> None:
        self.targets = targets
        self.trivy = trivy
        self.pip_audit = pip_audit
        self.ref = ref
        self.image = image
        self.archive = archive
        self.work = work
        self.result = ScanResult(tool_versions={"docker-engine": image.engine_version})

    def run(self, dockerfile: Path | None, sbom: Path) -> ScanResult:
        distributions = python_distributions(self.archive)
        report_path = self.work / "trivy-secrets.json"
        report = self.trivy.run(
            "secret scan of the image",
            ["image", "--input", str(self.archive), "--scanners", "secret"],
            # Secrets in ENV and build arguments live in the image's configuration, not a file.
            ["--image-config-scanners", "secret", "--list-all-pkgs", *TRIVY_OFFLINE],
            report_path,
        )
        self.result.tool_versions["trivy"] = str(json_dict(report.get("Trivy")).get("Version", ""))
        self.result.findings.extend(secret_findings(report, self.archive, self.ref))
        self._sbom(report_path, sbom)
        if dockerfile is not None:
            self.result.findings.extend(self._misconfigurations(dockerfile))
        if self.targets.image_os_vulnerabilities:
            self.result.findings.extend(self._os_vulnerabilities())
        self.result.findings.extend(self._python_vulnerabilities(distributions))
        metadata = json_dict(report.get("Metadata"))
        os_name = json_dict(metadata.get("OS"))
        self.result.data["image"] = {
            "ref": self.ref,
            "id": self.image.id,
            "repo_digests": self.image.repo_digests,
            "os": " ".join(str(os_name[k]) for k in ("Family", "Name") if k in os_name) or None,
            "python_packages": len(distributions),
            "os_packages": len(os_packages(report)),
        }
        return self.result

    def _sbom(self, report: Path, sbom: Path) -> None:
        """Converted from the secret scan's report (it lists every package), not a second
        analysis of the image."""
        self.trivy.run("SBOM", ["convert", "--format", "cyclonedx", str(report)], [], sbom)
        document = json.loads(sbom.read_text(encoding="utf-8"))
        # trivy names the image after the archive file, a temporary name that means nothing.
        component = json_dict(json_dict(document.get("metadata")).get("component"))
        if component:
            component["name"] = self.ref
            sbom.write_text(json.dumps(document, indent=2), encoding="utf-8")
        self.result.artifacts[sbom] = f"CycloneDX SBOM of image {self.ref} ({self.image.id})"

    def _misconfigurations(self, dockerfile: Path) -> Iterator[Finding]:
        # Only this file, as a Dockerfile whatever its name: not every config file beside it.
        pattern = f"dockerfile:^{re.escape(dockerfile.name)}$"
        report = self.trivy.run(
            "misconfiguration scan of the Dockerfile",
            ["config", "--misconfig-scanners", "dockerfile", "--file-patterns", pattern],
            ["--skip-check-update", str(dockerfile)],
            self.work / "trivy-misconfig.json",
        )
        yield from misconfig_findings(report, shown(dockerfile, self.targets.workdir))

    def _os_vulnerabilities(self) -> Iterator[Finding]:
        report = self.trivy.run(
            "vulnerability scan of the OS packages",
            ["image", "--input", str(self.archive), "--scanners", "vuln", "--pkg-types", "os"],
            # Its database is downloaded (or updated) into the user's cache; nothing else is.
            ["--skip-java-db-update", "--skip-check-update", "--offline-scan"],
            self.work / "trivy-vulnerabilities.json",
            database=True,
        )
        yield from os_vulnerability_findings(report, self.ref)

    def _python_vulnerabilities(self, distributions: list[Distribution]) -> list[Finding]:
        # One finding per package version, at the first place it is installed.
        unique: dict[tuple[str, str], Distribution] = {}
        for distribution in distributions:
            unique.setdefault(
                (canonicalize_name(distribution.name), distribution.version), distribution
            )
        db = self.targets.osv_db
        if db is None:
            assert self.pip_audit is not None
            self.result.tool_versions["pip-audit"] = self.pip_audit.version
            return self.pip_audit.findings(list(unique.values()), self.ref, self.work)
        from mlgate.scanners.osv_findings import advisory_finding

        return [
            advisory_finding(
                advisory,
                distribution.name,
                distribution.version,
                tool=TOOL,
                source="image-python",
                image=self.ref,
                path=distribution.path,
            )
            for distribution in unique.values()
            for advisory in db.vulnerabilities(distribution.name, distribution.version)
        ]
