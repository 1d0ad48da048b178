"""The mlgate command line. Thin: options in, calls into the package, exit codes out."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mlgate import __version__, actions_env, redact
from mlgate.errors import ConfigError, MlgateError
from mlgate.init.command import init_command

F = TypeVar("F", bound=Callable[..., Any])

EXIT_STAGE_ERROR = 4
EXIT_PUBLISH_FAILED = 4


def _config_option(function: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Config file [default: mlgate.yml in the working directory].",
    )(function)


def _evidence_option(function: F) -> F:
    return click.option(
        "--evidence-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Evidence directory [default: evidence_dir from the config, .mlgate/evidence].",
    )(function)


def _load_config(config_path: Path | None) -> Any:
    from mlgate import config

    # An explicit --config must exist; the default file is optional for stage commands.
    return config.load(config_path, required=config_path is not None)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 pass/ok, 1 gate failed, 2 usage or config error, 3 gate "
    "inconclusive, 4 stage error or publishing failed.",
)
@click.version_option(__version__, prog_name="mlgate")
def cli() -> None:
    """mlgate: evidence-backed gates for deploying ML models."""
    if os.environ.get("MLGATE_TODAY"):
        from mlgate import waivers

        waivers.today()  # refuses the override inside GitHub Actions, before any command runs


def _command_options(function: F) -> F:
    """Options every stage that runs a command shares."""
    for decorator in reversed(
        [
            click.option(
                "--command",
                "command_line",
                default=None,
                help="Command as one string, split like a shell would (no shell is used); "
                "an alternative to COMMAND after --.",
            ),
            click.option(
                "--working-directory", default=None, help="Where the command runs and paths start."
            ),
            click.option(
                "--timeout", type=float, default=None, help="Seconds before the stage is stopped."
            ),
            click.argument("command", nargs=-1, type=click.UNPROCESSED),
        ]
    ):
        function = decorator(function)
    return function


def _stage_config(
    name: str,
    cfg: Any,
    reports: dict[str, list[str]],
    command_line: str | None,
    command: tuple[str, ...],
    working_directory: str | None,
    timeout: float | None,
) -> Any:
    """The stage's config section from mlgate.yml, overridden by the command line."""
    from pydantic import ValidationError

    from mlgate import config
    from mlgate.stages import STAGES

    model = STAGES[name].config_model
    base = cfg.stage_config(name) or model()
    overrides: dict[str, Any] = {}
    if any(reports.values()):
        # Reports named on the command line are ingested as they are: the config's command
        # would write other reports (the contract: --junit/--json ingest, -- CMD runs first).
        overrides |= {key: paths for key, paths in reports.items() if paths}
        overrides["command"] = None
    if command and command_line:
        raise MlgateError("give the command either after -- or with --command, not both")
    if command or command_line:
        overrides["command"] = list(command) if command else command_line
    if working_directory is not None:
        overrides["working_directory"] = working_directory
    if timeout is not None:
        overrides["timeout"] = timeout
    try:
        return model.model_validate(base.model_dump(by_alias=True) | overrides)
    except ValidationError as exc:
        raise ConfigError(config.describe(exc, f"mlgate {name} options")) from None


@cli.command(context_settings={"ignore_unknown_options": True})
@_config_option
@_evidence_option
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
@_command_options
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
    cfg = _load_config(config_path)
    reports = {"junit": list(junit_paths), "reruns": list(rerun_paths)}
    stage = _stage_config("tests", cfg, reports, command_line, command, working_directory, timeout)
    _run_stage("tests", stage, cfg, evidence_dir)


@cli.command(context_settings={"ignore_unknown_options": True})
@_config_option
@_evidence_option
@click.option(
    "--json",
    "json_paths",
    multiple=True,
    help="pytest-benchmark JSON file or glob; repeatable "
    "[default: stages.bench.json, .mlgate/benchmark.json].",
)
@_command_options
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
    cfg = _load_config(config_path)
    reports = {"json": list(json_paths)}
    stage = _stage_config("bench", cfg, reports, command_line, command, working_directory, timeout)
    _run_stage("bench", stage, cfg, evidence_dir)


@cli.command()
@_config_option
@_evidence_option
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
    cfg = _load_config(config_path)
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
    stage_config = _overridden("load", cfg, overrides)
    _run_stage("load", stage_config, cfg, evidence_dir)


@cli.command()
@_config_option
@_evidence_option
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

    cfg = _load_config(config_path)
    options = {
        "reference": reference,
        "current": current,
        "working_directory": working_directory,
        "timeout": timeout,
    }
    overrides = {key: value for key, value in options.items() if value is not None}
    stage_config = _overridden("drift", cfg, overrides)
    target = stage_config.dispatch if send else None
    if send and target is None:
        raise MlgateError("--dispatch needs stages.drift.dispatch in the config")
    directory = evidence_dir or Path(cfg.evidence_dir)
    _run_stage("drift", stage_config, cfg, directory)  # exits 4 on error evidence
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


@cli.command()
@_config_option
@_evidence_option
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

    cfg = _load_config(config_path)
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
    stage_config = _overridden("probe", cfg, overrides)
    _run_stage("probe", stage_config, cfg, evidence_dir)


@cli.command()
@_config_option
@_evidence_option
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

    cfg = _load_config(config_path)
    options = {
        "candidate": candidate,
        "champion": champion,
        "data": data,
        "target": target,
        "working_directory": working_directory,
        "timeout": timeout,
    }
    overrides = {key: value for key, value in options.items() if value is not None}
    stage_config = _overridden("quality", cfg, overrides)
    if data is not None and (Path(stage_config.working_directory) / data).is_dir():
        # Bad input on the command line, not an outcome of the stage: exit 2, no evidence.
        raise MlgateError(f"--data {data}: is a directory, not a CSV or Parquet file")
    directory = evidence_dir or Path(cfg.evidence_dir)
    _run_stage("quality", stage_config, cfg, directory)  # exits 4 on error evidence
    if as_json:
        result = evidence.read(evidence.evidence_path(directory, "quality"))
        policy = cfg.stage_policy("quality")
        click.echo(json.dumps(quality_stage.as_json(result, policy)))


@cli.command()
@_config_option
@_evidence_option
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

    cfg = _load_config(config_path)
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
    stage_config = _overridden("scan", cfg, overrides)
    _run_stage("scan", stage_config, cfg, evidence_dir)


@cli.command()
@click.option("--model-uri", default=None, help="Serve an MLflow model (models:/NAME@ALIAS, ...).")
@click.option(
    "--command", "server_command", default=None, help="Start this server ('{port}' is replaced)."
)
@click.option("--url", default=None, help="Use a server already running at this URL.")
@click.option("--port", type=int, default=None, help="Port on 127.0.0.1 [default: a free one].")
@click.option("--health-path", default="/ping", show_default=True)
@click.option("--startup-timeout", type=float, default=120, show_default=True)
@click.option(
    "--state-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where a detached server's URL, process and, once stopped, measurements are kept.",
)
@click.option(
    "--detach",
    is_flag=True,
    help="Return once healthy, leaving the server up (needs --state-file).",
)
@click.option("--stop", is_flag=True, help="Stop the detached server of --state-file.")
def serve(
    model_uri: str | None,
    server_command: str | None,
    url: str | None,
    port: int | None,
    health_path: str,
    startup_timeout: float,
    state_file: Path | None,
    detach: bool,
    stop: bool,
) -> None:
    """Bring a model server up, wait until healthy, and keep it up until Ctrl-C or SIGTERM.

    Prints the URL once healthy, and the cold start, peak memory and CPU when stopped; the
    server's process group is always torn down. With --detach it returns once healthy (for a
    workflow step) and --stop ends it later. A model the model scan has not passed is not
    served (exit 1).
    """
    from pydantic import ValidationError

    from mlgate import config, serving
    from mlgate.stages import model_guard

    if (detach or stop) and state_file is None:
        raise MlgateError("--detach and --stop need --state-file")
    if stop:
        _stop_detached(state_file)  # type: ignore[arg-type]
        return
    given = {"mlflow": model_uri, "command": server_command, "url": url}
    chosen = [source for source, value in given.items() if value]
    if len(chosen) != 1:
        raise MlgateError("give exactly one of --model-uri, --command or --url")
    source = chosen[0]
    settings = {
        "source": source,
        {"mlflow": "model_uri"}.get(source, source): given[source],
        "health_path": health_path,
        "startup_timeout": startup_timeout,
    }
    if port is not None:
        settings["port"] = port
    try:
        spec = serving.ServeSpec.model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(config.describe(exc, "mlgate serve options")) from None
    if detach:
        argv = [arg for arg in sys.argv[1:] if arg != "--detach"]
        _start_detached(argv, state_file, startup_timeout)  # type: ignore[arg-type]
        return
    cfg = _load_config(None)
    if refused := model_guard.served_refusal(
        _run_context(cfg, Path(cfg.evidence_dir)), "serve", spec
    ):
        raise model_guard.ModelRefused(refused)
    with serving.serve(spec) as server:
        started = f" (cold start {server.cold_start_s:.2f} s)" if server.cold_start_s else ""
        click.echo(f"mlgate: serving at {server.url}{started}", err=True)
        actions_env.set_output("url", server.url)
        if state_file:
            _write_state(state_file, {"url": server.url, "pid": os.getpid()})
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C or SIGTERM: time to stop
            signal.pause()
    metrics = serving.server_metrics(server)
    if state_file:
        _write_state(state_file, {"url": server.url, "stopped": True} | metrics)
    click.echo("mlgate: stopped; " + ", ".join(f"{k} {v}" for k, v in metrics.items()), err=True)


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    tmp.replace(path)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _start_detached(argv: list[str], state_file: Path, startup_timeout: float) -> None:
    """Run `mlgate serve` in its own session (it outlives this step) and wait until healthy."""
    import subprocess
    import time

    state_file.unlink(missing_ok=True)
    log = state_file.with_suffix(".log")
    with log.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "mlgate", *argv],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + startup_timeout + 15
    while "url" not in (state := _read_state(state_file)):
        if child.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines() or ["no output"]
            raise MlgateError(f"the server did not start: {lines[-1]}")
        if time.monotonic() > deadline:
            os.killpg(child.pid, signal.SIGTERM)
            raise MlgateError(f"the server was not healthy within {startup_timeout:g} s")
        time.sleep(0.1)
    click.echo(f"mlgate: serving at {state['url']} (detached; stop with --stop)", err=True)
    click.echo(state["url"])
    actions_env.set_output("url", str(state["url"]))


def _stop_detached(state_file: Path) -> None:
    import time

    state = _read_state(state_file)
    pid = state.get("pid")
    if not isinstance(pid, int) or state.get("stopped"):
        raise MlgateError(f"{state_file}: no detached server is running from it")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # the server tears its process group down itself
    deadline = time.monotonic() + 60
    while not _read_state(state_file).get("stopped"):
        if not Path(f"/proc/{pid}").exists() or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    state = _read_state(state_file)
    metrics = {k: v for k, v in state.items() if k not in ("url", "pid", "stopped")}
    click.echo("mlgate: stopped; " + ", ".join(f"{k} {v}" for k, v in metrics.items()), err=True)


def _overridden(name: str, cfg: Any, overrides: dict[str, Any]) -> Any:
    """The stage's config section from mlgate.yml with the command line's options on top."""
    from pydantic import ValidationError

    from mlgate import config
    from mlgate.stages import STAGES

    base = cfg.stage_config(name)
    document = (base.model_dump(by_alias=True) if base else {}) | overrides
    try:
        return STAGES[name].config_model.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(config.describe(exc, f"mlgate {name} options")) from None


def _run_context(cfg: Any, directory: Path, stage: str | None = None) -> Any:
    from mlgate.stages.interface import RunContext

    # The scan stage and policy: what a stage that loads a model consults first.
    own = cfg.stage_policy(stage) if stage else None
    return RunContext(
        directory, cfg.digest, cfg.stage_config("scan"), cfg.stage_policy("scan"), own
    )


def _run_stage(name: str, stage_config: Any, cfg: Any, evidence_dir: Path | None) -> None:
    from mlgate import evidence
    from mlgate.stages import STAGES

    directory = evidence_dir or Path(cfg.evidence_dir)
    started = evidence.now()
    try:
        result = STAGES[name].run(stage_config, _run_context(cfg, directory, name))
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


@cli.command()
@_config_option
@_evidence_option
@click.option("--stage", "stages", multiple=True, help="Run only this stage; repeatable.")
def run(config_path: Path | None, evidence_dir: Path | None, stages: tuple[str, ...]) -> None:
    """Run every stage enabled in the config, writing evidence for each; the scan first, so
    that stages which load the model see its verdict."""
    cfg = _load_config(config_path or Path("mlgate.yml"))
    selected = sorted(stages or cfg.enabled_stages, key=lambda name: name != "scan")
    unknown = [s for s in selected if s not in cfg.enabled_stages]
    if unknown:
        raise MlgateError(f"stage not enabled in the config: {', '.join(unknown)}")
    failed = []
    for name in selected:
        try:
            _run_stage(name, cfg.stage_config(name), cfg, evidence_dir)
        except SystemExit as exc:
            if exc.code:
                failed.append(name)
    if failed:
        sys.exit(EXIT_STAGE_ERROR)


@cli.command()
@_config_option
@_evidence_option
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path(".mlgate/verdict.json"),
    show_default=True,
    help="Where the verdict is written.",
)
def gate(config_path: Path | None, evidence_dir: Path | None, output: Path) -> None:
    """Judge all evidence by the config's policy and write the verdict.

    Exit 0 pass (also with warnings: policy.<stage>.on_inconclusive: warn), 1 fail,
    3 inconclusive (2: usage or config error).
    """
    from mlgate import policy
    from mlgate.verdict import EXIT_CODES

    cfg = _load_config(config_path or Path("mlgate.yml"))
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


@cli.command()
@_config_option
@_evidence_option
@click.option(
    "--verdict",
    "verdict_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path(".mlgate/verdict.json"),
    show_default=True,
    help="Verdict written by 'mlgate gate'.",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".mlgate"),
    show_default=True,
    help="Where report.md and report.html are written.",
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

    cfg = _load_config(config_path or Path("mlgate.yml"))
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


def _fraction(text: str) -> float:
    """'10%' or '0.1' as 0.1."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a percentage like 10% or a fraction like 0.1"
        ) from None
    if not 0 <= value < 10:
        raise click.BadParameter(f"{text!r} is out of range")
    return value


@cli.command()
@click.argument("baseline", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("candidate", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    type=click.Choice(["p50", "p90", "p95", "p99", "mean"]),
    help="Statistic to compare; repeatable [default: p50, p95, mean; p99 needs tens of "
    "thousands of samples per side to decide].",
)
@click.option(
    "--tolerance",
    default="10%",
    show_default=True,
    help="Practical tolerance: a change within it is 'no change' (e.g. 10% or 0.1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(
    baseline: Path, candidate: Path, metrics: tuple[str, ...], tolerance: str, as_json: bool
) -> None:
    """Compare latency samples of BASELINE and CANDIDATE (evidence or raw sample files).

    Decides regression, improvement, no change or inconclusive per metric against the
    tolerance. When both sides mark the same number of rounds ('# round' lines, as the load
    stage writes for a champion loaded in interleaved rounds), rounds are paired: a t interval
    and t-test of the per-round log-ratios, which machine drift between rounds cannot fool.
    Otherwise the samples are taken as independent: a bootstrap interval of the relative
    change and a Mann-Whitney U test. The false-discovery rate is controlled across metrics.
    Exit 0 no regression, 1 regression, 3 inconclusive.
    """
    from mlgate import samples, stats

    tol = _fraction(tolerance)
    base, cand = samples.read_samples(baseline), samples.read_samples(candidate)
    chosen = list(metrics) or list(stats.DEFAULT_METRICS)
    paired = len(base.rounds) >= 2 and len(base.rounds) == len(cand.rounds)
    if paired:
        results = stats.compare_rounds(base.rounds, cand.rounds, metrics=chosen, tolerance=tol)
    else:
        if base.rounds or cand.rounds:
            click.echo(
                f"note: rounds do not pair up ({len(base.rounds)} vs {len(cand.rounds)}); "
                "the samples are compared as independent",
                err=True,
            )
        results = stats.compare(base.values, cand.values, metrics=chosen, tolerance=tol)
    if as_json:
        document = {
            "method": "paired rounds" if paired else "independent samples",
            "metrics": [r.as_json() for r in results],
        }
        click.echo(json.dumps(document, indent=2))
    else:
        rounds = f", {len(base.rounds)} paired rounds" if paired else ""
        _print_comparison(results, tol, len(base.values), len(cand.values), rounds)
    decisions = {r.decision for r in results}
    sys.exit(1 if "regression" in decisions else 3 if "inconclusive" in decisions else 0)


def _print_comparison(
    results: Any, tolerance: float, n_base: int, n_cand: int, rounds: str
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"baseline n={n_base}, candidate n={n_cand}{rounds}, tolerance ±{tolerance:.0%}",
        title_justify="left",
    )
    for column in ("metric", "baseline ms", "candidate ms", "change", "95% CI", "p", "decision"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.metric,
            f"{r.baseline:.2f}",
            f"{r.candidate:.2f}",
            f"{r.relative_change:+.1%}",
            f"[{r.ci[0]:+.1%}, {r.ci[1]:+.1%}]",
            f"{r.p_value:.3g}",
            r.decision,
        )
    # Wide enough for the table even when the output is a pipe or a CI log.
    Console(highlight=False, width=max(110, shutil.get_terminal_size().columns)).print(table)


@cli.command()
@_config_option
@_evidence_option
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=Path(".mlgate"),
    show_default=True,
    help="Where model-card.md and model-card.html go.",
)
@click.option(
    "--bundle",
    "bundle_file",
    type=click.Path(path_type=Path),
    default=Path(".mlgate/bundle/bundle.json"),
    show_default=True,
    help="The evidence bundle, for the lineage (skipped when absent).",
)
def card(
    config_path: Path | None, evidence_dir: Path | None, output_dir: Path, bundle_file: Path
) -> None:
    """Write the model card (Markdown and self-contained HTML) from `card:` in mlgate.yml and
    the evidence: every stage's results with intervals and slices, and the lineage."""
    from mlgate.report import card as model_card

    cfg = _load_config(config_path)
    content = model_card.build(cfg, evidence_dir or Path(cfg.evidence_dir), bundle_file)
    md, page = model_card.write(content, output_dir)
    click.echo(f"mlgate: model card -> {md}, {page}", err=True)


@cli.group(name="bundle")
def bundle_group() -> None:
    """Evidence bundles: the verdict, its evidence and the model's digest, in one document."""


@bundle_group.command("create")
@_config_option
@_evidence_option
@click.option("--model", "name", default=None, help="Registered model [default: promotion.model].")
@click.option("--version", "model_version", required=True, help="Model version the gate judged.")
@click.option(
    "--verdict",
    "verdict_path",
    type=click.Path(path_type=Path),
    default=Path(".mlgate/verdict.json"),
    show_default=True,
    help="The gate's verdict.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path(".mlgate/bundle"),
    show_default=True,
    help="Directory to write bundle.json and its evidence to.",
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

    cfg = _load_config(config_path)
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


@cli.command()
@_config_option
@click.option("--model", "name", default=None, help="Registered model [default: promotion.model].")
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

    cfg = _load_config(config_path)
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


@cli.command()
@_config_option
@click.option("--model", "name", default=None, help="Registered model [default: promotion.model].")
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

    cfg = _load_config(config_path)
    model = _model_name(name, cfg)
    registry = _registry()
    who = _who(actor)
    started = promotion_race.process_started_at()
    _promotion_result(
        lambda: promotion.rollback(
            cfg, registry, who, model, stage, target, reason, override_reason, started
        )
    )


@cli.command()
@_config_option
@click.option("--model", "name", default=None, help="Registered model [default: promotion.model].")
@click.option("--json", "as_json", is_flag=True, help="The ledger records as JSON.")
def history(config_path: Path | None, name: str | None, as_json: bool) -> None:
    """Print the promotion ledger of a model: what held each stage, from when, by whom."""
    from mlgate import promotion

    cfg = _load_config(config_path)
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


cli.add_command(init_command)


@cli.group(name="config")
def config_group() -> None:
    """Validate the config or print its JSON Schema."""


@config_group.command("check")
@_config_option
def config_check(config_path: Path | None) -> None:
    """Validate the config file; print what it enables."""
    cfg = _load_config(config_path or Path("mlgate.yml"))
    click.echo(
        f"{config_path or 'mlgate.yml'}: ok; stages: {', '.join(cfg.enabled_stages) or 'none'}"
    )


# The module each extra brings, to tell whether it is installed.
_EXTRA_MODULES = {
    "stats": "scipy",
    "load": "locust",
    "bench": "pytest_benchmark",
    "serve": "mlflow",
    "example": "sklearn",
    "container": "docker",
    "scan": "pip_audit",
    "modelscan": "fickling",
    "drift": "pandas",
    "quality": "sklearn",
}


@config_group.command("extras")
@_config_option
@click.option(
    "--extras", "named", default=None, help="Check these extras instead, comma-separated."
)
@click.option("--missing", is_flag=True, help="Only the extras not installed here.")
def config_extras(config_path: Path | None, named: str | None, missing: bool) -> None:
    """Print the package extras the enabled stages need, comma-separated (for installers)."""
    import importlib.util

    from mlgate.stages import STAGES

    if named is not None:
        wanted = [name for name in named.split(",") if name]
        unknown = [name for name in wanted if name not in _EXTRA_MODULES]
        if unknown:
            raise MlgateError(f"unknown extras: {', '.join(unknown)}")
    else:
        cfg = _load_config(config_path or Path("mlgate.yml"))
        wanted = list(
            dict.fromkeys(
                extra
                for name in cfg.enabled_stages
                for extra in STAGES[name].extras_for(cfg.stage_config(name))
            )
        )
    if missing:
        wanted = [e for e in wanted if importlib.util.find_spec(_EXTRA_MODULES[e]) is None]
    click.echo(",".join(wanted))


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of mlgate.yml (for editors)."""
    from mlgate import config

    click.echo(json.dumps(config.json_schema(), indent=2))


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


def _terminated(signum: int, frame: object) -> None:
    # A cancelled job sends SIGTERM: unwind like Ctrl-C, so a running test command's process
    # group is stopped instead of orphaned.
    raise KeyboardInterrupt


def main() -> None:
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _main()
    finally:
        # Called in-process (tests, embedding), the caller's handler comes back.
        signal.signal(signal.SIGTERM, previous)


def _main() -> None:
    try:
        cli.main(standalone_mode=False)
    except MlgateError as exc:
        click.echo(f"mlgate: error: {redact.credentials(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("mlgate: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"mlgate: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("mlgate: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("MLGATE_DEBUG"):
            raise
        click.echo(
            f"mlgate: internal error: {type(exc).__name__}: {exc} "
            "(set MLGATE_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(70)
