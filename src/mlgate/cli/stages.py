"""The stage commands (test, bench, load, drift, probe, quality, scan) and `mlgate run`: each
takes an option per config field it names (options.stage_command) and runs the stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mlgate.cli.options import (
    FieldOption,
    StageCommand,
    command_options,
    config_option,
    evidence_option,
    load_config,
    stage_command,
)
from mlgate.cli.stage_run import EXIT_STAGE_ERROR, command_overrides, given, overridden, run_stage
from mlgate.errors import MlgateError

# What the scan looks at: targets given on the command line replace all of the config's.
SCAN_TARGETS: dict[str, Any] = {
    "sources": [],
    "requirements": [],
    "environments": [],
    "image": None,
    "dockerfile": None,
    "models": [],
}


def _command_stage(stage: str, name: str, doc: str, *reports: str | FieldOption) -> StageCommand:
    """The command of a stage that runs COMMAND (after --) and/or reads the `reports` named."""
    keys = tuple(report.key if isinstance(report, FieldOption) else report for report in reports)

    def run(
        config_path: Path | None,
        evidence_dir: Path | None,
        command_line: str | None,
        command: tuple[str, ...],
        **fields: Any,
    ) -> None:
        cfg = load_config(config_path)
        overrides = command_overrides(given(fields), keys, command_line, command)
        run_stage(stage, overridden(stage, cfg, overrides), cfg, evidence_dir)

    run.__doc__ = doc
    settings = {"ignore_unknown_options": True}  # the command's own options, after --
    return stage_command(stage, *reports, name=name, context_settings=settings)(
        command_options(run)
    )


test = _command_stage(
    "tests",
    "test",
    """Run the test COMMAND (after --) and/or ingest JUnit XML into tests evidence.

    Exits 0 once evidence is written, whatever the tests found: the gate decides.
    """,
    "junit",
    FieldOption("reruns", "--rerun-junit"),
)

bench = _command_stage(
    "bench",
    "bench",
    """Run the benchmark COMMAND (after --) and/or ingest pytest-benchmark JSON into evidence.

    Exits 0 once evidence is written, whatever the benchmarks measured: the gate decides.
    """,
    "json",
)


@stage_command(
    "load",
    *("url", "path", "payload", "locustfile", "duration", "warmup", "users", "rate", "baseline"),
)
def load(config_path: Path | None, evidence_dir: Path | None, **fields: Any) -> None:
    """Load a running model server with locust and write load evidence.

    Closed loop with --users, open loop with --rate (latency counted from each request's
    scheduled time, so queueing is not hidden). Exits 0 once evidence is written.
    """
    overrides = given(fields)
    if "users" in overrides and "rate" in overrides:
        raise MlgateError("give --users (closed loop) or --rate (open loop), not both")
    cfg = load_config(config_path)
    # One mode from the command line replaces the config's mode.
    if "users" in overrides:
        overrides["rate"] = None
    if "rate" in overrides:
        overrides["users"] = None
    run_stage("load", overridden("load", cfg, overrides), cfg, evidence_dir)


@stage_command("drift", "reference", "current")
@click.option(
    "--json", "as_json", is_flag=True, help="Print each feature's PSI, p-value and drift as JSON."
)
@click.option(
    "--dispatch",
    "send",
    is_flag=True,
    help="Start retraining through stages.drift.dispatch when more features drifted than "
    "policy.drift.max_drifted_features allows (GITHUB_TOKEN, GITHUB_REPOSITORY).",
)
def drift(
    config_path: Path | None, evidence_dir: Path | None, as_json: bool, send: bool, **fields: Any
) -> None:
    """Compare current data with reference data, feature by feature (PSI and a two-sample
    test), and write drift evidence.

    Exits 0 once evidence is written, whatever drifted: the gate decides.
    """

    from mlgate import evidence
    from mlgate.stages.drift import dispatch as drift_dispatch
    from mlgate.stages.drift import stage as drift_stage

    cfg = load_config(config_path)
    stage_config = overridden("drift", cfg, given(fields))
    target = stage_config.dispatch if send else None
    if send and target is None:
        raise MlgateError("--dispatch needs stages.drift.dispatch in the config")
    directory = evidence_dir or Path(cfg.evidence_dir)
    run_stage("drift", stage_config, cfg, directory)  # exits 4 on error evidence
    result = evidence.read(evidence.evidence_path(directory, "drift"))
    if as_json:
        click.echo(json.dumps(drift_stage.as_json(result)))
    if target is not None:
        from mlgate.github.context import from_env

        line = drift_dispatch.dispatch(
            result,
            target,
            from_env(),
            max_drifted_features=cfg.stage_policy("drift").max_drifted_features,
        )
        click.echo(f"mlgate: drift: {line}", err=True)


@stage_command("probe", "url", "path", "payload", "perturbations", "request_timeout")
def probe(config_path: Path | None, evidence_dir: Path | None, **fields: Any) -> None:
    """Send a running model server malformed requests (each must get a 4xx) and slightly
    perturbed valid ones (its predictions must hold), and write probe evidence.

    Exits 0 once evidence is written, whatever the server did: the gate decides.
    """

    cfg = load_config(config_path)
    run_stage("probe", overridden("probe", cfg, given(fields)), cfg, evidence_dir)


@stage_command("quality", "candidate", "champion", "data", "target")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the metrics, intervals and rules as JSON."
)
def quality(
    config_path: Path | None, evidence_dir: Path | None, as_json: bool, **fields: Any
) -> None:
    """Evaluate the candidate and the champion model on the same data (metrics, paired
    bootstrap intervals, slices) and write quality evidence.

    Exits 0 once evidence is written, whatever the comparison found: the gate decides.
    """

    from mlgate import evidence
    from mlgate.stages.quality import stage as quality_stage

    cfg = load_config(config_path)
    stage_config = overridden("quality", cfg, given(fields))
    data = fields["data"]
    if data is not None and (Path(stage_config.working_directory) / data).is_dir():
        # Bad input on the command line, not an outcome of the stage: exit 2, no evidence.
        raise MlgateError(f"--data {data}: is a directory, not a CSV or Parquet file")
    directory = evidence_dir or Path(cfg.evidence_dir)
    run_stage("quality", stage_config, cfg, directory)  # exits 4 on error evidence
    if as_json:
        result = evidence.read(evidence.evidence_path(directory, "quality"))
        policy = cfg.stage_policy("quality")
        click.echo(json.dumps(quality_stage.as_json(result, policy)))


@stage_command(
    "scan",
    FieldOption("sources", "--source"),
    "requirements",
    FieldOption("environments", "--environment"),
    "image",
    "dockerfile",
    FieldOption("models", "--model"),
    "osv_db",
    "waivers",
)
def scan(config_path: Path | None, evidence_dir: Path | None, **fields: Any) -> None:
    """Scan code (bandit), requirements and installed environments (pip-audit), an image
    (trivy) and model files or registered versions (an allow list of imports with picklescan as
    a second opinion, and fickling) and write scan evidence: every finding with its advisory or
    rule id and aliases, SARIF per scanner, the image's SBOM. Targets given here replace the
    config's.

    A scanner that is missing or fails makes the stage an error. Exits 0 once evidence is
    written; `mlgate gate` applies the policy and the waivers.
    """

    cfg = load_config(config_path)
    overrides = given(fields)
    targets = {key: overrides.pop(key) for key in SCAN_TARGETS if key in overrides}
    if any(targets.values()):
        # Targets on the command line say what to scan now, instead of the config's.
        overrides |= SCAN_TARGETS | {key: value for key, value in targets.items() if value}
    run_stage("scan", overridden("scan", cfg, overrides), cfg, evidence_dir)


@click.command()
@config_option
@evidence_option
@click.option("--stage", "stages", multiple=True, help="Run only this stage; repeatable.")
def run(config_path: Path | None, evidence_dir: Path | None, stages: tuple[str, ...]) -> None:
    """Run every stage enabled in the config, writing evidence for each; the scan first, so
    that stages which load the model see its verdict."""
    cfg = load_config(config_path or Path("mlgate.yml"))
    selected = sorted(stages or cfg.enabled_stages, key=lambda name: name != "scan")
    unknown = [s for s in selected if s not in cfg.enabled_stages]
    if unknown:
        raise MlgateError(f"stage not enabled in the config: {', '.join(unknown)}")
    failed = []
    for name in selected:
        try:
            run_stage(name, cfg.stage_config(name), cfg, evidence_dir)
        except SystemExit as exc:
            if exc.code:
                failed.append(name)
    if failed:
        sys.exit(EXIT_STAGE_ERROR)
