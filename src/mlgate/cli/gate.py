"""`mlgate gate`, `report`, `card` and `fork-evidence`: the verdict and what is told of it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from mlgate import actions_env
from mlgate.cli.options import config_option, evidence_option, load_config, path_option
from mlgate.errors import ConfigError, MlgateError

EXIT_PUBLISH_FAILED = 4


@click.command()
@config_option
@evidence_option
@path_option(
    "--output", default=".mlgate/verdict.json", help="Where the verdict is written.", file=True
)
def gate(config_path: Path | None, evidence_dir: Path | None, output: Path) -> None:
    """Judge all evidence by the config's policy and write the verdict.

    Exit 0 pass (also with warnings: policy.<stage>.on_inconclusive: warn), 1 fail,
    3 inconclusive (2: usage or config error).
    """
    from mlgate import policy
    from mlgate.verdict import EXIT_CODES

    cfg = load_config(config_path or Path("mlgate.yml"))
    verdict = policy.evaluate(cfg, evidence_dir or Path(cfg.evidence_dir))
    policy.write(verdict, output)
    for rule in verdict.rules:
        click.echo(f"{rule.outcome:>12}  {rule.reason}", err=True)
    if actions_env.in_actions():
        # A rule let through as a warning (on_inconclusive: warn) is annotated on the run.
        for rule in verdict.warnings:
            click.echo(actions_env.warning_command(f"mlgate {rule.rule}", rule.reason), err=True)
    warned = f" with {len(verdict.warnings)} warning(s)" if verdict.warnings else ""
    click.echo(f"mlgate: verdict: {verdict.outcome}{warned} -> {output}", err=True)
    actions_env.set_output("verdict", verdict.outcome)
    sys.exit(EXIT_CODES[verdict.outcome])


@click.command()
@config_option
@evidence_option
@path_option(
    "--verdict",
    "verdict_path",
    default=".mlgate/verdict.json",
    help="Verdict written by 'mlgate gate'.",
    file=True,
)
@path_option(
    "--output-dir",
    default=".mlgate",
    help="Where report.md and report.html are written.",
    directory=True,
)
@click.option(
    "--github-token",
    envvar="GITHUB_TOKEN",
    default=None,
    show_envvar=True,
    help="Token for publishing to GitHub.",
)
@click.option(
    "--pr",
    "pr_number",
    type=int,
    envvar="MLGATE_PR",
    show_envvar=True,
    default=None,
    help="Pull request to comment on [default: from the event payload].",
)
@click.option(
    "--sha",
    envvar="MLGATE_SHA",
    show_envvar=True,
    default=None,
    help="Commit the verdict is about and checks go on [default: the PR head or GITHUB_SHA].",
)
@click.option(
    "--comment",
    type=click.Choice(["always", "on-change", "on-failure", "off"]),
    default=None,
    help="When to write the sticky PR comment [default: report.comment from the config].",
)
@click.option(
    "--artifact-name",
    default=None,
    help="Report artifact named in truncation notices [default: report.artifact_name].",
)
@click.option(
    "--check-name",
    default=None,
    help="Name of the aggregate check (stage checks are NAME/<stage>) and key of the sticky "
    "comment; give each gating job its own [default: report.check_name, mlgate].",
)
@click.option("--local", is_flag=True, help="Only write local reports, even inside GitHub Actions.")
def report(
    config_path: Path | None,
    evidence_dir: Path | None,
    verdict_path: Path,
    output_dir: Path,
    github_token: str | None,
    pr_number: int | None,
    sha: str | None,
    comment: str | None,
    artifact_name: str | None,
    check_name: str | None,
    local: bool,
) -> None:
    """Report the verdict: to GitHub inside Actions, else to the terminal and local files."""
    from mlgate.report import model
    from mlgate.report.interface import DeliveryFailed, ReportOptions
    from mlgate.report.sinks import SINKS

    cfg = load_config(config_path or Path("mlgate.yml"))
    if comment:
        cfg.report.comment = comment
    if artifact_name:
        cfg.report.artifact_name = artifact_name
    if check_name:
        cfg.report = _with_check_name(cfg.report, check_name)
    rep = model.load(cfg, verdict_path, evidence_dir or Path(cfg.evidence_dir), sha)
    delay = _seconds_from_env("MLGATE_WRITE_DELAY_SECONDS")
    options = ReportOptions(
        output_dir=output_dir,
        settings=cfg.report,
        in_actions=actions_env.in_actions(),
        local_only=local,
        github_token=github_token,
        pr_number=pr_number,
        sha=sha,
        write_delay=cfg.report.write_delay_seconds if delay is None else delay,
    )
    failed = False
    for sink in SINKS:
        if not sink.wanted(options):
            continue
        try:
            delivery = sink.deliver(rep, options)
        except DeliveryFailed as exc:
            click.echo(f"mlgate: error: {exc}", err=True)
            failed = True
            continue
        for warning in delivery.warnings:
            click.echo(f"::warning title=mlgate::{warning}", err=True)
        click.echo(f"mlgate: report: {sink.name}: {delivery.done}", err=True)
    if failed:
        sys.exit(EXIT_PUBLISH_FAILED)


@click.command("fork-evidence")
@click.option(
    "--config",
    "config_name",
    default="mlgate.yml",
    show_default=True,
    help="The config file, relative to --project-dir, as the pull request's base branch holds "
    "it: read through the API at that branch's head, never from this checkout or the pull "
    "request.",
)
@click.option(
    "--project-dir",
    default=".",
    show_default=True,
    help="The project's directory in the repository (this command runs in the same directory "
    "on the runner).",
)
@path_option(
    "--base-dir",
    default=".mlgate/base",
    help="Where the base branch's config is copied for 'mlgate gate' and 'mlgate report' "
    "(step output config).",
    directory=True,
)
@evidence_option
@click.option(
    "--artifact-name",
    default="mlgate-report",
    show_default=True,
    help="The pull request run's report artifact.",
)
@click.option(
    "--member-dir",
    default="evidence",
    show_default=True,
    help="Folder of the evidence inside the artifact.",
)
@click.option(
    "--check-name",
    default=None,
    help="Aggregate check that fails when the evidence or the base branch's config cannot be "
    "taken [default: report.check_name of the base branch's config, mlgate].",
)
def fork_evidence(
    config_name: str,
    project_dir: str,
    base_dir: Path,
    evidence_dir: Path | None,
    artifact_name: str,
    member_dir: str,
    check_name: str | None,
) -> None:
    """On workflow_run: take a (fork's) pull request run's evidence, to judge it with the
    config of the pull request's base branch.

    Resolves the pull request through the API, requires its head to be the run's commit
    (else publishes nothing, exit 1), reads the base branch's config and waiver file through
    the API (else fails the aggregate check with the reason, exit 1), takes only mlgate's
    evidence from the run's artifact (else fails the aggregate check with the reason, exit 1),
    and sets the step outputs pr-number, head-sha, base-ref, base-sha and config (the base
    config's copy) for `mlgate gate` and `mlgate report` (--config, MLGATE_SHA, MLGATE_PR).
    """
    from mlgate.config import ReportConfig
    from mlgate.github import fork_publish

    if check_name:
        check_name = _with_check_name(ReportConfig(), check_name).check_name
    taken = fork_publish.take(
        config_name=config_name,
        project_dir=project_dir,
        base_dir=base_dir,
        evidence_dir=evidence_dir,
        artifact_name=artifact_name,
        member_dir=member_dir,
        check_name=check_name,
    )
    origin = f" made in {taken.evidence_from}" if taken.evidence_from else ""
    click.echo(
        f"mlgate: fork-evidence: pull request #{taken.pr_number} at {taken.head_sha[:12]}: "
        f"took {', '.join(taken.files)}{origin}; judged by the config of base branch "
        f"{taken.base.ref} at {taken.base.sha[:12]}",
        err=True,
    )
    actions_env.set_output("pr-number", str(taken.pr_number))
    actions_env.set_output("head-sha", taken.head_sha)
    actions_env.set_output("base-ref", taken.base.ref)
    actions_env.set_output("base-sha", taken.base.sha)
    actions_env.set_output("config", str(taken.base.config_path))


def _with_check_name(settings: Any, check_name: str) -> Any:
    """The report settings with another check name, checked as the config's would be."""
    from pydantic import ValidationError

    try:
        return type(settings).model_validate(settings.model_dump() | {"check_name": check_name})
    except ValidationError:  # its message quotes the pattern; this one says it in words
        raise ConfigError(
            f"--check-name must be 1 to 100 letters, digits, '.', '_', '/' or '-', starting "
            f"with a letter or digit, not {check_name!r}"
        ) from None


@click.command()
@config_option
@evidence_option
@path_option("--output-dir", default=".mlgate", help="Where model-card.md and model-card.html go.")
@path_option(
    "--bundle",
    "bundle_file",
    default=".mlgate/bundle/bundle.json",
    help="The evidence bundle, for the lineage (skipped when absent).",
)
def card(
    config_path: Path | None, evidence_dir: Path | None, output_dir: Path, bundle_file: Path
) -> None:
    """Write the model card (Markdown and self-contained HTML) from `card:` in mlgate.yml and
    the evidence: every stage's results with intervals and slices, and the lineage."""
    from mlgate.report import card as model_card

    cfg = load_config(config_path)
    content = model_card.build(cfg, evidence_dir or Path(cfg.evidence_dir), bundle_file)
    md, page = model_card.write(content, output_dir)
    click.echo(f"mlgate: model card -> {md}, {page}", err=True)


def _seconds_from_env(name: str) -> float | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise MlgateError(f"{name} must be a number of seconds, not {raw!r}")
    return value
