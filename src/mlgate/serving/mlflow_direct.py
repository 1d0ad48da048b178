"""MLflow models started many times (a champion comparison on fresh servers: a pair every
round) without `mlflow models serve` every time.

`mlflow models serve --env-manager local` imports MLflow's whole CLI, resolves and downloads
the model, asks `mlflow.pyfunc.scoring_server.get_cmd` for the scoring server's command and
runs it (uvicorn with MLflow's scoring app), staying alive beside it. Here the first three
happen once per model, in a child process (MLflow never runs in mlgate's own): the model is
downloaded into a directory the caller owns and MLflow's own `get_cmd` gives the command of
this MLflow version; every start then runs that command, as the CLI does (`bash -c "exec
..."`) with the same environment. The scoring server and its /ping and /invocations are
MLflow's, unchanged; what is saved is the CLI's start (measured on 2 busy cores: 13 s per
start through the CLI, 8 s directly). The server's memory no longer includes the idle CLI
process the CLI leaves beside it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgate import process
from mlgate.serving.command import HOST, local_port, start_process
from mlgate.serving.interface import Server, ServeSpec, ServingError, ServingSource
from mlgate.serving.mlflow_model import _NO_TELEMETRY as NO_TELEMETRY
from mlgate.serving.mlflow_model import _model_argument as model_argument
from mlgate.serving.together import ServerStartError

# Stands for the port in the command MLflow gives; each start puts its own port there.
_PORT = "{port}"
# The CLI's defaults (`mlflow models serve --timeout/--workers`), read from the same variables.
_TIMEOUT_VARIABLE, _TIMEOUT_DEFAULT = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", "60"
_WORKERS_VARIABLE = "MLFLOW_MODELS_WORKERS"


@dataclass(frozen=True)
class PreparedModel:
    """A model downloaded once and the command MLflow runs to serve it."""

    directory: str
    command: str  # shell syntax, as MLflow runs it; `{port}` where the port goes
    env: dict[str, str]  # what MLflow sets for the command (the model's path, the timeout)


class PreparedMlflowSource(ServingSource):
    """Source `mlflow` for a model prepared beforehand: each start runs MLflow's scoring
    server command on the downloaded copy."""

    name = "mlflow"
    extras = ("serve",)

    def __init__(self, model: PreparedModel) -> None:
        self.model = model

    def start(self, spec: ServeSpec, deadline: float) -> Server:
        port = local_port(spec.port)
        env = os.environ | spec.env | NO_TELEMETRY | self.model.env
        # The command names `uvicorn` (or `gunicorn`), found on PATH: this environment's.
        scripts = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(filter(None, (scripts, env.get("PATH"))))
        command = "exec " + self.model.command.replace(_PORT, str(port))
        return start_process(["bash", "-c", command], port, Path(spec.working_directory), env)


@contextlib.contextmanager
def prepared_sources(
    specs: Mapping[str, ServeSpec], deadline: float
) -> Iterator[dict[str, ServingSource]]:
    """A prepared source for every spec of source mlflow (by name; the others keep theirs),
    all prepared at once; the downloads are deleted afterwards. ServerStartError names a
    model that could not be prepared before `deadline` (time.monotonic())."""
    wanted = {name: spec for name, spec in specs.items() if spec.source == "mlflow"}
    with tempfile.TemporaryDirectory(prefix="mlgate-mlflow-models-") as scratch:
        started: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name, spec in wanted.items():
                started[name] = _start_preparing(name, spec, Path(scratch) / name)
            sources: dict[str, ServingSource] = {}
            for name, child in started.items():
                sources[name] = PreparedMlflowSource(_prepared(name, child, deadline))
        finally:
            for child in started.values():
                process.stop_group(child)
        yield sources


def _start_preparing(name: str, spec: ServeSpec, directory: Path) -> subprocess.Popen[bytes]:
    if importlib.util.find_spec("mlflow") is None:
        raise ServerStartError(
            name, "mlflow is not installed in this Python environment: pip install 'mlgate[serve]'"
        )
    try:
        model = model_argument(spec.model_uri or "", Path(spec.working_directory))
    except ServingError as exc:
        raise ServerStartError(name, str(exc)) from None
    directory.mkdir()
    argv = [sys.executable, "-m", "mlgate.serving.mlflow_direct", model, str(directory)]
    env = os.environ | spec.env | NO_TELEMETRY
    return process.start_group(
        argv,
        Path(spec.working_directory),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _prepared(name: str, child: subprocess.Popen[bytes], deadline: float) -> PreparedModel:
    try:
        out, err = child.communicate(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        raise ServerStartError(name, "downloading the model did not finish in time") from None
    if child.returncode != 0:
        lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
        last = lines[-1].strip()[:300] if lines else "nothing on stderr"
        raise ServerStartError(
            name, f"downloading the model exited {child.returncode}: {last}"
        ) from None
    try:
        found = json.loads(out.decode().splitlines()[-1])
        return PreparedModel(str(found["directory"]), str(found["command"]), dict(found["env"]))
    except (IndexError, ValueError, KeyError, TypeError):
        raise ServerStartError(name, "downloading the model gave no usable answer") from None


def _main(model: str, directory: str) -> None:
    """In the child: download `model` into `directory` and print, as one JSON line, where it
    is, the command MLflow serves it with and what that command needs in its environment."""
    from mlflow.artifacts import download_artifacts
    from mlflow.pyfunc import scoring_server

    local = download_artifacts(artifact_uri=model, dst_path=directory)
    timeout = int(os.environ.get(_TIMEOUT_VARIABLE) or _TIMEOUT_DEFAULT)
    workers = int(os.environ.get(_WORKERS_VARIABLE) or 1)
    # The port is a placeholder string where MLflow expects a number: it only formats it.
    get_cmd: Any = scoring_server.get_cmd
    command, env = get_cmd(local, _PORT, HOST, timeout, workers)
    added = {key: value for key, value in env.items() if os.environ.get(key) != value}
    print(json.dumps({"directory": local, "command": command, "env": added}))


if __name__ == "__main__":
    _main(*sys.argv[1:3])
