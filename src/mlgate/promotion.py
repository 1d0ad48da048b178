"""Promotion and rollback of model versions through MLflow aliases, gated and recorded.

A promotion moves the stage's alias only when: the version's registered bundle verifies (every
digest, the re-evaluated verdict, the registry's model files) and says pass, is young enough and
is not one a rollback blocked; the stage order holds; the actor may (GitHub permission, teams,
approvals by others); and the alias still points where the caller expected. The alias moves
under a registry lock, after the ledger record is written, so two promotions racing for one
alias end with one winner and the alias never points at a version without its record. After
the move, `promotion.deploy_command` and `promotion.check` (health and a short load of the
deployed model) run; if either fails, the alias is moved back and that is recorded too.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from mlgate import actions_env, bundle, promotion_deploy, promotion_preconditions, promotion_race
from mlgate.config import MlgateConfig, StageAccess
from mlgate.errors import MlgateError
from mlgate.promotion_preconditions import BLOCKED_TAG

if TYPE_CHECKING:
    from github.Repository import Repository

    from mlgate.github.run_identity import VerifiedRun
    from mlgate.promotion_race import Decided
    from mlgate.registry.ledger_chain import ChainReport
    from mlgate.registry.mlflow_registry import Registry


class PromotionRefused(MlgateError):
    """The promotion or rollback is not allowed; the message says why. Nothing was changed."""

    exit_code = 1


@dataclass
class Outcome:
    kind: Literal["promotion", "rollback", "auto-rollback"]
    model: str
    stage: str
    from_version: str | None
    to_version: str | None
    sequence: int
    record: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        moved = f"{self.from_version or '(none)'} -> {self.to_version or '(none)'}"
        return f"{self.kind}: {self.model}@{self.stage} {moved} (ledger #{self.sequence})"


@dataclass(frozen=True)
class Who:
    """The actor and where to check them: GitHub when the stage's rule needs it. A claimed
    workflow run (`run_id`, or `in_actions`) counts only once the API proves it (see
    github.run_identity): its commit `sha`, its `attempt`, its actor, its environment."""

    actor: str
    repo: Repository | None
    run_id: int | None
    sha: str | None = None
    attempt: int | None = None
    in_actions: bool = False


def actor_from_context(flag: str | None) -> str:
    """Inside GitHub Actions the actor is the one who triggered the run, whatever a flag says:
    claimed here from the environment, proven through the API before it counts (_proven_run)."""
    if actions_env.in_actions():
        actor = os.environ.get("GITHUB_TRIGGERING_ACTOR") or os.environ.get("GITHUB_ACTOR")
        if not actor:
            raise PromotionRefused("GITHUB_ACTOR is not set: cannot tell who promotes")
        if flag and flag != actor:
            raise PromotionRefused(
                f"--actor {flag} is not trusted in GitHub Actions; the run was started by {actor}"
            )
        return actor
    if flag:
        return flag
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid (a bare container)
        return "unknown"


def promote(
    cfg: MlgateConfig,
    registry: Registry,
    who: Who,
    name: str,
    version: str,
    stage: str,
    expect_current: str | None = None,
    reason: str = "",
    now: datetime | None = None,
    decided_at: datetime | None = None,
) -> Outcome:
    """`decided_at`: when the promotion was decided (default: now); see promotion_race."""
    decided_at = decided_at or datetime.now(timezone.utc)
    promotion = cfg.promotion
    _known_stage(cfg, stage)
    registry.model_version(name, version)  # unknown model or version: one line, nothing moved
    current = registry.alias(name, stage)
    expected = expect_current if expect_current is not None else current
    if expected in ("", "none"):
        expected = None
    if current == version:
        raise PromotionRefused(f"{name}@{stage} already points at version {version}")
    try:
        verified, digest = promotion_preconditions.promotable_bundle(
            cfg, registry, name, version, now
        )
        promotion_preconditions.check_order(cfg, registry, name, version, stage)
    except promotion_preconditions.NotPromotable as exc:
        raise PromotionRefused(str(exc)) from None
    run = _proven_run(who, stage)
    approvals = _check_access(who, promotion.access_for(stage), stage)
    if promotion.check is not None:
        unrunnable = promotion_deploy.check_unrunnable(promotion.check)
        if unrunnable:
            raise PromotionRefused(unrunnable)
    if promotion.deploy_dispatch and who.repo is None:
        raise PromotionRefused(
            "promotion.deploy_dispatch needs GitHub: promote from GitHub Actions with a token"
        )
    record = {
        "kind": "promotion",
        "model": name,
        "stage": stage,
        "from_version": current,
        "to_version": version,
        "actor": who.actor,
        "bundle_digest": digest,
        "git_sha": verified.document.get("source", {}).get("git_sha"),
        "run_url": actions_env.run_url(),
        "approvals": approvals,
        "reason": reason,
    }
    race_from = None if expect_current is not None else promotion_race.decided(decided_at, run)
    outcome = _move(registry, who, name, stage, expected, version, record, race_from)
    failed: str | None = None
    if promotion.deploy_dispatch and who.repo is not None:
        problem = promotion_deploy.dispatch(who.repo, promotion.deploy_dispatch, record)
        failed = f"the deploy dispatch failed: {problem}" if problem else None
    if failed is None and promotion.deploy_command:
        problem = promotion_deploy.deploy(promotion.deploy_command, name, version, stage)
        failed = f"the deploy command failed: {problem}" if problem else None
    if failed is None and promotion.check is not None:
        problem = promotion_deploy.post_check(promotion.check, stage)
        failed = f"the post-promotion check failed: {problem}" if problem else None
    if failed is None:
        return outcome
    back = _move(
        registry,
        who,
        name,
        stage,
        version,
        current,
        record
        | {
            "kind": "auto-rollback",
            "from_version": version,
            "to_version": current,
            "reason": failed,
        },
    )
    _block(registry, name, version, digest)
    back.warnings.append(f"rolled back: {failed}")
    return back


def rollback(
    cfg: MlgateConfig,
    registry: Registry,
    who: Who,
    name: str,
    stage: str,
    to: str | None = None,
    reason: str = "",
    override_reason: str | None = None,
    decided_at: datetime | None = None,
) -> Outcome:
    """Back to a version that held the stage and is not blocked (see rollback_gate); any other
    needs `override_reason` from someone who passes the production stage's access rule."""
    from mlgate import rollback_gate
    from mlgate.registry.ledger import Ledger

    decided_at = decided_at or datetime.now(timezone.utc)
    _known_stage(cfg, stage)
    if override_reason is not None and not override_reason.strip():
        raise PromotionRefused("--override-reason is blank: say why the gate is overridden")
    current = registry.alias(name, stage)
    if current is None:
        raise PromotionRefused(f"{name}@{stage} points at no version: nothing to roll back")
    records = _ledger_records(Ledger(registry, name))
    if to is None:
        found, to = rollback_gate.previous_holder(records, stage, current)
        if not found:
            raise PromotionRefused(
                f"the ledger has no earlier version for {stage} (it points at {current}): give --to"
            )
    if to is not None:
        registry.model_version(name, to)
    if to == current:
        raise PromotionRefused(f"{name}@{stage} already points at version {to}")
    run = _proven_run(who, stage)
    approvals = _check_access(who, cfg.promotion.access_for(stage), stage)
    problem = None
    if to is not None:
        tags = registry.model_version(name, to).tags
        problem = rollback_gate.why_not(records, stage, to, tags, BLOCKED_TAG, bundle.DIGEST_TAG)
    override: dict[str, str] | None = None
    if problem is not None and override_reason is None:
        choices = rollback_gate.eligible(
            records,
            stage,
            current,
            lambda v: registry.model_version(name, v).tags,
            BLOCKED_TAG,
            bundle.DIGEST_TAG,
        )
        raise PromotionRefused(
            f"cannot roll {name}@{stage} back to {to}: {problem}; versions it may go back to: "
            f"{', '.join(choices) or 'none'} (or --override-reason, by someone who may promote "
            f"to {cfg.promotion.stages[-1]})"
        )
    if problem is not None and override_reason is not None:
        top = cfg.promotion.stages[-1]  # its rule, and approvals given in its environment
        approvals = _check_access(who, cfg.promotion.access_for(top), top, f"overriding: {top}")
        override = {"reason": override_reason, "gate": problem, "access": top}
    digest = registry.model_version(name, current).tags.get(bundle.DIGEST_TAG, "")
    record = {
        "kind": "rollback",
        "model": name,
        "stage": stage,
        "from_version": current,
        "to_version": to,
        "actor": who.actor,
        "bundle_digest": digest,
        "run_url": actions_env.run_url(),
        "approvals": approvals,
        "reason": reason,
    } | ({"override": override} if override else {})
    race_from = promotion_race.decided(decided_at, run)
    outcome = _move(registry, who, name, stage, current, to, record, race_from)
    _block(registry, name, current, digest or "rolled-back")
    return outcome


def history(registry: Registry, name: str) -> ChainReport:
    """The ledger's records with the chain's verdict: breaks are shown, not raised."""
    from mlgate.registry.ledger import Ledger

    registry.model_tags(name)  # an unknown model is one clear line
    return Ledger(registry, name).read()


def _move(
    registry: Registry,
    who: Who,
    name: str,
    stage: str,
    expected: str | None,
    target: str | None,
    record: dict[str, Any],
    decided: Decided | None = None,
) -> Outcome:
    """Under the lock: check the alias is where expected (and, given `decided`, that no
    ledger record moved the stage since the decision), record, then move it."""
    from mlgate import promotion_race
    from mlgate.registry.ledger import Ledger
    from mlgate.registry.mlflow_registry import LockBusy

    holder = f"{who.actor} {actions_env.run_url() or os.getpid()}"
    try:
        with registry.lock(name, stage, holder):
            now = registry.alias(name, stage)
            if now != expected:
                raise PromotionRefused(
                    f"{name}@{stage} points at {now or 'no version'}, not "
                    f"{expected or 'no version'} as expected: another promotion won; nothing "
                    "was changed"
                )
            ledger = Ledger(registry, name)
            if decided is not None:
                records = _ledger_records(ledger)
                moved = promotion_race.moved_since(records, stage, decided.at, decided.own_run)
                if moved is not None:
                    raise PromotionRefused(promotion_race.refusal(name, stage, moved, decided.at))
            # Microseconds: racing promoters are told apart by it (promotion_race).
            record = record | {"at": datetime.now(timezone.utc).isoformat(timespec="microseconds")}
            # The record first: the alias never points at a version without its audit record.
            sequence = _append(ledger, record)
            if target is None:
                registry.delete_alias(name, stage)
            else:
                registry.set_alias(name, stage, target)
    except LockBusy as exc:
        raise PromotionRefused(f"another promotion of {name}@{stage} is under way: {exc}") from None
    outcome = Outcome(
        kind=record["kind"],
        model=name,
        stage=stage,
        from_version=expected,
        to_version=target,
        sequence=sequence,
        record=record,
    )
    warning = promotion_deploy.deployment_warning(
        who.repo, outcome.record, outcome.stage, outcome.kind, outcome.line()
    )
    outcome.warnings += [warning] if warning else []
    return outcome


def _ledger_records(ledger: Any) -> list[dict[str, Any]]:
    """The ledger's records; a broken chain refuses the promotion (history shows where)."""
    from mlgate.registry.ledger_chain import LedgerBroken

    try:
        records: list[dict[str, Any]] = ledger.records()
    except LedgerBroken as exc:
        raise PromotionRefused(str(exc)) from None
    return records


def _append(ledger: Any, record: dict[str, Any]) -> int:
    from mlgate.registry.ledger_chain import LedgerBroken

    try:
        return int(ledger.append(record))
    except LedgerBroken as exc:
        raise PromotionRefused(str(exc)) from None


def _proven_run(who: Who, stage: str) -> VerifiedRun | None:
    """The workflow run `who` claims, proven through the API; None when none is claimed."""
    if not who.in_actions and who.run_id is None:
        return None
    from mlgate.github import run_identity
    from mlgate.github.client import NotPermitted, Rejected, Unreachable

    try:
        claim = run_identity.claim(who.repo, who.run_id, who.actor, who.sha, who.attempt)
        assert who.repo is not None  # claim() refuses a claim without a token
        return run_identity.verify(who.repo, claim, stage)
    except run_identity.RunNotProven as exc:
        raise PromotionRefused(f"not a verified GitHub Actions run: {exc}") from None
    except (NotPermitted, Rejected, Unreachable) as exc:
        raise PromotionRefused(f"cannot verify workflow run {who.run_id}: {exc}") from None


def _check_access(
    who: Who, rule: StageAccess, stage: str, purpose: str | None = None
) -> list[dict[str, str]]:
    """GitHub's answer on the actor; a rule that needs GitHub cannot pass without it."""
    needs_github = rule.permission is not None or rule.teams or rule.approvals
    if not needs_github:
        return []
    if who.repo is None:
        raise PromotionRefused(
            f"{purpose or stage} needs GitHub to check who promotes (permission, teams, "
            "approvals): run from GitHub Actions with a token, or set promotion.access for it"
        )
    from mlgate.github import access
    from mlgate.github.client import NotPermitted, Rejected, Unreachable

    access_rule = access.AccessRule(
        permission=rule.permission,
        teams=tuple(rule.teams),
        approvals=rule.approvals,
        approvers=tuple(rule.approvers),
    )
    try:
        decision = access.check(
            who.repo, who.actor, access_rule, run_id=who.run_id, environment=stage
        )
    except (NotPermitted, Rejected, Unreachable) as exc:
        raise PromotionRefused(f"cannot check {who.actor}'s access on GitHub: {exc}") from None
    if not decision.allowed:
        raise PromotionRefused(f"{purpose}: {decision.reason}" if purpose else decision.reason)
    return [{"login": a.login, "state": a.state} for a in decision.approvals]


def _known_stage(cfg: MlgateConfig, stage: str) -> None:
    if stage not in cfg.promotion.stages:
        raise PromotionRefused(
            f"unknown stage {stage!r}; promotion.stages are {', '.join(cfg.promotion.stages)}"
        )


def _block(registry: Registry, name: str, version: str, digest: str) -> None:
    registry.set_version_tag(name, version, BLOCKED_TAG, digest)
