"""The tests stage: run the test command and/or ingest JUnit XML into evidence."""

from __future__ import annotations

import functools
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlgate import evidence as ev
from mlgate.evidence import Evidence, Finding
from mlgate.stages.finish import finished_evidence
from mlgate.stages.interface import RunContext, Stage
from mlgate.stages.tests_config import TestsConfig, TestsPolicy
from mlgate.verdict import RuleResult

if TYPE_CHECKING:
    from mlgate import junit
    from mlgate.stages.command import StageCommand

# How many of the slowest tests the evidence keeps by name.
_SLOWEST_KEPT = 10
# The command as reasons name it.
_LABEL = "test command"


class TestsStage(Stage[TestsConfig, TestsPolicy]):
    __test__ = False
    name = "tests"
    title = "Tests"

    def run(self, config: TestsConfig, context: RunContext) -> Evidence:
        # Imported here: `gate` and `report` load this module for its policy and summary only.
        from mlgate import junit
        from mlgate.stages.command import StageCommand

        started = ev.now()
        command = StageCommand(config.command or [], Path(config.working_directory), _LABEL)

        def error(reason: str) -> Evidence:
            return _evidence(context, started, "error", reason=reason, command=command)

        problem = command.run(config.timeout)
        if problem:
            return error(problem)
        # No rerun report: nothing was re-run.
        found = command.reports(config.junit, "JUnit report", started, optional=config.reruns)
        if isinstance(found, str):
            return error(found)
        paths, reruns = found
        try:
            report = junit.parse_junit_files(paths, reruns=reruns)
        except junit.JUnitError as exc:
            return error(str(exc))
        totals = report.totals
        if command.exit_code and not (totals["failed"] or totals["errors"]):
            # A runner that crashed (collection error, internal error) may leave a stale or
            # empty report behind; trusting it would turn a crash into a pass.
            return error(command.after("its reports show no failing test"))
        status: ev.Status = "failed" if totals["failed"] or totals["errors"] else "passed"
        return _evidence(
            context,
            started,
            status,
            command=command,
            report=report,
            artifacts=[ev.artifact(p, "JUnit XML report", read=True) for p in paths]
            + [ev.artifact(p, "JUnit XML report of a re-run", read=True) for p in reruns],
        )

    def evaluate(self, policy: TestsPolicy, evidence: Evidence) -> list[RuleResult]:
        m = evidence.metrics
        problem = _inconsistency(evidence)
        if problem:
            # Evidence edited by hand or written by something else: its numbers decide nothing.
            return [
                RuleResult(
                    stage=self.name,
                    rule="tests.evidence",
                    outcome="fail",
                    reason=f"tests: {problem}",
                )
            ]

        def count(key: str) -> int:
            value = m[key]
            assert isinstance(value, int)  # checked by _inconsistency
            return value

        def at_most(rule: str, noun: str, key: str, limit: int | None) -> RuleResult:
            found = count(key)
            ok = limit is None or found <= limit
            allowed = "any allowed" if limit is None else f"{limit} allowed"
            return RuleResult(
                stage=self.name,
                rule=f"tests.{rule}",
                outcome="pass" if ok else "fail",
                reason=f"tests: {found} {noun}, {allowed}",
            )

        tests = count("tests")
        results = [
            RuleResult(
                stage=self.name,
                rule="tests.min_tests",
                outcome="pass" if tests >= policy.min_tests else "fail",
                reason=f"tests: {tests} ran, at least {policy.min_tests} required",
            ),
            at_most("max_failures", "failed", "failed", policy.max_failures),
            at_most("max_errors", "errored", "errors", policy.max_errors),
        ]
        if policy.max_flaky is not None or count("flaky"):
            results.append(at_most("max_flaky", "flaky", "flaky", policy.max_flaky))
        if policy.max_skipped is not None:
            results.append(at_most("max_skipped", "skipped", "skipped", policy.max_skipped))
        return results

    def summary(self, evidence: Evidence) -> str:
        if evidence.status == "error":
            return f"error: {evidence.reason}"
        m = evidence.metrics
        parts = [f"{m.get(k, 0)} {label}" for k, label in _SUMMARY_PARTS if m.get(k)]
        duration = m.get("duration_s")
        took = ""
        if isinstance(duration, float):
            took = f" in {duration:.2f} s" if duration < 100 else f" in {duration:.0f} s"
        return f"{m.get('tests', 0)} tests{took}: " + (", ".join(parts) or "none ran")


_COUNTS = ("tests", "passed", "failed", "errors", "skipped", "flaky")


def _inconsistency(evidence: Evidence) -> str | None:
    """Why the evidence's numbers cannot be trusted, or None when they agree with each other."""
    m = evidence.metrics
    bad = [k for k in _COUNTS if type(m.get(k)) is not int or m[k] < 0]  # type: ignore[operator]
    if bad:
        return f"evidence lacks whole-number counts of {', '.join(bad)}"
    counts = {k: int(m[k] or 0) for k in _COUNTS}
    if (
        counts["passed"] + counts["failed"] + counts["errors"] + counts["skipped"]
        != counts["tests"]
    ):
        return "evidence counts do not add up to its number of tests"
    failing = counts["failed"] + counts["errors"]
    if (evidence.status == "failed") != (failing > 0):
        return f"evidence status '{evidence.status}' contradicts its {failing} failing tests"
    rules = [f.rule for f in evidence.findings]
    if (
        rules.count("test-failure") != counts["failed"]
        or rules.count("test-error") != counts["errors"]
    ):
        return "evidence findings do not match its counts of failed and errored tests"
    return None


_SUMMARY_PARTS = (
    ("passed", "passed"),
    ("failed", "failed"),
    ("errors", "errored"),
    ("skipped", "skipped"),
    ("flaky", "flaky"),
)


def _repo_path(workdir: Path, root: Path, file: str | None) -> str | None:
    """A test's file as a path from the repository root, which is what annotations need.

    Runners write paths relative to their own root directory, which may be the working
    directory or the repository root: the one where the file exists wins.
    """
    if not file:
        return None
    path = Path(file)
    if path.is_absolute():
        absolute = path
    else:
        candidates = [(workdir / path).resolve(), (root / path).resolve()]
        absolute = next((c for c in candidates if c.is_file()), candidates[0])
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _findings(report: junit.JUnitReport, workdir: Path) -> list[Finding]:
    root = Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd()).resolve()
    findings: list[Finding] = []

    @functools.cache  # failures cluster in few files; resolving one costs several system calls
    def repo_path(file: str | None) -> str | None:
        return _repo_path(workdir, root, file)

    for case in report.cases:
        rule: str
        severity: ev.Severity
        verb: str
        if case.outcome in ("failed", "error"):
            rule, severity, verb = (
                ("test-failure", "high", "failed")
                if case.outcome == "failed"
                else ("test-error", "high", "errored")
            )
        elif case.flaky:
            rule, severity, verb = "flaky-test", "low", "was flaky"
        else:
            continue
        findings.append(
            Finding(
                id=case.id,
                severity=severity,
                rule=rule,
                title=f"{case.id} {verb}",
                message=case.message or f"{case.name} {verb}",
                detail=case.detail or None,
                path=repo_path(case.file),
                line=case.line if case.line and case.line >= 1 else None,
            )
        )
    return findings


def _evidence(
    context: RunContext,
    started: datetime,
    status: ev.Status,
    *,
    reason: str | None = None,
    command: StageCommand,
    report: junit.JUnitReport | None = None,
    artifacts: list[ev.Artifact] | None = None,
) -> Evidence:
    metrics, data = command.evidence_parts()
    findings: list[Finding] = []
    if report is not None:
        metrics |= report.totals
        metrics["duration_s"] = round(report.duration_s, 6)
        findings = _findings(report, command.workdir)
        slowest = sorted(report.cases, key=lambda c: c.duration_s, reverse=True)[:_SLOWEST_KEPT]
        data |= {
            "sources": list(report.sources),
            "slowest": [{"id": c.id, "duration_s": c.duration_s} for c in slowest],
        }
    return finished_evidence(
        TestsStage.name,
        context,
        started,
        status,
        reason,
        metrics=metrics,
        findings=findings,
        artifacts=artifacts,
        data=data,
    )
