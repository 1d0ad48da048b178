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
import importlib.util
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlgate import actions_env, bundle, promotion_evidence
from mlgate.config import MlgateConfig, PromotionCheck, StageAccess
from mlgate.errors import MlgateError

if TYPE_CHECKING:
    from github.Repository import Repository

    from mlgate.github.run_identity import VerifiedRun
    from mlgate.promotion_race import Decided
    from mlgate.registry.ledger_chain import ChainReport
    from mlgate.registry.mlflow_registry import Registry

BLOCKED_TAG = "mlgate.blocked"  # on a version rolled away from: the bundle digest it had
DEPLOY_TIMEOUT_S = 1800
_CHECK_MARGIN_S = 60  # the check's load may take this long beyond warmup + duration
_HEALTH_PATHS = ("/ping", "/health")
_HEALTH_POLL_S = 0.25


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
    with tempfile.TemporaryDirectory(prefix="mlgate-bundle-") as scratch:
        try:
            directory, digest = bundle.fetch(registry, name, version, Path(scratch) / "bundle")
        except bundle.BundleError as exc:
            raise PromotionRefused(str(exc)) from None
        try:
            verified = bundle.verify(directory, registry, expected_digest=digest)
        except bundle.BundleError as exc:
            raise PromotionRefused(
                f"the bundle of {name}/{version} does not verify: {exc}"
            ) from None
        # Judged by this repository's config too, not only by the one inside the bundle (a
        # bundle whose own verdict is not pass is refused below, saying so).
        evidence_dir = directory / bundle.EVIDENCE_DIR
        problem = verified.outcome == "pass" and promotion_evidence.refusal(
            cfg, verified, evidence_dir
        )
        if problem:
            raise PromotionRefused(f"the bundle of {name}/{version}: {problem}")
    model = verified.model
    if (model.get("name"), str(model.get("version"))) != (name, version):
        raise PromotionRefused(
            f"the bundle registered with {name}/{version} is about "
            f"{model.get('name')}/{model.get('version')}"
        )
    if verified.outcome != "pass":
        raise PromotionRefused(f"the bundle's verdict for {name}/{version} is {verified.outcome}")
    age = (now or datetime.now(timezone.utc)) - verified.created_at
    if age > timedelta(hours=promotion.max_bundle_age_hours):
        raise PromotionRefused(
            f"the bundle of {name}/{version} is {age.total_seconds() / 3600:.0f} h old; at most "
            f"{promotion.max_bundle_age_hours:g} h is allowed: gate the version again"
        )
    blocked = registry.model_version(name, version).tags.get(BLOCKED_TAG)
    if blocked and blocked == digest:
        raise PromotionRefused(
            f"{name}/{version} was rolled back; promoting it again needs a new bundle"
        )
    _check_order(cfg, registry, name, version, stage)
    run = _proven_run(who, stage)
    approvals = _check_access(who, promotion.access_for(stage), stage)
    if promotion.check is not None:
        _check_runnable(promotion.check)
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
    race_from = None if expect_current is not None else _decision_time(decided_at, run)
    outcome = _move(registry, who, name, stage, expected, version, record, race_from)
    failed: str | None = None
    if promotion.deploy_dispatch and who.repo is not None:
        problem = _dispatch(who.repo, promotion.deploy_dispatch, record)
        failed = f"the deploy dispatch failed: {problem}" if problem else None
    if failed is None and promotion.deploy_command:
        problem = _deploy(promotion.deploy_command, name, version, stage)
        failed = f"the deploy command failed: {problem}" if problem else None
    if failed is None and promotion.check is not None:
        problem = _post_check(promotion.check, stage)
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
    race_from = _decision_time(decided_at, run)
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
    _deployment(who, outcome)
    return outcome


def _deployment(who: Who, outcome: Outcome) -> None:
    """A GitHub Deployment for the stage's environment, linking the run (when GitHub is there).
    The promotion has happened by now: a refusal here is a warning, not an undo."""
    if who.repo is None:
        return
    from mlgate.github import deployments
    from mlgate.github.client import NotPermitted, Rejected, Unreachable

    ref = outcome.record.get("git_sha") or os.environ.get("GITHUB_SHA")
    if not ref:
        outcome.warnings.append("no commit to attach a GitHub deployment to")
        return
    try:
        deployments.record(
            who.repo,
            ref=ref,
            environment=outcome.stage,
            description=outcome.line()[:140],
            payload={k: v for k, v in outcome.record.items() if k != "approvals"},
            state="success" if outcome.kind == "promotion" else "inactive",
            log_url=outcome.record.get("run_url"),
        )
    except (NotPermitted, Rejected, Unreachable) as exc:
        outcome.warnings.append(f"GitHub deployment not recorded: {exc}")


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


def _decision_time(decided_at: datetime, run: VerifiedRun | None) -> Decided:
    """A promotion in a proven workflow run was decided when the run (attempt) started."""
    from mlgate.promotion_race import Decided

    if run is None:
        return Decided(decided_at)
    started = min(decided_at, run.started_at) if run.started_at is not None else decided_at
    return Decided(started, actions_env.run_url())


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


def _check_order(
    cfg: MlgateConfig, registry: Registry, name: str, version: str, stage: str
) -> None:
    stages = cfg.promotion.stages
    index = stages.index(stage)
    if cfg.promotion.order == "any" or index == 0:
        return
    before = stages[index - 1]
    holder = registry.alias(name, before)
    if holder != version:
        raise PromotionRefused(
            f"{stage} takes only the version that holds {before} ({name}@{before} is "
            f"{holder or 'unset'}, not {version})"
        )


def _known_stage(cfg: MlgateConfig, stage: str) -> None:
    if stage not in cfg.promotion.stages:
        raise PromotionRefused(
            f"unknown stage {stage!r}; promotion.stages are {', '.join(cfg.promotion.stages)}"
        )


def _block(registry: Registry, name: str, version: str, digest: str) -> None:
    registry.set_version_tag(name, version, BLOCKED_TAG, digest)


def _dispatch(repo: Repository, event_type: str, record: dict[str, Any]) -> str | None:
    """Send the deploy event; why GitHub refused it, or None. Not retried: a dispatch that
    failed with a 5xx may still have started the deploying workflow."""
    from github.GithubException import GithubException

    payload = {
        "model": record["model"],
        "version": record["to_version"],
        "stage": record["stage"],
        "bundle_digest": record["bundle_digest"],
        "run_url": record.get("run_url"),
    }
    try:
        repo.requester.requestJsonAndCheck(
            "POST",
            f"{repo.url}/dispatches",
            input={"event_type": event_type, "client_payload": payload},
        )
    except GithubException as exc:
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        return f"GitHub answered {exc.status}: {message or exc}"
    except OSError as exc:  # connection refused, reset, DNS
        return f"GitHub is not reachable: {exc}"
    return None


def _deploy(command: list[str], name: str, version: str, stage: str) -> str | None:
    """Run the deploy hook; why it failed, or None."""
    env = os.environ | {"MLGATE_MODEL": name, "MLGATE_VERSION": version, "MLGATE_STAGE": stage}
    try:
        done = subprocess.run(
            command, env=env, timeout=DEPLOY_TIMEOUT_S, capture_output=True, text=True
        )
    except FileNotFoundError:
        return f"command not found: {command[0]}"
    except subprocess.TimeoutExpired:
        return f"timed out after {DEPLOY_TIMEOUT_S} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"exit code {done.returncode}: {last[:300]}"
    return None


def _check_runnable(check: PromotionCheck) -> None:
    """Refuse before anything moves when the post-promotion check could not even run: a missing
    tool must not roll back a good promotion."""
    if importlib.util.find_spec("locust") is None:
        raise PromotionRefused("promotion.check needs locust: pip install 'mlgate[load]'")
    if not Path(check.payload).is_file():
        raise PromotionRefused(f"promotion.check.payload {check.payload} is not a file")


def _post_check(check: PromotionCheck, stage: str) -> str | None:
    """Health, then a short open-loop load of the deployed model; why it failed, or None."""
    from mlgate.stages.interface import RunContext
    from mlgate.stages.load.config import LoadConfig
    from mlgate.stages.load.stage import LoadStage

    url = check.url.replace("{stage}", stage)
    problem = _wait_healthy(url, check.health_timeout)
    if problem:
        return problem
    load_config = LoadConfig.model_validate(
        {
            "url": url,
            "path": check.path,
            "payload": str(Path(check.payload).resolve()),
            "rate": check.rate,
            "duration": check.duration,
            "warmup": check.warmup,
            "health_path": None,  # checked above, on /ping or /health
            "timeout": check.warmup + check.duration + _CHECK_MARGIN_S,
        }
    )
    with tempfile.TemporaryDirectory(prefix="mlgate-check-") as scratch:
        evidence = LoadStage().run(load_config, RunContext(Path(scratch), None))
    if evidence.status == "error":
        return f"load of {url}{check.path}: {evidence.reason}"
    metrics = evidence.metrics
    requests, errors = int(metrics.get("requests") or 0), int(metrics.get("errors") or 0)
    if requests == 0:
        return f"no request to {url}{check.path} was measured"
    error_rate = float(metrics.get("error_rate") or 0)
    if error_rate > check.error_rate_max:
        return (
            f"error rate {error_rate:.2%} ({errors} of {requests} requests) is above "
            f"{check.error_rate_max:.2%}"
        )
    p95 = metrics.get("p95_ms")
    if check.p95_ms_max is not None:
        if not isinstance(p95, (int, float)):
            return "no p95 latency was measured"
        if p95 > check.p95_ms_max:
            return f"p95 latency {p95:g} ms is above {check.p95_ms_max:g} ms ({requests} requests)"
    return None


def _wait_healthy(url: str, timeout: float) -> str | None:
    """None once GET url/ping or url/health answers 200; otherwise the last answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 as well
    end = time.monotonic() + timeout
    last = "no attempt"
    while True:
        for path in _HEALTH_PATHS:
            try:
                wait = max(0.1, min(2.0, end - time.monotonic()))
                with opener.open(url + path, timeout=wait) as reply:
                    if reply.status == 200:
                        return None
                    last = f"GET {url}{path} answered {reply.status}"
            except urllib.error.HTTPError as exc:
                last = f"GET {url}{path} answered {exc.code}"
            except urllib.error.URLError as exc:
                reason = exc.reason
                why = (reason.strerror or str(reason)) if isinstance(reason, OSError) else reason
                last = f"GET {url}{path} failed: {why}"
            except OSError as exc:  # a timeout or reset while reading the answer
                last = f"GET {url}{path} failed: {exc.strerror or type(exc).__name__}"
        if time.monotonic() + _HEALTH_POLL_S >= end:
            return f"not healthy within {timeout:g} s: {last}"
        time.sleep(_HEALTH_POLL_S)
