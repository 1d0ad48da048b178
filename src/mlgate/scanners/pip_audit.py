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
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from packaging.utils import canonicalize_name

from mlgate.evidence import Finding
from mlgate.scanners.errors import ScanError
from mlgate.scanners.interface import Scanner, ScanResult, ScanTargets, Source
from mlgate.scanners.osv import OsvDatabase
from mlgate.scanners.osv_findings import (
    advisory_finding,
    advisory_from_pip_audit,
    unaudited_finding,
)
from mlgate.scanners.osv_server import serve
from mlgate.scanners.pip_requirements import Requirements, read_requirements
from mlgate.scanners.python_environment import Environment, read_environment
from mlgate.scanners.tool_output import absolute, shown
from mlgate.scanners.tool_run import run_tool

TOOL = "pip-audit"
SOURCE: Source = "dependencies"


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
        files = [absolute(path, targets.workdir) for path in targets.requirements]
        parsed = {path: read_requirements(path) for path in files}
        # Read before pip-audit runs: a wrong path fails here, with its name.
        environments = [
            read_environment(absolute(path, targets.workdir)) for path in targets.environments
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
                        "path": shown(path, targets.workdir),
                        "resolution": "pinned" if requirements.pinned else "pip",
                        "includes": [shown(f, targets.workdir) for f in requirements.files[1:]],
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
                        "path": shown(environment.path, targets.workdir),
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
    requirements: Requirements,
    service_options: list[str],
    targets: ScanTargets,
) -> dict[str, Any]:
    pinned = requirements.pinned
    arguments = ["--format", "json", "--progress-spinner", "off"]
    for file in requirements.files if pinned else (path,):
        arguments += ["-r", str(file)]
    if pinned:
        arguments += ["--no-deps", "--disable-pip"]
    where = f"{TOOL}: {shown(path, targets.workdir)}"
    hint = (
        ""
        if pinned or not service_options
        else "unpinned requirements need pip and the network to resolve"
    )
    return _report(_run([*command, *arguments, *service_options], targets, where), where, hint)


def _run_environment_audit(
    command: list[str],
    environment: Environment,
    service_options: list[str],
    targets: ScanTargets,
) -> dict[str, Any]:
    arguments = ["--format", "json", "--progress-spinner", "off", "--path", str(environment.path)]
    where = f"{TOOL}: environment {shown(environment.path, targets.workdir)}"
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
    return run_tool(command, targets, where, env=env)


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
    path: Path, requirements: Requirements, workdir: Path
) -> Callable[[str, str], _Where]:
    def where(name: str, version: str) -> _Where:
        declared = requirements.declared.get(canonicalize_name(name))
        if declared is None:
            return _Where(shown(path, workdir))
        return _Where(shown(declared.path, workdir), declared.line)

    return where


def _installed_in(environment: Environment, workdir: Path) -> Callable[[str, str], _Where]:
    def where(name: str, version: str) -> _Where:
        found = environment.find(name, version)
        installed = shown(found.metadata, workdir) if found else None
        return _Where(shown(environment.path, workdir), installed=installed)

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
    return unaudited_finding(
        name,
        reason,
        tool=TOOL,
        source=SOURCE,
        path=at.path,
        line=at.line,
        detail=f"Installed: {at.installed}" if at.installed else None,
    )


def _unlisted(report: dict[str, Any], environment: Environment, workdir: Path) -> Iterator[Finding]:
    """Distributions whose metadata is in the environment but that pip did not list (pip skips
    invalid metadata with a warning): unaudited, never silently passed."""
    listed = {
        canonicalize_name(str(d.get("name", "")))
        for d in report["dependencies"]
        if isinstance(d, dict)
    }
    for found in environment.installed:
        if canonicalize_name(found.name) not in listed:
            at = _Where(shown(environment.path, workdir), installed=shown(found.metadata, workdir))
            yield _unaudited(found.name, "pip did not list it as installed", at)
