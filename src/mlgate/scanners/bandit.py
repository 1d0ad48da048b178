"""bandit: security problems in the Python source (unsafe deserialisation, shell injection,
eval, hard-coded secrets, ...).

bandit runs as `python -m bandit` in a child process and reports JSON. A file bandit cannot parse
was not scanned at all, so it becomes a finding of its own instead of passing silently.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from mlgate.evidence import Finding, Severity
from mlgate.scanners.errors import ScanError
from mlgate.scanners.interface import Scanner, ScanResult, ScanTargets, Source
from mlgate.scanners.interface import fingerprint as make_fingerprint
from mlgate.scanners.tool_output import absolute, shown
from mlgate.scanners.tool_run import run_tool

TOOL = "bandit"
SOURCE: Source = "code"
UNPARSEABLE = "unparseable-source"
_SEVERITIES: dict[str, Severity] = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
# A line of bandit's `code` snippet: "12     return pickle.loads(blob)".
_SNIPPET_LINE = re.compile(r"(\d+) ?(.*)")


class BanditScanner(Scanner):
    name: ClassVar[str] = TOOL
    sources: ClassVar[tuple[Source, ...]] = (SOURCE,)

    def __init__(self, python: str | Path | None = None) -> None:
        """`python`: the interpreter to run `-m bandit` with; by default this one."""
        self._python = str(python) if python is not None else sys.executable

    def applies(self, targets: ScanTargets) -> bool:
        return bool(targets.sources)

    def scan(self, targets: ScanTargets) -> ScanResult:
        paths = [absolute(path, targets.workdir) for path in targets.sources]
        missing = [path for path in paths if not path.exists()]
        if missing:
            raise ScanError(f"{TOOL}: source path does not exist: {missing[0]}")
        command = [self._python, "-m", "bandit"]
        result = ScanResult(tool_versions={TOOL: _tool_version(command, targets)})
        report = _run_scan(command, paths, targets)
        result.findings.extend(_issue_findings(report, targets.workdir))
        result.findings.extend(_error_findings(report, targets.workdir))
        totals = report.get("metrics", {}).get("_totals", {})
        if isinstance(totals, dict):
            # nosec counts the suppressions a reviewer may want to look at.
            result.data = {key: totals[key] for key in ("loc", "nosec") if key in totals}
        return result


def _tool_version(command: list[str], targets: ScanTargets) -> str:
    """Also the check that bandit runs at all, so a missing bandit is named as such."""
    exit_code, stdout, stderr = run_tool([*command, "--version"], targets, TOOL)
    # "__main__.py 1.9.4\n  python version = 3.11.7 ..."
    match = re.match(r"\S+ (\d[^\s]*)", stdout.decode(errors="replace"))
    if exit_code != 0 or match is None:
        reason = _last_line(stderr) or f"exit code {exit_code}"
        raise ScanError(f"{TOOL}: cannot run {' '.join(command)}: {reason}")
    return match.group(1)


def _run_scan(command: list[str], paths: list[Path], targets: ScanTargets) -> dict[str, Any]:
    arguments = ["-r", *(str(path) for path in paths), "-f", "json", "-q"]
    exit_code, stdout, stderr = run_tool([*command, *arguments], targets, TOOL)
    # bandit exits 1 when it found issues and also when it failed: the JSON report tells.
    if exit_code not in (0, 1):
        reason = _last_line(stderr) or "no error output"
        raise ScanError(f"{TOOL}: crashed with exit code {exit_code}: {reason}")
    try:
        report = json.loads(stdout)
    except (json.JSONDecodeError, UnicodeDecodeError):
        report = None
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        reason = _last_line(stderr) or f"exit code {exit_code}"
        raise ScanError(f"{TOOL}: no JSON report on stdout: {reason}")
    return report


def _issue_findings(report: dict[str, Any], workdir: Path) -> Iterator[Finding]:
    # Identical flagged lines in one file would share a fingerprint; the occurrence count keeps
    # them apart without bringing in the line number.
    seen: Counter[tuple[str, str, str]] = Counter()
    for issue in report["results"]:
        if not isinstance(issue, dict):
            continue
        test_id = str(issue.get("test_id") or "unknown")
        path = _shown(str(issue.get("filename", "")), workdir)
        number = issue.get("line_number")
        key = (test_id, path, _flagged_code(issue, workdir))
        # The first occurrence keeps the plain identity; a repeat adds its ordinal.
        identity: tuple[str | int, ...] = (*key, seen[key]) if seen[key] else key
        seen[key] += 1
        confidence = str(issue.get("issue_confidence") or "undefined").lower()
        details = [f"confidence: {confidence}"]
        if issue.get("more_info"):
            details.append(f"more info: {issue['more_info']}")
        cwe = issue.get("issue_cwe")
        cwe_id = cwe.get("id") if isinstance(cwe, dict) else None
        yield Finding(
            id=test_id,
            severity=_SEVERITIES.get(str(issue.get("issue_severity")).upper(), "unknown"),
            message=str(issue.get("issue_text") or test_id),
            rule=test_id,
            path=path,
            line=number if isinstance(number, int) and number >= 1 else None,
            title=str(issue.get("test_name") or test_id),
            detail="; ".join(details),
            tool=TOOL,
            source=SOURCE,
            aliases=[f"CWE-{cwe_id}"] if cwe_id else [],
            fingerprint=make_fingerprint(TOOL, *identity),
        )


def _error_findings(report: dict[str, Any], workdir: Path) -> Iterator[Finding]:
    """A file bandit could not read or parse was not scanned: fail closed."""
    for error in report.get("errors") or ():
        if not isinstance(error, dict):
            continue
        path = _shown(str(error.get("filename", "")), workdir)
        reason = " ".join(str(error.get("reason") or "unknown error").split())
        yield Finding(
            id=UNPARSEABLE,
            severity="high",
            message=f"bandit could not scan {path}: {reason}",
            rule=UNPARSEABLE,
            path=path,
            title="Source file not scanned",
            detail="A file the scanner cannot parse may hide anything; fix or exclude it.",
            tool=TOOL,
            source=SOURCE,
            fingerprint=make_fingerprint(TOOL, UNPARSEABLE, path),
        )


def _flagged_code(issue: dict[str, Any], workdir: Path) -> str:
    """The flagged lines themselves, whitespace-normalised (not the context around them):
    what makes a finding the same one when code above it moves."""
    line_range = issue.get("line_range") or [issue.get("line_number")]
    wanted = {n for n in line_range if isinstance(n, int)}
    lines: list[str] = []
    for text in str(issue.get("code") or "").splitlines():
        match = _SNIPPET_LINE.fullmatch(text)
        if match and int(match.group(1)) in wanted:
            lines.append(" ".join(match.group(2).split()))
    if lines:
        return "\n".join(lines)
    # No snippet (bandit run with -n 0, or an unreadable file): the file's own lines.
    try:
        source = absolute(Path(str(issue.get("filename", ""))), workdir).read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    numbered = source.splitlines()
    return "\n".join(
        " ".join(numbered[n - 1].split()) for n in sorted(wanted) if 1 <= n <= len(numbered)
    )


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    return next((line for line in reversed(lines) if line), "")


def _shown(filename: str, workdir: Path) -> str:
    """Relative to the working directory when inside it (posix), else as bandit named it."""
    return shown(absolute(Path(filename), workdir), workdir)
