"""`mlgate bundle`, `promote`, `rollback` and `history`: the registry side of a model version."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mlgate import actions_env
from mlgate.cli.options import config_option, evidence_option, load_config, path_option
from mlgate.errors import ConfigError, MlgateError

model_option = click.option(
    "--model", "name", default=None, help="Registered model [default: promotion.model]."
)


@click.group(name="bundle")
def bundle_group() -> None:
    """Evidence bundles: the verdict, its evidence and the model's digest, in one document."""


@bundle_group.command("create")
@config_option
@evidence_option
@model_option
@click.option("--version", "model_version", required=True, help="Model version the gate judged.")
@path_option(
    "--verdict", "verdict_path", default=".mlgate/verdict.json", help="The gate's verdict."
)
@path_option(
    "--output", default=".mlgate/bundle", help="Directory to write bundle.json and its evidence to."
)
@click.option(
    "--register/--no-register",
    default=True,
    show_default=True,
    help="Store the bundle with the model version (its run's artifacts and a tag).",
)
def bundle_create(
    config_path: Path | None,
    evidence_dir: Path | None,
    name: str | None,
    model_version: str,
    verdict_path: Path,
    output: Path,
    register: bool,
) -> None:
    """Write the evidence bundle of a model version: canonical JSON whose sha256 is its identity.
    Refused, writing nothing, unless the evidence is about that version (a stage evaluated it:
    its files digest) and every evidence file and artifact is there as the gate judged it.

    Registry: MLFLOW_TRACKING_URI, else the sqlite store .mlgate/mlflow.db.
    """
    from mlgate import bundle

    cfg = load_config(config_path)
    model = _model_name(name, cfg)
    registry = _registry()
    directory, digest = bundle.create(
        cfg,
        verdict_path,
        evidence_dir or Path(cfg.evidence_dir),
        registry,
        model,
        model_version,
        output,
    )
    from mlgate.report import card as model_card

    # The card goes beside bundle.json (not inside it: the card names the bundle's digest).
    model_card.write(
        model_card.build(cfg, directory / bundle.EVIDENCE_DIR, directory / bundle.BUNDLE_FILE),
        directory,
    )
    where = bundle.register(registry, directory, digest) if register else None
    click.echo(f"mlgate: bundle {digest} -> {directory / bundle.BUNDLE_FILE}", err=True)
    if where:
        click.echo(f"mlgate: registered with models:/{model}/{model_version} ({where})", err=True)
    actions_env.set_output("bundle-digest", digest)
    actions_env.set_output("bundle-path", str(directory / bundle.BUNDLE_FILE))


@bundle_group.command("verify")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option(
    "--offline",
    is_flag=True,
    help="Do not compare the model files with the registry's (everything else is checked).",
)
def bundle_verify(bundle_path: Path, offline: bool) -> None:
    """Recompute every digest of BUNDLE (bundle.json or its directory) and re-evaluate its
    verdict from its evidence. Exit 0 when everything matches, 1 naming the first difference,
    2 when there is no bundle at BUNDLE."""
    from mlgate import bundle

    file = bundle_path / bundle.BUNDLE_FILE if bundle_path.is_dir() else bundle_path
    if not file.is_file():
        raise MlgateError(f"{file}: no bundle there (give bundle.json or its directory)")
    try:
        verified = bundle.verify(bundle_path, None if offline else _registry())
    except bundle.BundleError as exc:
        click.echo(f"mlgate: bundle does not verify: {exc}", err=True)
        sys.exit(1)
    model = verified.model
    click.echo(
        f"mlgate: bundle {verified.digest} verifies: models:/{model['name']}/{model['version']}, "
        f"verdict {verified.outcome}",
        err=True,
    )


@click.command()
@config_option
@model_option
@click.option("--version", "model_version", required=True, help="Version to promote.")
@click.option("--to", "stage", required=True, help="Stage (an MLflow alias) to promote to.")
@click.option(
    "--expect-current",
    default=None,
    help="Version the stage must point at now ('none': unset) [default: where it pointed when "
    "this command started, and not moved since].",
)
@click.option("--actor", default=None, help="Who promotes (outside GitHub Actions only).")
@click.option("--reason", default="", help="Why, for the ledger.")
def promote(
    config_path: Path | None,
    name: str | None,
    model_version: str,
    stage: str,
    expect_current: str | None,
    actor: str | None,
    reason: str,
) -> None:
    """Move a stage's alias to a version whose registered bundle verifies and passes, if the
    actor may; recorded in the ledger and as a GitHub deployment. Exit 1 when refused."""
    from mlgate import promotion, promotion_race

    cfg = load_config(config_path)
    model = _model_name(name, cfg)
    registry = _registry()
    who = _who(actor)
    _promotion_result(
        lambda: promotion.promote(
            cfg,
            registry,
            who,
            model,
            model_version,
            stage,
            expect_current,
            reason,
            decided_at=promotion_race.process_started_at(),
        )
    )


@click.command()
@config_option
@model_option
@click.option("--stage", required=True, help="Stage (alias) to roll back.")
@click.option("--to", "target", default=None, help="Version [default: the previous one].")
@click.option("--actor", default=None, help="Who rolls back (outside GitHub Actions only).")
@click.option("--reason", default="", help="Why, for the ledger.")
@click.option(
    "--override-reason",
    default=None,
    help="Roll back to a version that never held the stage, is blocked or has no bundle; "
    "needs the last stage's access rule; recorded.",
)
def rollback(
    config_path: Path | None,
    name: str | None,
    stage: str,
    target: str | None,
    actor: str | None,
    reason: str,
    override_reason: str | None,
) -> None:
    """Move a stage's alias back to the version it held before (from the ledger) or --to, a
    version that held the stage and is not blocked; the version rolled away from is blocked
    until it has a new bundle. Exit 1 when refused."""
    from mlgate import promotion, promotion_race

    cfg = load_config(config_path)
    model = _model_name(name, cfg)
    registry = _registry()
    who = _who(actor)
    started = promotion_race.process_started_at()
    _promotion_result(
        lambda: promotion.rollback(
            cfg, registry, who, model, stage, target, reason, override_reason, started
        )
    )


@click.command()
@config_option
@model_option
@click.option("--json", "as_json", is_flag=True, help="The ledger records as JSON.")
def history(config_path: Path | None, name: str | None, as_json: bool) -> None:
    """Print the promotion ledger of a model: what held each stage, from when, by whom."""
    from mlgate import promotion

    cfg = load_config(config_path)
    model = _model_name(name, cfg)
    report = promotion.history(_registry(), model)
    records = report.records
    broken = {b.seq: b.reason for b in report.breaks}
    if as_json:
        document = {"model": model, "records": records, "legacy_records": report.legacy}
        document["chain_breaks"] = [{"seq": s, "reason": r} for s, r in broken.items()]
        click.echo(json.dumps(document, indent=2))
    elif not records:
        click.echo(f"{model}: no promotion recorded")
    for number, record in enumerate([] if as_json else records, 1):
        moved = f"{record.get('from_version') or '-'} -> {record.get('to_version') or '-'}"
        click.echo(
            f"#{number} {record.get('at', '?')} {record.get('kind', '?'):<13} "
            f"{record.get('stage', '?'):<11} {moved:<9} by {record.get('actor', '?')}"
            + (f" ({record['reason']})" if record.get("reason") else "")
            + (f"  <-- CHAIN BROKEN: {broken[number]}" if number in broken else "")
        )
    if report.legacy:
        click.echo(
            f"mlgate: note: records 1-{report.legacy} predate the ledger's hash chain; edits to "
            "them before the last one cannot be detected",
            err=True,
        )
    if broken:
        click.echo(f"mlgate: error: the ledger of {model} is broken: {report.summary()}", err=True)
        sys.exit(1)


def _model_name(name: str | None, cfg: Any) -> str:
    model = name or cfg.promotion.model
    if not model:
        raise ConfigError("no model: give --model or set promotion.model in mlgate.yml")
    return str(model)


def _registry() -> Any:
    from mlgate.registry.mlflow_registry import Registry

    return Registry.connect()


def _who(actor_flag: str | None) -> Any:
    """The actor, and GitHub to check them against when running in GitHub Actions."""
    from mlgate import promotion

    actor = promotion.actor_from_context(actor_flag)
    if not actions_env.in_actions():
        return promotion.Who(actor=actor, repo=None, run_id=None)
    # Claimed by environment variables: promotion proves the run through the API first.
    env = os.environ
    run_id, attempt = env.get("GITHUB_RUN_ID", ""), env.get("GITHUB_RUN_ATTEMPT", "")
    claimed = promotion.Who(
        actor=actor,
        repo=None,
        run_id=int(run_id) if run_id.isdigit() else None,
        sha=env.get("GITHUB_SHA") or None,
        attempt=int(attempt) if attempt.isdigit() else None,
        in_actions=True,
    )
    if not env.get("GITHUB_TOKEN"):
        return claimed
    from mlgate.github import context as github_context
    from mlgate.github.client import connect, with_retry

    ctx = github_context.from_env()
    repo = with_retry(lambda: connect(ctx, 0).get_repo(ctx.repository), "read the repository")
    return dataclasses.replace(claimed, repo=repo)


def _promotion_result(action: Callable[[], Any]) -> None:
    from mlgate import promotion
    from mlgate.report import escape

    try:
        outcome = action()
    except promotion.PromotionRefused as exc:
        click.echo(f"mlgate: refused: {exc}", err=True)
        _summary(f"### ❌ mlgate: refused\n\n{escape.inline(str(exc))}\n")
        actions_env.set_output("result", "refused")
        sys.exit(1)
    click.echo(f"mlgate: {outcome.line()}", err=True)
    for warning in outcome.warnings:
        click.echo(f"mlgate: warning: {warning}", err=True)
    undone = outcome.kind == "auto-rollback"  # the promotion happened and was taken back
    icon = "❌" if undone else "✅"
    _summary(f"### {icon} mlgate: {escape.inline(outcome.line())}\n")
    actions_env.set_output("result", outcome.kind)
    actions_env.set_output("ledger-sequence", str(outcome.sequence))
    if undone:
        sys.exit(1)


def _summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown)
