"""Running a stage from the command line: its config with the options on top, its evidence."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mlgate import actions_env
from mlgate.cli.options import config_model
from mlgate.errors import ConfigError, MlgateError

EXIT_STAGE_ERROR = 4


def given(fields: dict[str, Any]) -> dict[str, Any]:
    """The field options given on the command line (a repeated one as a list)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in fields.items()
        if value is not None and value != ()
    }


def command_overrides(
    options: dict[str, Any],
    reports: tuple[str, ...],
    command_line: str | None,
    command: tuple[str, ...],
) -> dict[str, Any]:
    """The given options of a stage that runs a command and reads its `reports`, with the
    command to run: after --, with --command, none, or the config's."""
    overrides = dict(options)
    if any(key in options for key in reports):
        # Reports named on the command line are ingested as they are: the config's command
        # would write other reports (the contract: --junit/--json ingest, -- CMD runs first).
        overrides["command"] = None
    if command and command_line:
        raise MlgateError("give the command either after -- or with --command, not both")
    if command or command_line:
        overrides["command"] = list(command) if command else command_line
    return overrides


def overridden(name: str, cfg: Any, overrides: dict[str, Any]) -> Any:
    """The stage's config section from mlgate.yml with the command line's options on top."""
    from pydantic import ValidationError

    from mlgate import config

    base = cfg.stage_config(name)
    document = (base.model_dump(by_alias=True) if base else {}) | overrides
    try:
        return config_model(name).model_validate(document)
    except ValidationError as exc:
        raise ConfigError(config.describe(exc, f"mlgate {name} options")) from None


def run_context(cfg: Any, directory: Path, stage: str | None = None) -> Any:
    from mlgate.stages.interface import RunContext

    # The scan stage and policy: what a stage that loads a model consults first. No scan
    # policy section gives None, read as its defaults (model_guard), so a stage that loads no
    # model does not import the scan stage's models.
    own = cfg.stage_policy(stage) if stage else None
    return RunContext(
        directory, cfg.digest, cfg.stage_config("scan"), cfg.named_policy("scan"), own
    )


def run_stage(name: str, stage_config: Any, cfg: Any, evidence_dir: Path | None) -> None:
    from mlgate import evidence
    from mlgate.stages import STAGES

    directory = evidence_dir or Path(cfg.evidence_dir)
    started = evidence.now()
    try:
        result = STAGES[name].run(stage_config, run_context(cfg, directory, name))
    except Exception as exc:
        # Whatever went wrong, the gate must see this run's crash rather than an older
        # document that may say "passed".
        result = evidence.crashed(name, started, exc, cfg.digest)
    path = evidence.write(result, directory)
    click.echo(f"mlgate: {name}: {STAGES[name].summary(result)} -> {path}", err=True)
    actions_env.set_output("status", result.status)
    actions_env.set_output("evidence-path", str(path))
    if result.status == "error":
        sys.exit(EXIT_STAGE_ERROR)
