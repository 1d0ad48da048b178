"""The probe's evidence: written from what the server answered, read back to be judged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlgate import evidence as ev
from mlgate.evidence import Evidence, Finding
from mlgate.stages.finish import finished_evidence
from mlgate.stages.interface import RunContext
from mlgate.stages.probe.cases import BROKE
from mlgate.stages.probe.client import (
    Invalid,
)
from mlgate.stages.probe.config import NAME, ProbeConfig

_SEVERITY: dict[str, ev.Severity] = {
    "crash": "critical",
    "server-error": "high",
    "timeout": "high",
    "no-answer": "high",
    "accepted": "low",
}


def cases_of(evidence: Evidence) -> list[dict[str, Any]]:
    cases = evidence.data.get("cases")
    return [c for c in cases if isinstance(c, dict)] if isinstance(cases, list) else []


def probe_evidence(
    context: RunContext,
    started: datetime,
    config: ProbeConfig,
    *,
    reason: str | None = None,
    cases: list[dict[str, Any]] | None = None,
    stability: dict[str, Any] | None = None,
) -> Evidence:
    metrics: dict[str, ev.MetricValue] = {}
    findings: list[Finding] = []
    data: dict[str, Any] = {
        "url": config.url,
        "path": config.path,
        "payload": config.payload,
        "request_timeout_s": config.request_timeout,
        "noise": config.noise,
        "tolerance": config.tolerance,
        "seed": config.seed,
    }
    if cases is not None:
        run = [c for c in cases if c["outcome"] != "skipped"]
        metrics = {
            "cases": len(cases),
            "cases_run": len(run),
            "rejected": sum(1 for c in run if c["outcome"] == "rejected"),
            "accepted_garbage": sum(1 for c in run if c["outcome"] == "accepted"),
            "server_failures": sum(1 for c in run if c["outcome"] in BROKE),
            "perturbations": stability["perturbations"] if stability else 0,
            "compared_predictions": stability["compared_predictions"] if stability else 0,
            "stable_predictions": stability["stable_predictions"] if stability else 0,
            "stability_rate": stability["stability_rate"] if stability else None,
            "perturbation_failures": stability["failed_requests"] if stability else 0,
        }
        data["cases"] = cases
        if stability is not None:
            data["stability"] = stability
        elif config.perturbations:
            data["stability_skipped"] = "the server crashed on a malformed request"
        for case in run:
            severity = _SEVERITY.get(case["outcome"])
            if severity is not None:
                findings.append(_finding(case, severity))
        if stability and stability["failed_requests"]:
            failures = ", ".join(f"{k}: {n}" for k, n in stability["failures"].items())
            findings.append(
                Finding(
                    id="probe:perturbation",
                    severity="medium",
                    rule="probe-perturbation-failed",
                    title="perturbed valid requests failed",
                    message=f"{stability['failed_requests']} of {stability['perturbations']} "
                    f"slightly perturbed valid requests failed ({failures})",
                )
            )
    return finished_evidence(
        NAME, context, started, reason=reason, metrics=metrics, findings=findings, data=data
    )


def _finding(case: dict[str, Any], severity: ev.Severity) -> Finding:
    outcome = case["outcome"]
    what = {
        "crash": "stopped the server answering",
        "server-error": "got a server error",
        "timeout": "hung the server",
        "no-answer": "got no answer",
        "accepted": "was accepted",
    }[outcome]
    after = f"; {case['after']}" if case.get("after") else ""
    return Finding(
        id=f"probe:{case['case']}",
        severity=severity,
        rule=f"probe-{outcome}",
        title=f"malformed request {case['case']} {what}",
        message=f"{case['description']}: {answered(case)}{after}",
        detail=case.get("detail") or None,
    )


def answered(case: dict[str, Any]) -> str:
    status, failure = case.get("status"), case.get("failure")
    if case.get("outcome") == "skipped":
        return str(case.get("detail") or "not sent")
    answer = f"HTTP {status}" if isinstance(status, int) else str(case.get("detail") or failure)
    if case.get("outcome") == "crash":
        answer += ", then the server stopped answering"
    return answer


def judged(evidence: Evidence) -> tuple[list[dict[str, Any]], tuple[float, int] | None]:
    """The cases and (stability rate, predictions compared), once the evidence agrees with
    itself."""
    if evidence.status != "passed":
        raise Invalid(f"evidence status '{evidence.status}' is not one the stage writes")
    cases = cases_of(evidence)
    known = ("rejected", "accepted", *BROKE, "skipped")
    if not cases or any(
        not isinstance(c.get("case"), str) or c.get("outcome") not in known for c in cases
    ):
        raise Invalid("evidence lacks a well-formed list of malformed requests")
    m = evidence.metrics
    if m.get("server_failures") != sum(1 for c in cases if c["outcome"] in BROKE):
        raise Invalid("evidence's count of server failures does not match its requests")
    if m.get("accepted_garbage") != sum(1 for c in cases if c["outcome"] == "accepted"):
        raise Invalid("evidence's count of accepted requests does not match its requests")
    rate, compared = m.get("stability_rate"), m.get("compared_predictions")
    if rate is None:
        return cases, None
    if (
        not isinstance(rate, (int, float))
        or isinstance(rate, bool)
        or not 0 <= rate <= 1
        or type(compared) is not int
        or compared < 1
    ):
        raise Invalid("evidence lacks a stability rate between 0 and 1 with its count")
    return cases, (float(rate), compared)
