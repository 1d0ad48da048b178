"""A stage's finished evidence: its parts stamped with the stage, the times and the provenance."""

from __future__ import annotations

from datetime import datetime

from mlgate import evidence as ev
from mlgate.evidence import Evidence, Finding
from mlgate.stages.interface import RunContext


def finished_evidence(
    stage: str,
    context: RunContext,
    started: datetime,
    status: ev.Status | None = None,
    reason: str | None = None,
    *,
    metrics: dict[str, ev.MetricValue] | None = None,
    findings: list[Finding] | None = None,
    artifacts: list[ev.Artifact] | None = None,
    data: dict[str, object] | None = None,
    tool_versions: dict[str, str] | None = None,
) -> Evidence:
    """The evidence of a run that started at `started` and finishes now. Without a `status`, a
    reason makes it an error and no reason a pass."""
    return Evidence(
        stage=stage,
        status=status or ("error" if reason is not None else "passed"),
        reason=reason,
        started_at=started,
        finished_at=ev.now(),
        metrics=metrics or {},
        findings=findings or [],
        artifacts=artifacts or [],
        data=data or {},
        provenance=ev.collect_provenance(context.config_digest, tool_versions or {}),
    )
