"""What must hold of a model version before a promotion moves the alias: its bundle (fetched,
verified: every digest, the re-evaluated verdict, the model files; judged by this repository's
config too; about this version; passing; young enough; not blocked by a rollback) and the
stage order."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mlgate import bundle, promotion_evidence
from mlgate.config import MlgateConfig

if TYPE_CHECKING:
    from mlgate.registry.mlflow_registry import Registry

BLOCKED_TAG = "mlgate.blocked"  # on a version rolled away from: the bundle digest it had


class NotPromotable(Exception):
    """The version may not be promoted to the stage; the message says why."""


def promotable_bundle(
    cfg: MlgateConfig, registry: Registry, name: str, version: str, now: datetime | None
) -> tuple[bundle.Verified, str]:
    """The verified bundle of `name`/`version` and its digest, or NotPromotable."""
    with tempfile.TemporaryDirectory(prefix="mlgate-bundle-") as scratch:
        try:
            directory, digest = bundle.fetch(registry, name, version, Path(scratch) / "bundle")
        except bundle.BundleError as exc:
            raise NotPromotable(str(exc)) from None
        try:
            verified = bundle.verify(directory, registry, expected_digest=digest)
        except bundle.BundleError as exc:
            raise NotPromotable(f"the bundle of {name}/{version} does not verify: {exc}") from None
        # Judged by this repository's config too, not only by the one inside the bundle (a
        # bundle whose own verdict is not pass is refused below, saying so).
        evidence_dir = directory / bundle.EVIDENCE_DIR
        problem = verified.outcome == "pass" and promotion_evidence.refusal(
            cfg, verified, evidence_dir
        )
        if problem:
            raise NotPromotable(f"the bundle of {name}/{version}: {problem}")
    model = verified.model
    if (model.get("name"), str(model.get("version"))) != (name, version):
        raise NotPromotable(
            f"the bundle registered with {name}/{version} is about "
            f"{model.get('name')}/{model.get('version')}"
        )
    if verified.outcome != "pass":
        raise NotPromotable(f"the bundle's verdict for {name}/{version} is {verified.outcome}")
    age = (now or datetime.now(timezone.utc)) - verified.created_at
    if age > timedelta(hours=cfg.promotion.max_bundle_age_hours):
        raise NotPromotable(
            f"the bundle of {name}/{version} is {age.total_seconds() / 3600:.0f} h old; at most "
            f"{cfg.promotion.max_bundle_age_hours:g} h is allowed: gate the version again"
        )
    blocked = registry.model_version(name, version).tags.get(BLOCKED_TAG)
    if blocked and blocked == digest:
        raise NotPromotable(
            f"{name}/{version} was rolled back; promoting it again needs a new bundle"
        )
    return verified, digest


def check_order(cfg: MlgateConfig, registry: Registry, name: str, version: str, stage: str) -> None:
    stages = cfg.promotion.stages
    index = stages.index(stage)
    if cfg.promotion.order == "any" or index == 0:
        return
    before = stages[index - 1]
    holder = registry.alias(name, before)
    if holder != version:
        raise NotPromotable(
            f"{stage} takes only the version that holds {before} ({name}@{before} is "
            f"{holder or 'unset'}, not {version})"
        )
