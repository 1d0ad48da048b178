"""The bundle's evidence judged by the promoting repository, not by the bundle's own config.

A bundle carries the config it was made with; a bundle made under a laxer config (fewer
stages, looser limits) verifies against itself. Promotion therefore re-judges the bundled
evidence with the promoting config's policy: every stage that config gates must be in the
bundle, and every rule must pass. With `promotion.require_model_scan`, the bundle must also hold
scan evidence that passes this policy and scanned the promoted version's files.

Scan evidence also records what the checkout that made it said, which a pull request controls:
its waivers and its baseline's fingerprints. Promotion judges the scan with the PROMOTING
checkout's waivers instead (stages.scan.waivers of this config, read as the scan stage reads it,
relative to the stage's working directory; no scan stage configured: no waivers), and never with
the bundle's baseline: under `new_only`, every finding counts (fail closed).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mlgate import bundle_subject, model_identity, policy
from mlgate import evidence as ev
from mlgate import waivers as waiver_rules
from mlgate.bundle import Verified
from mlgate.config import MlgateConfig
from mlgate.errors import MlgateError
from mlgate.stages import STAGES
from mlgate.stages.scan.config import ScanConfig
from mlgate.stages.scan.inputs import load_waivers
from mlgate.stages.scan.rules import without_baseline
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
    with tempfile.TemporaryDirectory(prefix="mlgate-rejudge-") as scratch:
        judged_dir = Path(scratch) / "evidence"
        shutil.copytree(evidence_dir, judged_dir)  # the verified bundle itself stays as it is
        try:
            note = _rewaived(found, checkout_waivers(cfg), judged_dir)
        except MlgateError as exc:  # a broken waivers file, or MLGATE_TODAY inside Actions
            return f"the promoting checkout's scan waivers: {exc}"
        found, _ = ev.scan(judged_dir)
        commit = verified.document.get("verdict", {}).get("commit")
        again = policy.evaluate(cfg, judged_dir, commit=commit, judge_commit=commit is not None)
        failing = blocking(again.rules)
        if failing:
            return (
                f"under {under} the bundle's evidence is {again.outcome}: {_first(failing)}{note}"
            )
        if cfg.promotion.require_model_scan:
            model = verified.model
            problem = _scan_refusal(
                cfg,
                found,
                str(model.get("name")),
                str(model.get("version")),
                str(model["digest"]),
            )
            return f"{problem}{note}" if problem else None
    return None


def checkout_waivers(cfg: MlgateConfig) -> list[waiver_rules.Waiver]:
    """The waivers of the checkout that promotes, as its scan stage would read them."""
    scan_config = cfg.stage_config(bundle_subject.SCAN_STAGE)
    if not isinstance(scan_config, ScanConfig):
        return []
    workdir = Path(scan_config.working_directory).resolve()
    return load_waivers(workdir, scan_config.waivers)


def _rewaived(
    found: dict[str, tuple[Path, ev.Evidence]],
    waivers: list[waiver_rules.Waiver],
    judged_dir: Path,
) -> str:
    """The bundled scan evidence rewritten into `judged_dir` with the promoting waivers and no
    baseline (under new_only every finding then counts, scan.rules.without_baseline); returns
    a note for a refusal naming the findings no longer waived."""
    stage = bundle_subject.SCAN_STAGE
    if stage not in found:
        return ""
    _, scan = found[stage]
    data = without_baseline(scan.data, "the bundle's baseline is not trusted at promotion")
    data["waivers"] = [w.model_dump(mode="json") for w in waivers]
    ev.write(scan.model_copy(update={"data": data}), judged_dir)
    rewaived = waiver_rules.apply(waivers, scan.findings, waiver_rules.today()).findings
    lost = [
        old.id
        for old, new in zip(scan.findings, rewaived, strict=True)
        if old.waived_by and not new.waived_by
    ]
    if not lost:
        return ""
    return (
        f" (waived only by the bundle's own waivers, not by the promoting checkout's: "
        f"{', '.join(sorted(set(lost)))})"
    )


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


def blocking(rules: list[RuleResult]) -> list[RuleResult]:
    """The rules that refuse a promotion: all but passes and warnings (a warning is a rule the
    promoting policy lets through with `on_inconclusive: warn`, as its verdict does)."""
    return [rule for rule in rules if rule.outcome not in ("pass", "warn")]
