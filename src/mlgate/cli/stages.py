"""The stage commands (test, bench, load, drift, probe, quality, scan) and `mlgate run`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mlgate.cli.options import command_options, config_option, evidence_option, load_config
from mlgate.cli.stage_run import EXIT_STAGE_ERROR, command_stage_config, overridden, run_stage
from mlgate.errors import MlgateError


@click.command(context_settings={"ignore_unknown_options": True})
@config_option
@evidence_option
@click.option(
    "--junit",
    "junit_paths",
    multiple=True,
    help="JUnit XML file or glob; repeatable [default: stages.tests.junit, .mlgate/junit.xml].",
)
@click.option(
    "--rerun-junit",
    "rerun_paths",
    multiple=True,
    help="JUnit XML file or glob of a re-run (e.g. pytest --last-failed); repeatable. A test "
    "that failed in --junit reports and passed here counts as passed and flaky.",
)
@command_options
def test(
    config_path: Path | None,
    evidence_dir: Path | None,
    junit_paths: tuple[str, ...],
    rerun_paths: tuple[str, ...],
    command_line: str | None,
    working_directory: str | None,
    timeout: float | None,
    command: tuple[str, ...],
) -> None:
    """Run the test COMMAND (after --) and/or ingest JUnit XML into tests evidence.

    Exits 0 once evidence is written, whatever the tests found: the gate decides.
    """
    cfg = load_config(config_path)
    reports = {"junit": list(junit_paths), "reruns": list(rerun_paths)}
    stage = command_stage_config(
        "tests", cfg, reports, command_line, command, working_directory, timeout
    )
    run_stage("tests", stage, cfg, evidence_dir)


@click.command(context_settings={"ignore_unknown_options": True})
@config_option
@evidence_option
@click.option(
    "--json",
    "json_paths",
    multiple=True,
    help="pytest-benchmark JSON file or glob; repeatable "
    "[default: stages.bench.json, .mlgate/benchmark.json].",
)
@command_options
def bench(
    config_path: Path | None,
    evidence_dir: Path | None,
    json_paths: tuple[str, ...],
    command_line: str | None,
    working_directory: str | None,
    timeout: float | None,
    command: tuple[str, ...],
) -> None:
    """Run the benchmark COMMAND (after --) and/or ingest pytest-benchmark JSON into evidence.

    Exits 0 once evidence is written, whatever the benchmarks measured: the gate decides.
    """
    cfg = load_config(config_path)
    reports = {"json": list(json_paths)}
    stage = command_stage_config(
        "bench", cfg, reports, command_line, command, working_directory, timeout
    )
    run_stage("bench", stage, cfg, evidence_dir)


@click.command()
@config_option
@evidence_option
@click.option(
    "--url", default=None, help="Base URL of the running server [default: stages.load.url]."
)
@click.option(
    "--path", "endpoint", default=None, help="Endpoint to post to [default: /invocations]."
)
@click.option("--payload", default=None, help="JSON-lines file: one request body per line.")
@click.option("--locustfile", default=None, help="A locust scenario instead of the built-in one.")
@click.option("--duration", type=float, default=None, help="Seconds measured [default: 30].")
@click.option(
    "--warmup", type=float, default=None, help="Seconds of load not measured [default: 5]."
)
@click.option("--users", type=int, default=None, help="Closed loop: concurrent users [default: 4].")
@click.option("--rate", type=float, default=None, help="Open loop: requests per second.")
@click.option(
    "--baseline",
    default=None,
    help="Load evidence or raw sample file to compare against (regressions are judged by "
    "the policy's tolerance).",
)
@click.option("--working-directory", default=None, help="Where relative paths start.")
@click.option("--timeout", type=float, default=None, help="Seconds before the stage is stopped.")
def load(
    config_path: Path | None,
    evidence_dir: Path | None,
    url: str | None,
    endpoint: str | None,
    payload: str | None,
    locustfile: str | None,
    duration: float | None,
    warmup: float | None,
    users: int | None,
    rate: float | None,
    baseline: str | None,
    working_directory: str | None,
    timeout: float | None,
) -> None:
    """Load a running model server with locust and write load evidence.

    Closed loop with --users, open loop with --rate (latency counted from each request's
    scheduled time, so queueing is not hidden). Exits 0 once evidence is written.
    """

    if users is not None and rate is not None:
        raise MlgateError("give --users (closed loop) or --rate (open loop), not both")
    cfg = load_config(config_path)
    options = {
        "url": url,
        "path": endpoint,
        "payload": payload,
        "locustfile": locustfile,
        "duration": duration,
        "warmup": warmup,
        "baseline": baseline,
        "working_directory": working_directory,
        "timeout": timeout,
    }
    overrides: dict[str, Any] = {key: value for key, value in options.items() if value is not None}
    # One mode from the command line replaces the config's mode.
    if users is not None:
        overrides |= {"users": users, "rate": None}
    if rate is not None:
        overrides |= {"rate": rate, "users": None}
    stage_config = overridden("load", cfg, overrides)
    run_stage("load", stage_config, cfg, evidence_dir)


@click.command()
@config_option
@evidence_option
@click.option(
    "--reference", default=None, help="Reference data, CSV or Parquet [default: stages.drift]."
)
@click.option(
    "--current", default=None, help="Current data, CSV or Parquet [default: stages.drift]."
)
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
@click.option("--working-directory", default=None, help="Where relative paths start.")
@click.option("--timeout", type=float, default=None, help="Seconds before the stage is stopped.")
def drift(
    config_path: Path | None,
    evidence_dir: Path | None,
    reference: str | None,
    current: str | None,
    as_json: bool,
    send: bool,
    working_directory: str | None,
    timeout: float | None,
) -> None:
    """Compare current data with reference data, feature by feature (PSI and a two-sample
    test), and write drift evidence.

    Exits 0 once evidence is written, whatever drifted: the gate decides.
    """

    from mlgate import evidence
    from mlgate.stages import drift as drift_stage

    cfg = load_config(config_path)
    options = {
        "reference": reference,
        "current": current,
        "working_directory": working_directory,
        "timeout": timeout,
    }
    overrides = {key: value for key, value in options.items() if value is not None}
    stage_config = overridden("drift", cfg, overrides)
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

        line = drift_stage.dispatch(
            result,
            target,
            from_env(),
            max_drifted_features=cfg.stage_policy("drift").max_drifted_features,
        )
        click.echo(f"mlgate: drift: {line}", err=True)


@click.command()
@config_option
@evidence_option
@click.option(
    "--url", default=None, help="Base URL of the running server [default: stages.probe.url]."
)
@click.option(
    "--path", "endpoint", default=None, help="Endpoint to post to [default: /invocations]."
)
@click.option("--payload", default=None, help="JSON-lines file of valid requests, one per line.")
@click.option(
    "--perturbations", type=int, default=None, help="Perturbed valid requests [default: 50]."
)
@click.option(
    "--request-timeout", type=float, default=None, help="Seconds per request [default: 10]."
)
@click.option("--working-directory", default=None, help="Where relative paths start.")
@click.option("--timeout", type=float, default=None, help="Seconds before the stage is stopped.")
def probe(
    config_path: Path | None,
    evidence_dir: Path | None,
    url: str | None,
    endpoint: str | None,
    payload: str | None,
    perturbations: int | None,
    request_timeout: float | None,
    working_directory: str | None,
    timeout: float | None,
) -> None:
    """Send a running model server malformed requests (each must get a 4xx) and slightly
    perturbed valid ones (its predictions must hold), and write probe evidence.

    Exits 0 once evidence is written, whatever the server did: the gate decides.
    """

    cfg = load_config(config_path)
    options = {
        "url": url,
        "path": endpoint,
        "payload": payload,
        "perturbations": perturbations,
        "request_timeout": request_timeout,
        "working_directory": working_directory,
        "timeout": timeout,
    }
    overrides = {key: value for key, value in options.items() if value is not None}
    stage_config = overridden("probe", cfg, overrides)
    run_stage("probe", stage_config, cfg, evidence_dir)


@click.command()
@config_option
@evidence_option
@click.option(
    "--candidate",
    default=None,
    help="Model to judge: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/... or a local "
    "MLflow model directory [default: stages.quality.candidate].",
)
@click.option(
    "--champion",
    default=None,
    help="Model to compare with, given the same way [default: the production alias of a "
    "registered candidate's model].",
)
@click.option("--data", default=None, help="Evaluation data, CSV or Parquet.")
@click.option("--target", default=None, help="Column holding the true label or value.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the metrics, intervals and rules as JSON."
)
@click.option("--working-directory", default=None, help="Where relative paths start.")
@click.option("--timeout", type=float, default=None, help="Seconds before the stage is stopped.")
def quality(
    config_path: Path | None,
    evidence_dir: Path | None,
    candidate: str | None,
    champion: str | None,
    data: str | None,
    target: str | None,
    as_json: bool,
    working_directory: str | None,
    timeout: float | None,
) -> None:
    """Evaluate the candidate and the champion model on the same data (metrics, paired
    bootstrap intervals, slices) and write quality evidence.

    Exits 0 once evidence is written, whatever the comparison found: the gate decides.
    """

    from mlgate import evidence
    from mlgate.stages import quality as quality_stage

    cfg = load_config(config_path)
    options = {
        "candidate": candidate,
        "champion": champion,
        "data": data,
        "target": target,
        "working_directory": working_directory,
        "timeout": timeout,
    }
    overrides = {key: value for key, value in options.items() if value is not None}
    stage_config = overridden("quality", cfg, overrides)
    if data is not None and (Path(stage_config.working_directory) / data).is_dir():
        # Bad input on the command line, not an outcome of the stage: exit 2, no evidence.
        raise MlgateError(f"--data {data}: is a directory, not a CSV or Parquet file")
    directory = evidence_dir or Path(cfg.evidence_dir)
    run_stage("quality", stage_config, cfg, directory)  # exits 4 on error evidence
    if as_json:
        result = evidence.read(evidence.evidence_path(directory, "quality"))
        policy = cfg.stage_policy("quality")
        click.echo(json.dumps(quality_stage.as_json(result, policy)))


@click.command()
@config_option
@evidence_option
@click.option(
    "--source", "sources", multiple=True, help="Source directory or file for bandit; repeatable."
)
@click.option("--requirements", multiple=True, help="Requirements file for pip-audit; repeatable.")
@click.option(
    "--environment",
    "environments",
    multiple=True,
    help="site-packages directory of an installed environment for pip-audit; repeatable.",
)
@click.option("--image", default=None, help="Image name or id on the Docker engine.")
@click.option("--dockerfile", default=None, help="Dockerfile to build and scan.")
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Model file or directory, or models:/NAME@ALIAS or models:/NAME/VERSION; repeatable.",
)
@click.option(
    "--osv-db",
    default=None,
    help="Offline vulnerability data: a directory or zip of OSV records (JSON or YAML).",
)
@click.option(
    "--waivers", default=None, help="Waivers file [default: .mlgate/waivers.yml if present]."
)
@click.option("--working-directory", default=None, help="Where relative paths start.")
@click.option("--timeout", type=float, default=None, help="Seconds before the stage is stopped.")
def scan(
    config_path: Path | None,
    evidence_dir: Path | None,
    sources: tuple[str, ...],
    requirements: tuple[str, ...],
    environments: tuple[str, ...],
    image: str | None,
    dockerfile: str | None,
    models: tuple[str, ...],
    osv_db: str | None,
    waivers: str | None,
    working_directory: str | None,
    timeout: float | None,
) -> None:
    """Scan code (bandit), requirements and installed environments (pip-audit), an image
    (trivy) and model files or registered versions (an allow list of imports with picklescan as
    a second opinion, and fickling) and write scan evidence: every finding with its advisory or
    rule id and aliases, SARIF per scanner, the image's SBOM. Targets given here replace the
    config's.

    A scanner that is missing or fails makes the stage an error. Exits 0 once evidence is
    written; `mlgate gate` applies the policy and the waivers.
    """

    cfg = load_config(config_path)
    targets = {
        "sources": list(sources),
        "requirements": list(requirements),
        "environments": list(environments),
        "image": image,
        "dockerfile": dockerfile,
        "models": list(models),
    }
    given = {key: value for key, value in targets.items() if value}
    overrides: dict[str, Any] = {}
    if given:
        # Targets on the command line say what to scan now, instead of the config's.
        overrides = {"sources": [], "requirements": [], "environments": [], "image": None}
        overrides["dockerfile"] = None
        overrides |= {"models": []} | given
    options = {
        "osv_db": osv_db,
        "waivers": waivers,
        "working_directory": working_directory,
        "timeout": timeout,
    }
    overrides |= {key: value for key, value in options.items() if value is not None}
    stage_config = overridden("scan", cfg, overrides)
    run_stage("scan", stage_config, cfg, evidence_dir)


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
