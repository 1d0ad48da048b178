"""What every reporter renders: the verdict, its evidence, and where the full report is."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlgate import actions_env, policy
from mlgate import evidence as ev
from mlgate.config import MlgateConfig
from mlgate.errors import EvidenceError
from mlgate.evidence import Evidence, Finding
from mlgate.report import escape
from mlgate.report.comparison import Comparison
from mlgate.report.subject import Subject
from mlgate.report.subject import of as subject_of
from mlgate.stages import STAGES
from mlgate.stages.interface import StagePolicy
from mlgate.verdict import Outcome, RuleResult, Verdict

ICONS: dict[Outcome, str] = {"pass": "✅", "warn": "🟡", "fail": "❌", "inconclusive": "⚠️"}
LABELS: dict[Outcome, str] = {
    "pass": "passed",
    "warn": "warning",
    "fail": "failed",
    "inconclusive": "inconclusive",
}
# The outcome as a word, wherever an icon or a colour says it too.
WORDS: dict[Outcome, str] = {
    "pass": "pass",
    "warn": "warning",
    "fail": "fail",
    "inconclusive": "inconclusive",
}
_FIRST: dict[Outcome, int] = {"fail": 0, "inconclusive": 1, "warn": 2, "pass": 3}


def verdict_label(verdict: Verdict) -> str:
    """The verdict in words, e.g. "passed with 2 warnings": a pass with warnings says so."""
    count = len(verdict.warnings)
    plural = "s" if count > 1 else ""
    return LABELS[verdict.outcome] + (f" with {count} warning{plural}" if count else "")


@dataclass(frozen=True)
class Report:
    verdict: Verdict
    evidence: dict[str, Evidence]
    title: str
    artifact_name: str
    run_url: str | None = None
    stages: list[str] = field(default_factory=list)
    evidence_dir: Path | None = None  # where the evidence's artifacts (SARIF files) are
    model_name: str | None = None  # the config's name for the model, when evidence has none
    # The policy each stage was judged under (tolerances in comparisons); a stage without one
    # is shown under its defaults.
    policies: Mapping[str, StagePolicy] = field(default_factory=dict)

    @property
    def subject(self) -> Subject:
        return subject_of(self.evidence, self.model_name)

    def rules_in_order(self) -> list[RuleResult]:
        """Failing rules first, then inconclusive ones, then warnings, then the rest: what to
        act on first."""
        return sorted(self.verdict.rules, key=lambda r: _FIRST[r.outcome])

    def comparisons(self, stage: str) -> list[Comparison]:
        found = self.evidence.get(stage)
        return comparisons(stage, found, self.policies.get(stage)) if found else []

    def findings(self, stage: str) -> list[Finding]:
        found = self.evidence.get(stage)
        return found.findings if found else []

    def stage_summary(self, stage: str) -> str:
        found = self.evidence.get(stage)
        return summary(stage, found) if found else "no evidence"

    def stage_markdown(self, stage: str) -> str:
        found = self.evidence.get(stage)
        return markdown(stage, found) if found else ""

    def stage_html(self, stage: str) -> str:
        found = self.evidence.get(stage)
        return html(stage, found) if found else ""

    def stage_title(self, stage: str) -> str:
        known = STAGES.get(stage)
        return known.title if known else stage


def summary(stage: str, evidence: Evidence) -> str:
    """The stage's one line about its evidence (any renderer's, e.g. the model card's too)."""
    known = STAGES.get(stage)
    if known is None:
        return evidence.status
    return _rendered(stage, lambda: known.summary(evidence), str)


def markdown(stage: str, evidence: Evidence) -> str:
    """The stage's markdown about its evidence (tables, charts); none for an error."""
    known = STAGES.get(stage)
    if known is None or evidence.status == "error":
        return ""
    return _rendered(stage, lambda: known.report_markdown(evidence), escape.inline)


def html(stage: str, evidence: Evidence) -> str:
    """The same as an HTML fragment."""
    known = STAGES.get(stage)
    if known is None or evidence.status == "error":
        return ""
    return _rendered(stage, lambda: known.report_html(evidence), _html_paragraph)


def comparisons(stage: str, evidence: Evidence, policy: StagePolicy | None) -> list[Comparison]:
    """The stage's comparisons with the champion under `policy` (default: the stage's
    defaults); none for an error."""
    known = STAGES.get(stage)
    if known is None or evidence.status == "error":
        return []
    try:
        return known.comparisons(evidence, policy or known.policy_model())
    except Exception:
        # Odd evidence (it matched the schema, not what the stage writes): the stage's own
        # part of the report marks what it cannot show; the gate has judged it already.
        return []


def _rendered(stage: str, render: Callable[[], str], mark: Callable[[str], str]) -> str:
    """What a stage renders of its evidence; evidence that matches the schema but not what the
    stage writes (a null where it wrote a number) can make that raise: the report then marks
    the part it cannot show (`mark` escapes the note) and renders the rest."""
    try:
        return render()
    except Exception as exc:
        return mark(f"({stage} evidence cannot be shown: {type(exc).__name__})")


def _html_paragraph(text: str) -> str:
    return f"<p>{escape.html_text(text)}</p>"


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
    changed = policy.changed_since(verdict, found)
    if changed:
        raise EvidenceError(changed)
    return Report(
        verdict=verdict,
        evidence={name: evidence for name, (_, evidence) in found.items()},
        title=config.report.check_name,
        artifact_name=config.report.artifact_name,
        run_url=actions_env.run_url(),
        stages=verdict.stages,
        evidence_dir=evidence_dir,
        model_name=config.promotion.model or config.card.model,
        policies={name: config.stage_policy(name) for name in verdict.stages if name in STAGES},
    )
