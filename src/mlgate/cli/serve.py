"""`mlgate serve`: bring a model server up, in the foreground or detached."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from mlgate import actions_env, atomic_file
from mlgate.cli.options import load_config
from mlgate.cli.stage_run import run_context
from mlgate.errors import ConfigError, MlgateError


@click.command()
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
    cfg = load_config(None)
    if refused := model_guard.served_refusal(
        run_context(cfg, Path(cfg.evidence_dir)), "serve", spec
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
    atomic_file.write_bytes(path, json.dumps(state).encode("utf-8"))


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
