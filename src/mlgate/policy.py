"""The gate: every rule over all evidence, rolled up into one verdict. Fails closed."""

from __future__ import annotations

import os
from pathlib import Path

from mlgate import actions_env, atomic_file
from mlgate import evidence as ev
from mlgate.config import MlgateConfig
from mlgate.errors import EvidenceError, MlgateError
from mlgate.stages import STAGES
from mlgate.stages.interface import StagePolicy
from mlgate.verdict import EvidenceRef, RuleResult, Verdict, gate_outcome, let_through


def evaluate(
    config: MlgateConfig,
    evidence_dir: Path,
    commit: str | None = None,
    *,
    judge_commit: bool = True,
) -> Verdict:
    """Judge the evidence; `commit` (default: the commit under test, in GitHub Actions) is what
    every evidence document must be about; `judge_commit=False` re-judges evidence that records
    no commit (a bundle made outside GitHub Actions) without asking."""
    found, broken = ev.scan(evidence_dir)
    rules: list[RuleResult] = [
        RuleResult(stage=path.stem, rule="evidence.readable", outcome="fail", reason=reason)
        for path, reason in broken
    ]
    broken_stages = {path.stem for path, _ in broken}
    if not config.enabled_stages:
        rules.append(
            RuleResult(
                stage="config",
                rule="config.stages",
                outcome="fail",
                reason="no stage is configured: there is nothing to gate on",
            )
        )
    expected_sha = (commit or _expected_sha()) if judge_commit else None
    for name in config.enabled_stages:
        if name in broken_stages:
            continue
        if name not in found:
            rules.append(
                _fail(
                    name,
                    "evidence.present",
                    f"no evidence at {ev.evidence_path(evidence_dir, name)} (did the stage run?)",
                )
            )
            continue
        _, evidence = found[name]
        made_for = evidence.provenance.git_sha
        if expected_sha and made_for != expected_sha:
            # Evidence about other code (left over, or from another run) must not gate this one.
            made = f"commit {made_for[:12]}" if made_for else "no recorded commit"
            rules.append(
                _fail(
                    name,
                    "evidence.commit",
                    f"evidence was made for {made}, not {expected_sha[:12]}",
                )
            )
        elif evidence.status == "error":
            rules.append(_fail(name, "stage.error", f"stage errored: {evidence.reason}"))
        elif evidence.status == "skipped":
            rules.append(
                _fail(name, "stage.skipped", f"configured stage was skipped: {evidence.reason}")
            )
        else:
            stage_policy = config.stage_policy(name)
            rules.extend(
                let_through(result, stage_policy.on_inconclusive)
                for result in _judge(name, stage_policy, evidence)
            )
    refs = [
        EvidenceRef(stage=e.stage, path=str(p), sha256=ev.digest(e, p), status=e.status)
        for p, e in found.values()
    ] + [EvidenceRef(stage=p.stem, path=str(p), sha256=None, status=None) for p, _ in broken]
    run_id, attempt = os.environ.get("GITHUB_RUN_ID"), os.environ.get("GITHUB_RUN_ATTEMPT", "1")
    return Verdict(
        outcome=gate_outcome(r.outcome for r in rules),
        created_at=ev.now().isoformat(),
        commit=commit or actions_env.commit_under_test(),
        run=f"{run_id}.{attempt}" if run_id else None,
        config_digest=config.digest,
        policy_digest=config.policy_digest,
        rules=rules,
        evidence=refs,
    )


def _judge(name: str, stage_policy: StagePolicy, evidence: ev.Evidence) -> list[RuleResult]:
    """The stage's rules over its evidence. Evidence can match the schema and still hold what
    the stage never writes (a null or a list where it wrote a number): if judging it raises,
    that is a failing rule with the reason, so the gate still writes a verdict."""
    try:
        return STAGES[name].evaluate(stage_policy, evidence)
    except Exception as exc:  # any crash of a judge is a failure, never a pass
        problem = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return [_fail(name, "evidence.judgeable", f"its evidence cannot be judged ({problem})")]


def _fail(stage: str, rule: str, reason: str) -> RuleResult:
    return RuleResult(stage=stage, rule=rule, outcome="fail", reason=f"{stage}: {reason}")


def _expected_sha() -> str | None:
    """The commit under test, when running in GitHub Actions; evidence must be about it. A
    merge_group payload without its commit is bad input: judging without it would let evidence
    about any commit pass."""
    if not actions_env.in_actions():
        return None
    return actions_env.named_commit(actions_env.event_payload(), None, "nothing judged")


def write(verdict: Verdict, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_file.write_bytes(path, verdict.model_dump_json(indent=2).encode("utf-8"))
    except OSError as exc:
        raise MlgateError(f"{path}: cannot write the verdict: {exc.strerror or exc}") from None


def read(path: Path) -> Verdict:
    from pydantic import ValidationError

    try:
        return Verdict.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise EvidenceError(f"{path}: no verdict found (run 'mlgate gate' first)") from None
    except (OSError, ValidationError) as exc:
        raise EvidenceError(f"{path}: unreadable verdict: {str(exc).splitlines()[0]}") from None


def changed_since(verdict: Verdict, found: dict[str, tuple[Path, ev.Evidence]]) -> str | None:
    """Why the evidence now at hand is not what the verdict judged, or None when it is.

    Compared by stage and file digest, never by path: the same directory spelled another way
    (relative, absolute, through a symlink, with ./) or downloaded elsewhere is the same
    evidence, and edited, added or removed evidence is caught however it is named."""
    judged = {ref.stage: ref.sha256 for ref in verdict.evidence if ref.sha256 is not None}
    for stage, (path, evidence) in sorted(found.items()):
        if stage not in judged:
            return f"{path}: evidence the gate did not judge: run 'mlgate gate' again"
        if judged[stage] != ev.digest(evidence, path):
            return f"{path}: changed since the gate judged it: run 'mlgate gate' again"
    missing = sorted(set(judged) - set(found))
    if missing:
        return (
            f"evidence the gate judged is gone or unreadable ({', '.join(missing)}): "
            "run 'mlgate gate' again"
        )
    return None
