"""pip-audit: known vulnerabilities in the PyPI packages a requirements file names, or that an
installed environment (the model's serving environment) holds.

pip-audit normally resolves `-r FILE` by pip-installing it into a temporary virtualenv, which
needs the network. When every requirement is pinned with `==`, it is already resolved, so we run
`--no-deps --disable-pip` and audit the pins as written. An environment is audited with
`--path DIR`, which lists what is installed there with `pip list --path DIR`: local metadata only,
no download. With offline OSV data (`targets.osv_db`) pip-audit queries a local OSV endpoint on
127.0.0.1 instead of osv.dev, and nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import email.parser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlgate.evidence import Finding
from mlgate.process import CannotStart, start_group, stop_group
from mlgate.scanners.interface import ScanError, Scanner, ScanResult, ScanTargets, Source
from mlgate.scanners.interface import fingerprint as make_fingerprint
from mlgate.scanners.osv import (
    OsvDatabase,
    advisory_finding,
    advisory_from_pip_audit,
    serve,
)

TOOL = "pip-audit"
SOURCE: Source = "dependencies"
# Options that take a value as the next word when written without "=".
_INCLUDE_OPTIONS = ("-r", "--requirement")
_CONSTRAINT_OPTIONS = ("-c", "--constraint")
_EDITABLE_OPTIONS = ("-e", "--editable")
# Per-requirement options (--hash=..., --config-settings ...) start after the requirement.
_TRAILING_OPTIONS = re.compile(r"\s+--?[A-Za-z]")
_COMMENT = re.compile(r"(^|\s+)#.*$")


@dataclass(frozen=True)
class _Declared:
    """Where a requirements file declares a package, for the finding's path and line."""

    path: Path
    line: int


@dataclass(frozen=True)
class _Requirements:
    pinned: bool  # every requirement is `name==version`: auditable without resolving
    declared: dict[str, _Declared]  # canonical name -> first declaration
    # The file and the files it includes with -r. pip follows includes when it resolves;
    # pip-audit's --no-deps reads only the files it is given, so it gets them all.
    files: tuple[Path, ...]


@dataclass(frozen=True)
class _Installed:
    """One distribution in an environment, as its metadata names it."""

    name: str  # as METADATA writes it, else as its directory's name does
    version: str
    metadata: Path  # METADATA or PKG-INFO: where a user finds the installation


@dataclass(frozen=True)
class _Environment:
    path: Path
    installed: tuple[_Installed, ...]

    def find(self, name: str, version: str) -> _Installed | None:
        """The distribution pip-audit reported as `name` `version`; the first of that name when
        the directory holds it twice (a broken upgrade leaves an old dist-info behind)."""
        same = [d for d in self.installed if canonicalize_name(d.name) == canonicalize_name(name)]
        exact = [d for d in same if _normalized(d.version) == _normalized(version)]
        matches = exact or same
        return matches[0] if matches else None


@dataclass(frozen=True)
class _Where:
    """Where a reported package is, for its findings."""

    path: str
    line: int | None = None
    installed: str | None = None  # the metadata file of an installed distribution


class PipAuditScanner(Scanner):
    name: ClassVar[str] = TOOL
    sources: ClassVar[tuple[Source, ...]] = (SOURCE,)

    def __init__(self, python: str | Path | None = None) -> None:
        """`python`: the interpreter to run `-m pip_audit` with; by default this one when it
        has pip-audit, else the `pip-audit` on PATH."""
        self._python = python

    def applies(self, targets: ScanTargets) -> bool:
        return bool(targets.requirements or targets.environments)

    def scan(self, targets: ScanTargets) -> ScanResult:
        files = [_absolute(path, targets.workdir) for path in targets.requirements]
        parsed = {path: _read_requirements(path) for path in files}
        # Read before pip-audit runs: a wrong path fails here, with its name.
        environments = [
            _read_environment(_absolute(path, targets.workdir)) for path in targets.environments
        ]
        command = self._command()
        result = ScanResult(tool_versions={TOOL: _tool_version(command, targets)})
        audited: list[dict[str, object]] = []
        audited_environments: list[dict[str, object]] = []
        db = targets.osv_db
        with contextlib.ExitStack() as stack:
            # Offline, pip-audit's HTTP cache goes to a throwaway directory: there is nothing
            # to reuse from a local endpoint, and the user's cache stays untouched.
            cache = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlgate-pa-")))
            endpoint = stack.enter_context(serve(db)) if db is not None else None
            for path in files:
                requirements = parsed[path]
                options = _service_options(endpoint, cache)
                report = _run_audit(command, path, requirements, options, targets)
                where = _declared_in(path, requirements, targets.workdir)
                result.findings.extend(_findings(report, where, db))
                audited.append(
                    {
                        "path": _shown(path, targets.workdir),
                        "resolution": "pinned" if requirements.pinned else "pip",
                        "includes": [_shown(f, targets.workdir) for f in requirements.files[1:]],
                    }
                )
            for environment in environments:
                options = _service_options(endpoint, cache)
                report = _run_environment_audit(command, environment, options, targets)
                where = _installed_in(environment, targets.workdir)
                result.findings.extend(_findings(report, where, db))
                result.findings.extend(_unlisted(report, environment, targets.workdir))
                audited_environments.append(
                    {
                        "path": _shown(environment.path, targets.workdir),
                        "distributions": len(report["dependencies"]),
                    }
                )
        result.data["requirements"] = audited
        result.data["environments"] = audited_environments
        if db is not None:
            result.data["osv_db"] = {
                "path": str(db.path),
                "digest": db.digest,
                "records": db.records,
            }
        return result

    def _command(self) -> list[str]:
        if self._python is not None:
            return [str(self._python), "-m", "pip_audit"]
        if importlib.util.find_spec("pip_audit") is not None:
            return [sys.executable, "-m", "pip_audit"]
        beside = Path(sys.executable).with_name("pip-audit")
        found = str(beside) if beside.is_file() else shutil.which("pip-audit")
        if found is None:
            raise ScanError(
                f"{TOOL}: not installed (not importable by {sys.executable} and not on PATH)"
            )
        return [found]


def _service_options(endpoint: str | None, cache: Path) -> list[str]:
    if endpoint is None:
        return []  # pip-audit's default service, online
    return ["-s", "osv", "--osv-url", f"{endpoint}/v1/query", "--cache-dir", str(cache)]


def _run_audit(
    command: list[str],
    path: Path,
    requirements: _Requirements,
    service_options: list[str],
    targets: ScanTargets,
) -> dict[str, Any]:
    pinned = requirements.pinned
    arguments = ["--format", "json", "--progress-spinner", "off"]
    for file in requirements.files if pinned else (path,):
        arguments += ["-r", str(file)]
    if pinned:
        arguments += ["--no-deps", "--disable-pip"]
    where = f"{TOOL}: {_shown(path, targets.workdir)}"
    hint = (
        ""
        if pinned or not service_options
        else "unpinned requirements need pip and the network to resolve"
    )
    return _report(_run([*command, *arguments, *service_options], targets, where), where, hint)


def _run_environment_audit(
    command: list[str],
    environment: _Environment,
    service_options: list[str],
    targets: ScanTargets,
) -> dict[str, Any]:
    arguments = ["--format", "json", "--progress-spinner", "off", "--path", str(environment.path)]
    where = f"{TOOL}: environment {_shown(environment.path, targets.workdir)}"
    return _report(_run([*command, *arguments, *service_options], targets, where), where, "")


def _report(ran: tuple[int | None, bytes, bytes], where: str, hint: str) -> dict[str, Any]:
    exit_code, stdout, stderr = ran
    # pip-audit exits 1 both when it found vulnerabilities and when it failed: the JSON report
    # on stdout is what tells them apart.
    report = _json_object(stdout)
    if exit_code in (0, 1) and report is not None and isinstance(report.get("dependencies"), list):
        return report
    problem = _last_meaningful_line(stderr) or (
        f"exit code {exit_code}" if exit_code not in (0, 1) else "no JSON report on stdout"
    )
    raise ScanError(f"{where}: {problem}" + (f" ({hint})" if hint else ""))


def _tool_version(command: list[str], targets: ScanTargets) -> str:
    """Also the check that pip-audit runs at all, before any requirements file is read."""
    exit_code, stdout, stderr = _run([*command, "--version"], targets, TOOL)
    text = stdout.decode(errors="replace").strip()
    if exit_code != 0 or not text.startswith("pip-audit "):
        reason = _last_meaningful_line(stderr) or text or f"exit code {exit_code}"
        raise ScanError(f"{TOOL}: cannot run {' '.join(command)}: {reason}")
    return text.removeprefix("pip-audit ").strip()


def _run(
    command: Sequence[str], targets: ScanTargets, where: str
) -> tuple[int | None, bytes, bytes]:
    """Run to completion within the targets' timeout; `where` starts any error message."""
    env = dict(os.environ)
    # The local endpoint is on 127.0.0.1: a configured proxy must not get those requests.
    local = "127.0.0.1,localhost"
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = f"{env[name]},{local}" if env.get(name) else local
    # `pip list` (how pip-audit lists an environment) asked PyPI for pip's latest version in
    # older pip releases: nothing may leave the machine for that.
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    try:
        child = start_group(
            command, targets.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except CannotStart as exc:
        raise ScanError(f"{where}: {exc}") from None
    try:
        stdout, stderr = child.communicate(timeout=targets.timeout)
    except subprocess.TimeoutExpired:
        stop_group(child)  # pip-audit may have started pip: the whole group goes
        child.communicate()
        raise ScanError(f"{where}: timed out after {targets.timeout:g} s") from None
    except BaseException:  # Ctrl-C: no pip-audit left behind
        stop_group(child)
        raise
    return child.returncode, stdout, stderr


def _json_object(stdout: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(stdout)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _last_meaningful_line(stderr: bytes) -> str:
    """pip-audit's own error line if it logged one, else the last line that says something (a
    traceback's exception line); warnings and caret markers are noise."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    errors = [line for line in lines if line.startswith(("ERROR:", "CRITICAL:"))]
    if errors:
        # "ERROR:pip_audit._cli:requirement ..." -> "requirement ..."
        return errors[-1].split(":", 2)[-1].strip()
    telling = [
        line
        for line in lines
        if re.search(r"[A-Za-z]{2}", line) and not line.startswith(("WARNING:", "INFO:", "DEBUG:"))
    ]
    return telling[-1] if telling else ""


def _declared_in(
    path: Path, requirements: _Requirements, workdir: Path
) -> Callable[[str, str], _Where]:
    def where(name: str, version: str) -> _Where:
        declared = requirements.declared.get(canonicalize_name(name))
        if declared is None:
            return _Where(_shown(path, workdir))
        return _Where(_shown(declared.path, workdir), declared.line)

    return where


def _installed_in(environment: _Environment, workdir: Path) -> Callable[[str, str], _Where]:
    def where(name: str, version: str) -> _Where:
        found = environment.find(name, version)
        installed = _shown(found.metadata, workdir) if found else None
        return _Where(_shown(environment.path, workdir), installed=installed)

    return where


def _findings(
    report: dict[str, Any], where: Callable[[str, str], _Where], db: OsvDatabase | None
) -> Iterator[Finding]:
    for dependency in report["dependencies"]:
        if not isinstance(dependency, dict):
            continue
        name = str(dependency.get("name", ""))
        version = str(dependency.get("version", ""))
        at = where(name, version)
        if "skip_reason" in dependency:
            # A package pip-audit could not audit is a gap in the evidence, never a pass.
            reason = str(dependency.get("skip_reason") or "no reason given")
            yield _unaudited(name, reason, at)
            continue
        known = {a.id: a for a in db.vulnerabilities(name, version)} if db is not None else {}
        for vuln in dependency.get("vulns") or ():
            if not isinstance(vuln, dict):
                continue
            advisory = known.get(str(vuln.get("id"))) or advisory_from_pip_audit(vuln)
            finding = advisory_finding(
                advisory, name, version, tool=TOOL, source=SOURCE, path=at.path, line=at.line
            )
            if at.installed is not None:
                detail = "\n\n".join(filter(None, [f"Installed: {at.installed}", finding.detail]))
                finding = finding.model_copy(update={"detail": detail})
            yield finding


def _unaudited(name: str, reason: str, at: _Where) -> Finding:
    return Finding(
        id=f"unaudited:{name}",
        severity="unknown",
        message=f"{name} was not audited for vulnerabilities: {reason}",
        rule="unaudited-dependency",
        path=at.path,
        line=at.line,
        detail=f"Installed: {at.installed}" if at.installed else None,
        tool=TOOL,
        source=SOURCE,
        package=name,
        fingerprint=make_fingerprint("unaudited-dependency", canonicalize_name(name)),
    )


def _unlisted(
    report: dict[str, Any], environment: _Environment, workdir: Path
) -> Iterator[Finding]:
    """Distributions whose metadata is in the environment but that pip did not list (pip skips
    invalid metadata with a warning): unaudited, never silently passed."""
    listed = {
        canonicalize_name(str(d.get("name", "")))
        for d in report["dependencies"]
        if isinstance(d, dict)
    }
    for found in environment.installed:
        if canonicalize_name(found.name) not in listed:
            at = _Where(
                _shown(environment.path, workdir), installed=_shown(found.metadata, workdir)
            )
            yield _unaudited(found.name, "pip did not list it as installed", at)


# --- installed environments -----------------------------------------------------------------


def _read_environment(path: Path) -> _Environment:
    """The distributions installed in `path` by their *.dist-info / *.egg-info metadata. None at
    all is a ScanError: an empty environment is almost certainly a wrong path, not a clean one."""
    if not path.exists():
        raise ScanError(f"{TOOL}: environment not found: {path}")
    if not path.is_dir():
        raise ScanError(f"{TOOL}: environment is not a directory: {path}")
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        raise ScanError(f"{TOOL}: cannot read environment {path}: {exc.strerror}") from None
    installed = []
    for entry in entries:
        metadata = _metadata_file(entry)
        if metadata is not None:
            name, version = _name_and_version(metadata)
            # Without a Name, pip takes it from the directory name ({name}-{version}.dist-info).
            name = name or entry.name.split("-", 1)[0]
            installed.append(_Installed(name, version, metadata))
    if not installed:
        raise ScanError(
            f"{TOOL}: no installed distributions (*.dist-info, *.egg-info) in environment {path}"
        )
    return _Environment(path, tuple(installed))


def _metadata_file(entry: Path) -> Path | None:
    if entry.suffix == ".dist-info" and entry.is_dir():
        return entry / "METADATA"
    if entry.suffix == ".egg-info":
        # setuptools writes a directory with PKG-INFO; distutils wrote the file itself.
        return entry / "PKG-INFO" if entry.is_dir() else entry
    return None


def _name_and_version(metadata: Path) -> tuple[str, str]:
    """Name and Version from the metadata headers; empty when unreadable (pip then skips the
    distribution, and it becomes an unaudited finding)."""
    try:
        text = metadata.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "", ""
    headers = email.parser.HeaderParser().parsestr(text)
    return str(headers.get("Name") or "").strip(), str(headers.get("Version") or "").strip()


def _normalized(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version


# --- requirements files ---------------------------------------------------------------------


def _read_requirements(path: Path) -> _Requirements:
    """Whether `path` (and the files it includes) pins every requirement with `==`, and where
    each package is declared. A line that is not a requirement pip would accept is a ScanError
    here, with its line number, instead of a pip-audit failure later."""
    declared: dict[str, _Declared] = {}
    files: list[Path] = []
    pinned = _scan_file(path, declared, files)
    return _Requirements(pinned=pinned, declared=declared, files=tuple(files))


def _scan_file(path: Path, declared: dict[str, _Declared], files: list[Path]) -> bool:
    if any(path.resolve() == seen.resolve() for seen in files):
        return True  # included twice, or an include cycle: read once
    files.append(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ScanError(f"{TOOL}: requirements file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScanError(f"{TOOL}: cannot read requirements file {path}: {problem}") from None
    pinned = True
    for number, line in _logical_lines(text):
        option, value = _option(line)
        if option in _INCLUDE_OPTIONS:
            pinned &= _scan_file(path.parent / value, declared, files)
        elif option in _EDITABLE_OPTIONS:
            pinned = False  # an editable project has no version to audit without building it
        elif option is not None:
            continue  # index, constraint and other pip options do not add requirements
        else:
            requirement = _requirement(path, number, line)
            if requirement is None:
                pinned = False  # a local path or URL: pip has to build it to know its version
                continue
            if not _applies_here(requirement):
                continue  # pip-audit skips it as well
            declared.setdefault(canonicalize_name(requirement.name), _Declared(path, number))
            pinned &= _is_pinned(requirement)
    return pinned


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first physical line number, line) with comments removed and continuations joined."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = _COMMENT.sub("", raw)
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        joined = "".join([*pending, line]).strip()
        pending = []
        if joined:
            yield start, joined
    if pending and "".join(pending).strip():
        yield start, "".join(pending).strip()


def _option(line: str) -> tuple[str | None, str]:
    """("-r", "base.txt") for "-r base.txt", "-rbase.txt" or "--requirement=base.txt"."""
    match = re.match(r"(--[A-Za-z][A-Za-z-]*|-[A-Za-z])\s*=?\s*(.*)", line)
    if match is None:
        return None, ""
    return match.group(1), match.group(2).strip()


def _requirement(path: Path, number: int, line: str) -> Requirement | None:
    text = _TRAILING_OPTIONS.split(line, maxsplit=1)[0].strip()
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        if re.search(r"[/\\]|://|^\.|\.(whl|zip|tar\.gz|tgz)$", text):
            return None
        problem = str(exc).splitlines()[0] if str(exc) else "invalid requirement"
        raise ScanError(
            f"{TOOL}: {path}:{number}: not a valid requirement {text!r}: {problem}"
        ) from None


def _applies_here(requirement: Requirement) -> bool:
    if requirement.marker is None:
        return True
    try:
        return requirement.marker.evaluate()
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return True  # let pip-audit judge a marker we cannot


def _is_pinned(requirement: Requirement) -> bool:
    """`name==1.2.3` exactly (no wildcard, no second specifier), the form pip-audit's --no-deps
    audits."""
    if requirement.url is not None:
        # `name @ url` names one artifact: nothing to resolve, yet no version to audit either;
        # pip-audit reports it as skipped, which becomes an unaudited-dependency finding.
        return True
    specifiers = list(requirement.specifier)
    return (
        len(specifiers) == 1
        and specifiers[0].operator == "=="
        and not specifiers[0].version.endswith("*")
    )


def _absolute(path: Path, workdir: Path) -> Path:
    return path if path.is_absolute() else workdir / path


def _shown(path: Path, workdir: Path) -> str:
    """Relative to the working directory when it is inside it, as a reviewer reads it."""
    try:
        return path.resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError:
        return str(path)
