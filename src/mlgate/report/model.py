"""What every reporter renders: the verdict, its evidence, and where the full report is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlgate import actions_env, policy
from mlgate import evidence as ev
from mlgate.config import MlgateConfig
from mlgate.errors import EvidenceError
from mlgate.evidence import Evidence, Finding
from mlgate.stages import STAGES
from mlgate.verdict import Outcome, Verdict

ICONS: dict[Outcome, str] = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}
LABELS: dict[Outcome, str] = {"pass": "passed", "fail": "failed", "inconclusive": "inconclusive"}


@dataclass(frozen=True)
class Report:
    verdict: Verdict
    evidence: dict[str, Evidence]
    title: str
    artifact_name: str
    run_url: str | None = None
    stages: list[str] = field(default_factory=list)
    evidence_dir: Path | None = None  # where the evidence's artifacts (SARIF files) are

    def findings(self, stage: str) -> list[Finding]:
        found = self.evidence.get(stage)
        return found.findings if found else []

    def stage_summary(self, stage: str) -> str:
        found = self.evidence.get(stage)
        if found is None:
            return "no evidence"
        known = STAGES.get(stage)
        return known.summary(found) if known else found.status

    def stage_markdown(self, stage: str) -> str:
        found, known = self.evidence.get(stage), STAGES.get(stage)
        return known.report_markdown(found) if found and known and found.status != "error" else ""

    def stage_html(self, stage: str) -> str:
        found, known = self.evidence.get(stage), STAGES.get(stage)
        return known.report_html(found) if found and known and found.status != "error" else ""

    def stage_title(self, stage: str) -> str:
        known = STAGES.get(stage)
        return known.title if known else stage


def load(
    config: MlgateConfig, verdict_path: Path, evidence_dir: Path, commit: str | None = None
) -> Report:
    """The verdict and the evidence it judged; refuses a verdict about another commit than
    `commit` (default: the commit under test, inside GitHub Actions)."""
    verdict = policy.read(verdict_path)
    if commit is None and actions_env.in_actions():
        commit = actions_env.commit_under_test()
    if commit and verdict.commit != commit:
        made = f"commit {verdict.commit[:12]}" if verdict.commit else "no recorded commit"
        raise EvidenceError(
            f"{verdict_path}: the verdict was made for {made}, not {commit[:12]}: run 'mlgate gate'"
        )
    found, _ = ev.scan(evidence_dir)
    judged = {ref.path: ref.sha256 for ref in verdict.evidence}
    for path, _evidence in found.values():
        if str(path) in judged and judged[str(path)] != ev.sha256_file(path):
            raise EvidenceError(
                f"{path}: changed since the gate judged it: run 'mlgate gate' again"
            )
    return Report(
        verdict=verdict,
        evidence={name: evidence for name, (_, evidence) in found.items()},
        title=config.report.check_name,
        artifact_name=config.report.artifact_name,
        run_url=actions_env.run_url(),
        stages=verdict.stages,
        evidence_dir=evidence_dir,
    )
