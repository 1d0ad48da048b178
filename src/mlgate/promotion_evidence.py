"""The bundle's evidence judged by the promoting repository, not by the bundle's own config.

A bundle carries the config it was made with; a bundle made under a laxer config (fewer
stages, looser limits) verifies against itself. Promotion therefore re-judges the bundled
evidence with the promoting config's policy: every stage that config gates must be in the
bundle, and every rule must pass. With `promotion.require_model_scan`, the bundle must also hold
scan evidence that passes this policy and scanned the promoted version's files.
"""

from __future__ import annotations

from pathlib import Path

from mlgate import bundle_subject, model_identity, policy
from mlgate import evidence as ev
from mlgate.bundle import Verified
from mlgate.config import MlgateConfig
from mlgate.stages import STAGES
from mlgate.verdict import RuleResult


def refusal(cfg: MlgateConfig, verified: Verified, evidence_dir: Path) -> str | None:
    """Why this config does not let the verified bundle (its evidence in `evidence_dir`) be
    promoted; None when it does."""
    found, _ = ev.scan(evidence_dir)
    bundled_policy = verified.document.get("config", {}).get("policy_digest")
    under = (
        "this configuration's policy"
        if bundled_policy == cfg.policy_digest
        else f"this configuration's policy ({cfg.policy_digest}; the bundle was judged under "
        f"{bundled_policy})"
    )
    missing = [stage for stage in cfg.enabled_stages if stage not in found]
    if missing:
        return (
            f"the bundle has no {', '.join(missing)} evidence, which {under} gates: gate the "
            "version with this configuration"
        )
    commit = verified.document.get("verdict", {}).get("commit")
    again = policy.evaluate(cfg, evidence_dir, commit=commit, judge_commit=commit is not None)
    failing = [rule for rule in again.rules if rule.outcome != "pass"]
    if failing:
        return f"under {under} the bundle's evidence is {again.outcome}: {_first(failing)}"
    if cfg.promotion.require_model_scan:
        model = verified.model
        return _scan_refusal(
            cfg, found, str(model.get("name")), str(model.get("version")), str(model["digest"])
        )
    return None


def _scan_refusal(
    cfg: MlgateConfig,
    found: dict[str, tuple[Path, ev.Evidence]],
    name: str,
    version: str,
    digest: str,
) -> str | None:
    stage = bundle_subject.SCAN_STAGE
    wanted = f"models:/{name}/{version}"
    if stage not in found:
        return f"promotion.require_model_scan: the bundle has no scan evidence of {wanted}"
    _, scan = found[stage]
    if scan.status in ("error", "skipped"):
        return f"promotion.require_model_scan: the bundle's scan {scan.status}: {scan.reason}"
    failing = [
        rule
        for rule in STAGES[stage].evaluate(cfg.stage_policy(stage), scan)
        if rule.outcome != "pass"
    ]
    if failing:
        return f"promotion.require_model_scan: the scan fails this policy: {_first(failing)}"
    targets = model_identity.read_all(scan.data.get(bundle_subject.SCAN_TARGETS_KEY))
    if not any(target.is_version(name, version, digest) for target in targets):
        scanned = ", ".join(t.shown for t in targets) or "no registered model"
        return (
            f"promotion.require_model_scan: the scan scanned {scanned}, not {wanted} ({digest}): "
            "list it in the scan stage's models"
        )
    return None


def _first(rules: list[RuleResult]) -> str:
    rule = rules[0]
    more = f" (and {len(rules) - 1} more)" if len(rules) > 1 else ""
    return f"{rule.rule} is {rule.outcome}: {rule.reason}{more}"
